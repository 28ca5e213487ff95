import { writeJsonAtomic } from "../fs/mod.ts";

/** An agent's claim on an inbound mail, as `.state/locks.json` stores it and the API returns it. */
export interface ClaimEntry {
  /** The mail's id. */
  id: string;
  /** The agent holding it. */
  agent_id: string;
  /** When it was claimed. ISO 8601. */
  claimed_at: string;
  /** When the claim lapses and the mail is claimable again. ISO 8601. */
  expires_at: string;
  /** The claim's length in seconds. */
  timeout_s: number;
}

/**
 * Serialises snapshots to one file with coalescing: callers that change
 * state while a write is in flight share the next write, so a burst of
 * changes costs two writes, not one per change. Each `persist` resolves
 * after a write that started after it was called.
 */
export class CoalescingWriter {
  readonly #write: () => Promise<void>;
  #requested = 0;
  #written = 0;
  #running = false;
  #waiters: { version: number; resolve: () => void; reject: (e: unknown) => void }[] = [];

  /**
   * Creates a `CoalescingWriter`.
   *
   * @param write Writes the current state (called with no overlap).
   */
  constructor(write: () => Promise<void>) {
    this.#write = write;
  }

  /** Resolves once the state as of now is on disk. */
  persist(): Promise<void> {
    const version = ++this.#requested;
    const done = new Promise<void>((resolve, reject) => {
      this.#waiters.push({ version, resolve, reject });
    });
    if (!this.#running) this.#run();
    return done;
  }

  async #run(): Promise<void> {
    this.#running = true;
    while (this.#written < this.#requested) {
      const version = this.#requested;
      let failure: unknown = null;
      try {
        await this.#write();
      } catch (error) {
        failure = error;
      }
      this.#written = version;
      const settled = this.#waiters.filter((w) => w.version <= version);
      this.#waiters = this.#waiters.filter((w) => w.version > version);
      for (const w of settled) failure ? w.reject(failure) : w.resolve();
    }
    this.#running = false;
  }
}

/**
 * The claim table: who works on which inbound mail until when, persisted
 * atomically to `.state/locks.json`. Expiry is evaluated on read, so an
 * expired claim needs no timer: the mail is simply claimable again.
 */
export class ClaimTable {
  readonly #path: string;
  readonly #now: () => number;
  readonly #entries = new Map<string, ClaimEntry>();
  readonly #writer: CoalescingWriter;

  /**
   * Creates a `ClaimTable`.
   *
   * @param path The locks file.
   * @param options `now`: the clock in ms (default `Date.now`).
   */
  constructor(path: string, options: { now?: () => number } = {}) {
    this.#path = path;
    this.#now = options.now ?? Date.now;
    this.#writer = new CoalescingWriter(() => this.#save());
  }

  /** Loads the table; entries whose mail is unknown to `keep` are dropped. */
  async load(keep: (id: string) => boolean): Promise<void> {
    let value: unknown;
    try {
      value = JSON.parse(await Deno.readTextFile(this.#path));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof SyntaxError) return;
      throw error;
    }
    const claims = (value as { claims?: unknown })?.claims;
    if (typeof claims !== "object" || claims === null) return;
    for (const entry of Object.values(claims as Record<string, ClaimEntry>)) {
      if (
        typeof entry?.id === "string" && typeof entry.agent_id === "string" &&
        typeof entry.expires_at === "string" && keep(entry.id)
      ) {
        this.#entries.set(entry.id, entry);
      }
    }
  }

  /** The claim on `id`, expired or not. */
  get(id: string): ClaimEntry | undefined {
    return this.#entries.get(id);
  }

  /** The claim on `id` if it has not expired. */
  active(id: string): ClaimEntry | undefined {
    const entry = this.#entries.get(id);
    return entry && Date.parse(entry.expires_at) > this.#now() ? entry : undefined;
  }

  /** How many claims are active now. */
  activeCount(): number {
    const now = this.#now();
    let n = 0;
    for (const entry of this.#entries.values()) if (Date.parse(entry.expires_at) > now) n++;
    return n;
  }

  /** Records a claim by `agentId` for `timeoutS` seconds from now and returns it. */
  claim(id: string, agentId: string, timeoutS: number): ClaimEntry {
    const now = this.#now();
    const entry: ClaimEntry = {
      id,
      agent_id: agentId,
      claimed_at: new Date(now).toISOString(),
      expires_at: new Date(now + timeoutS * 1000).toISOString(),
      timeout_s: timeoutS,
    };
    this.#entries.set(id, entry);
    return entry;
  }

  /** Forgets the claim on `id`. */
  release(id: string): void {
    this.#entries.delete(id);
  }

  /** Resolves once the table as of now is on disk. */
  persist(): Promise<void> {
    return this.#writer.persist();
  }

  async #save(): Promise<void> {
    const now = this.#now();
    const claims: Record<string, ClaimEntry> = {};
    // Expired claims are kept (their agent may still complete) until a day old.
    for (const [id, entry] of this.#entries) {
      if (Date.parse(entry.expires_at) > now - 86_400_000) claims[id] = entry;
    }
    await writeJsonAtomic(this.#path, { version: 1, claims }, { mode: 0o600 });
  }
}
