import { dirname, join } from "node:path";
import { copyAside, moveAside, writeFileAtomic } from "../fs/mod.ts";
import { AppendLog, readLogLines } from "./append_log.ts";

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
  /** Where a damaged `locks.json` was moved (its readable claims were kept), else `null`. */
  movedAside: string | null;
  /** Why `locks.json` was damaged. */
  damage?: string;
  /** Where a claims log with damaged lines was copied. */
  logCopiedAside?: string | null;
  /** Damaged lines in the claims log. */
  logDamagedLines?: number;
}

const DAY_MS = 86_400_000;

function isClaim(value: unknown): value is ClaimEntry {
  const entry = value as ClaimEntry;
  return typeof entry?.id === "string" && typeof entry.agent_id === "string" &&
    typeof entry.expires_at === "string" && Number.isFinite(Date.parse(entry.expires_at)) &&
    typeof entry.claimed_at === "string" && typeof entry.timeout_s === "number";
}

/** Compact the claims log into `locks.json` once it is this big. */
const COMPACT_BYTES = 256 * 1024;

/** One line of the claims log: the state of one mail's claims after a change. */
interface ClaimChange {
  id: string;
  /** The claim, or null. */
  a: ClaimEntry | null;
  /** The lapsed claim, or null. */
  l: ClaimEntry | null;
}

/**
 * The claim table: who works on which inbound mail until when. Each change
 * is appended to `.state/claims.jsonl` (group commit: one small write and
 * fdatasync shared by concurrent changes) before it is answered; the log is
 * compacted into `.state/locks.json` (written atomically, one claim a
 * line) when it grows. A damaged file of either kind still yields every
 * claim on an intact line. A claim whose time ran out is *lapsed* once the
 * service has counted it as a failed attempt; a lapsed claim is remembered
 * for a day, so its agent may still complete or fail the mail as long as
 * no other agent claimed it since.
 */
export class ClaimTable {
  readonly #path: string;
  readonly #logPath: string;
  readonly #now: () => number;
  readonly #active = new Map<string, ClaimEntry>();
  readonly #lapsed = new Map<string, ClaimEntry>();
  /** Mails whose claims changed since they were last written. */
  readonly #dirty = new Set<string>();
  #log: AppendLog | null = null;

  /**
   * Creates a `ClaimTable`.
   *
   * @param path The locks file (`locks.json`).
   * @param options `logPath`: the claims log (default `claims.jsonl` beside it); `now`: the clock.
   */
  constructor(path: string, options: { logPath?: string; now?: () => number } = {}) {
    this.#path = path;
    this.#logPath = options.logPath ?? join(dirname(path), "claims.jsonl");
    this.#now = options.now ?? Date.now;
  }

