import { moveAside, writeFileAtomic } from "../fs/mod.ts";

/** An agent's claim on an inbound mail, as `.state/locks.json` stores it and the API returns it. */
export interface ClaimEntry {
  /** The mail's id. */
  id: string;
  /** The agent holding it. */
  agent_id: string;
  /** When it was claimed. ISO 8601. */
  claimed_at: string;
  /** When the claim lapses (and counts as a failed attempt). ISO 8601. */
  expires_at: string;
  /** The claim's length in seconds. */
  timeout_s: number;
}

/**
 * Serialises snapshots to one file with coalescing: callers that change
 * state while a write is in flight share the next write, so a burst of
 * changes costs two writes, not one per change. Each `persist` resolves
 * after a write that started after it was called, and rejects if that
 * write failed.
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
        failure = error ?? new Error("write failed");
      }
      this.#written = version;
      const settled = this.#waiters.filter((w) => w.version <= version);
      this.#waiters = this.#waiters.filter((w) => w.version > version);
      for (const w of settled) failure ? w.reject(failure) : w.resolve();
    }
    this.#running = false;
  }
}

/** The claims on one mail, as {@link ClaimTable.peek} saw them. */
export interface SavedClaims {
  /** The claim. */
  active?: ClaimEntry;
  /** The lapsed claim. */
  lapsed?: ClaimEntry;
}

/** What {@link ClaimTable.load} found. */
export interface ClaimsLoad {
  /** Claims read. */
  claims: number;
  /** Where a damaged file was moved (its readable claims were kept), else `null`. */
  movedAside: string | null;
  /** Why the file was damaged. */
  damage?: string;
}

const DAY_MS = 86_400_000;

function isClaim(value: unknown): value is ClaimEntry {
  const entry = value as ClaimEntry;
  return typeof entry?.id === "string" && typeof entry.agent_id === "string" &&
    typeof entry.expires_at === "string" && Number.isFinite(Date.parse(entry.expires_at)) &&
    typeof entry.claimed_at === "string" && typeof entry.timeout_s === "number";
}

/**
 * The claim table: who works on which inbound mail until when, persisted
 * atomically to `.state/locks.json` one claim a line, so a damaged file
 * still yields every claim on an intact line. A claim whose time ran out is
 * *lapsed* once the service has counted it as a failed attempt; a lapsed
 * claim is remembered for a day, so its agent may still complete or fail
 * the mail as long as no other agent claimed it since.
 */
export class ClaimTable {
  readonly #path: string;
  readonly #now: () => number;
  readonly #active = new Map<string, ClaimEntry>();
  readonly #lapsed = new Map<string, ClaimEntry>();
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

  /**
   * Loads the table. A file that does not parse is moved aside to
   * `locks.json.corrupt-<timestamp>` and every claim on an intact line of
   * it is kept.
   */
  async load(): Promise<ClaimsLoad> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return { claims: 0, movedAside: null };
      throw error;
    }
    let value: { claims?: Record<string, unknown>; lapsed?: Record<string, unknown> } | null;
    let damage: string | undefined;
    try {
      value = JSON.parse(text);
      if (typeof value !== "object" || value === null) throw new SyntaxError("not an object");
    } catch (error) {
      damage = (error as Error).message;
      value = salvage(text);
    }
    for (const [section, map] of [["claims", this.#active], ["lapsed", this.#lapsed]] as const) {
      const entries = value?.[section];
      if (typeof entries !== "object" || entries === null) continue;
      for (const entry of Object.values(entries)) if (isClaim(entry)) map.set(entry.id, entry);
    }
    const movedAside = damage === undefined ? null : await moveAside(this.#path, this.#now());
    return { claims: this.#active.size, movedAside, ...(damage ? { damage } : {}) };
  }

  /** The claim on `id` (its time may have run out: see {@link ClaimEntry.expires_at}). */
  get(id: string): ClaimEntry | undefined {
    return this.#active.get(id);
  }

  /** Who may still complete or fail `id`: the claim, else the lapsed claim. */
  holder(id: string): ClaimEntry | undefined {
    return this.#active.get(id) ?? this.#lapsed.get(id);
  }

  /** Every claim. */
  claims(): IterableIterator<ClaimEntry> {
    return this.#active.values();
  }

  /** How many claims there are. */
  get size(): number {
    return this.#active.size;
  }

  /** A claim by `agentId` for `timeoutS` seconds from now (replacing any other). */
  claim(id: string, agentId: string, timeoutS: number): ClaimEntry {
    const now = this.#now();
    const entry: ClaimEntry = {
      id,
      agent_id: agentId,
      claimed_at: new Date(now).toISOString(),
      expires_at: new Date(now + timeoutS * 1000).toISOString(),
      timeout_s: timeoutS,
    };
    this.set(entry);
    return entry;
  }

  /** Puts `entry` back as the claim on its mail (undoing a change). */
  set(entry: ClaimEntry): void {
    this.#active.set(entry.id, entry);
    this.#lapsed.delete(entry.id);
  }

  /** The claim and the lapsed claim on `id`, to put back with {@link ClaimTable.restore}. */
  peek(id: string): SavedClaims {
    return { active: this.#active.get(id), lapsed: this.#lapsed.get(id) };
  }

  /** Forgets every claim on `id`, lapsed or not; returns what there was. */
  release(id: string): SavedClaims {
    const saved = this.peek(id);
    this.#active.delete(id);
    this.#lapsed.delete(id);
    return saved;
  }

  /** Puts back what {@link ClaimTable.release} or {@link ClaimTable.peek} returned. */
  restore(id: string, saved: SavedClaims): void {
    if (saved.active) this.#active.set(id, saved.active);
    if (saved.lapsed) this.#lapsed.set(id, saved.lapsed);
  }

  /** The claim on `id` ran out and was counted: keep it as lapsed. */
  lapse(id: string): void {
    const entry = this.#active.get(id);
    if (!entry) return;
    this.#active.delete(id);
    this.#lapsed.set(id, entry);
  }

  /** Resolves once the table as of now is on disk. */
  persist(): Promise<void> {
    return this.#writer.persist();
  }

  async #save(): Promise<void> {
    const cutoff = this.#now() - DAY_MS;
    for (const [id, entry] of this.#lapsed) {
      if (Date.parse(entry.expires_at) < cutoff) this.#lapsed.delete(id);
    }
    const section = (map: Map<string, ClaimEntry>) =>
      [...map.values()].map((e) => `${JSON.stringify(e.id)}:${JSON.stringify(e)}`).join(",\n");
    const text = `{"version":2,\n"claims":{\n${section(this.#active)}\n},\n` +
      `"lapsed":{\n${section(this.#lapsed)}\n}}\n`;
    await writeFileAtomic(this.#path, text, { mode: 0o600 });
  }
}

/** The claims on intact lines of a damaged locks file. */
function salvage(
  text: string,
): { claims: Record<string, unknown>; lapsed: Record<string, unknown> } {
  const found = { claims: {} as Record<string, unknown>, lapsed: {} as Record<string, unknown> };
  let section: "claims" | "lapsed" = "claims";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith('"lapsed"')) section = "lapsed";
    const match = /^("(?:[^"\\]|\\.)*"):(\{.*\}),?$/.exec(line);
    if (!match) continue;
    try {
      const id = JSON.parse(match[1]) as string;
      found[section][id] = JSON.parse(match[2]);
    } catch {
      // a damaged line
    }
  }
  return found;
}