  /**
   * Loads the table: `locks.json`, then the changes logged since. A
   * `locks.json` that does not parse is moved aside to
   * `locks.json.corrupt-<timestamp>`, a log with damaged lines is copied
   * aside; every claim on an intact line of either is kept.
   */
  async load(): Promise<ClaimsLoad> {
    const result: ClaimsLoad = { claims: 0, movedAside: null };
    let text: string | null = null;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (text !== null) {
      let value: { claims?: Record<string, unknown>; lapsed?: Record<string, unknown> } | null;
      try {
        value = JSON.parse(text);
        if (typeof value !== "object" || value === null) throw new SyntaxError("not an object");
      } catch (error) {
        result.damage = (error as Error).message;
        value = salvage(text);
      }
      for (const [section, map] of [["claims", this.#active], ["lapsed", this.#lapsed]] as const) {
        const entries = value?.[section];
        if (typeof entries !== "object" || entries === null) continue;
        for (const entry of Object.values(entries)) if (isClaim(entry)) map.set(entry.id, entry);
      }
      if (result.damage !== undefined) result.movedAside = await moveAside(this.#path, this.#now());
    }
    let damaged = 0;
    for (const line of await readLogLines(this.#logPath)) {
      let change: ClaimChange;
      try {
        change = JSON.parse(line);
        if (typeof change?.id !== "string") throw new SyntaxError("not a claim change");
      } catch {
        damaged++;
        continue;
      }
      this.#apply(change);
    }
    if (damaged > 0) {
      result.logCopiedAside = await copyAside(this.#logPath, this.#now()).catch(() => null);
      result.logDamagedLines = damaged;
    }
    this.#log = await AppendLog.open(this.#logPath);
    result.claims = this.#active.size;
    if (this.#log.size > 0 || result.damage !== undefined) await this.#compact().catch(() => {});
    return result;
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
    this.#dirty.add(entry.id);
  }

  /** The claim and the lapsed claim on `id`, to put back with {@link ClaimTable.restore}. */
  peek(id: string): SavedClaims {
    return { active: this.#active.get(id), lapsed: this.#lapsed.get(id) };
  }

  /** Forgets every claim on `id`, lapsed or not; returns what there was. */
  release(id: string): SavedClaims {
    const saved = this.peek(id);
    if (saved.active || saved.lapsed) this.#dirty.add(id);
    this.#active.delete(id);
    this.#lapsed.delete(id);
    return saved;
  }

  /** Puts back what {@link ClaimTable.release} or {@link ClaimTable.peek} returned. */
  restore(id: string, saved: SavedClaims): void {
    if (saved.active) this.#active.set(id, saved.active);
    if (saved.lapsed) this.#lapsed.set(id, saved.lapsed);
    this.#dirty.add(id);
  }

  /** The claim on `id` ran out and was counted: keep it as lapsed. */
  lapse(id: string): void {
    const entry = this.#active.get(id);
    if (!entry) return;
    this.#active.delete(id);
    this.#lapsed.set(id, entry);
    this.#dirty.add(id);
  }

  /**
   * Resolves once every change made so far is on disk; rejects when the
   * write failed (the changes are written again by the next `persist`).
   */
  async persist(): Promise<void> {
    const log = this.#log;
    if (!log) throw new Error("the claim table is not loaded");
    const ids = [...this.#dirty];
    this.#dirty.clear();
    const lines = ids.map((id) =>
      JSON.stringify({ id, a: this.#active.get(id) ?? null, l: this.#lapsed.get(id) ?? null })
    );
    try {
      await log.append(lines);
    } catch (error) {
      for (const id of ids) this.#dirty.add(id);
      throw error;
    }
    if (log.size > COMPACT_BYTES) log.exclusive(() => this.#compact()).catch(() => {});
  }

  /** Writes what is left and closes the log (compacting it when nothing is pending). */
  async close(): Promise<void> {
    const log = this.#log;
    if (!log) return;
    await this.persist().catch(() => {});
    await log.exclusive(() => this.#compact()).catch(() => {});
    await log.close();
    this.#log = null;
  }

  #apply(change: ClaimChange): void {
    if (isClaim(change.a)) this.#active.set(change.id, change.a);
    else this.#active.delete(change.id);
    if (isClaim(change.l)) this.#lapsed.set(change.id, change.l);
    else this.#lapsed.delete(change.id);
  }

  /**
   * Rewrites `locks.json` with the table and empties the log. Runs only
   * when every change is on disk (the table then is what the disk says).
   */
  async #compact(): Promise<void> {
    if (this.#dirty.size > 0) return;
    const cutoff = this.#now() - DAY_MS;
    for (const [id, entry] of this.#lapsed) {
      if (Date.parse(entry.expires_at) < cutoff) this.#lapsed.delete(id);
    }
    const section = (map: Map<string, ClaimEntry>) =>
      [...map.values()].map((e) => `${JSON.stringify(e.id)}:${JSON.stringify(e)}`).join(",\n");
    const text = `{"version":2,\n"claims":{\n${section(this.#active)}\n},\n` +
      `"lapsed":{\n${section(this.#lapsed)}\n}}\n`;
    await writeFileAtomic(this.#path, text, { mode: 0o600 });
    await this.#log?.truncate();
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
