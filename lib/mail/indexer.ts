import { join } from "node:path";
import { removeIfExists } from "../fs/mod.ts";
import { type MailContext, quarantine } from "./context.ts";
import { dedupKey } from "./dedup.ts";
import {
  type CachedMail,
  cacheKey,
  type IndexCache,
  readIndexCache,
  Yielder,
} from "./index_cache.ts";
import type { MailRecord } from "./mail_index.ts";
import { locationRoot, type MailLocation } from "./mailbox.ts";
import { parseMail } from "./mail_file.ts";
import { fileStamp, type ListedFile, MUTABLE, recordOf } from "./store.ts";

/** The order folders are indexed in: the ones agents work from first. */
export const INDEX_ORDER: readonly MailLocation[] = [
  "inbound",
  "outbound",
  "deadletter",
  "archive",
];

/** What an indexing run found. */
export interface IndexStats {
  /** Mails indexed. */
  mails: number;
  /** Mails parsed from their files. */
  parsed: number;
  /** Mails taken from the index cache. */
  cached: number;
  /** Unreadable files moved to `.corrupt/`. */
  quarantined: number;
  /** Stale copies removed (a crash between writing a mail's new place and removing its old). */
  duplicatesRemoved: number;
  /** Whether an index cache was found and used. */
  cacheUsed: boolean;
  /** How long it took (ms). */
  ms: number;
}

/** Progress of an indexing run, for `/health`. */
export interface IndexProgress {
  /** Mail files found. */
  total: number;
  /** Mail files done. */
  done: number;
  /** The folder being read. */
  location: MailLocation | null;
}

/** Where a copy stands when a mail is found twice: the higher one is the later. */
function rank(record: MailRecord): number {
  const place = record.location === "archive" ? 2 : record.location === "deadletter" ? 1 : 0;
  return (record.requeues ?? 0) * 10 + place;
}

/** The mail id a file name states (`<YYYYMMDDTHHMMSS>_<id>.md`), if it follows the pattern. */
function idOfName(name: string): string | null {
  const match = /^\d{8}T\d{6}_([A-Za-z0-9_-]+)\.md$/.exec(name);
  return match ? match[1] : null;
}

/**
 * Builds the in-memory index from the mail files, in the background while
 * the service already serves: lists every folder first (and removes the
 * stale copy of any mail a crash left in two folders), then indexes
 * `inbound/`, `outbound/`, `.deadletter/` and `archive/` in that order,
 * each reported done through `onLocation` as soon as it is complete. Mails
 * found unchanged in the index cache are not parsed. Unreadable files are
 * quarantined. A mail the service put into the index meanwhile (it changed
 * while indexing ran) is left as the service has it.
 */
export class Indexer {
  readonly #ctx: MailContext;
  readonly #onLocation: (location: MailLocation) => void;
  readonly #signal?: AbortSignal;
  readonly #covered = new Set<string>();
  readonly #progress: IndexProgress = { total: 0, done: 0, location: null };
  readonly #stats: IndexStats = {
    mails: 0,
    parsed: 0,
    cached: 0,
    quarantined: 0,
    duplicatesRemoved: 0,
    cacheUsed: false,
    ms: 0,
  };

  /**
   * Creates an `Indexer`.
   *
   * @param ctx What the mail service's parts share.
   * @param options `onLocation`: called as each folder is complete; `signal`: stops the run.
   */
  constructor(
    ctx: MailContext,
    options: { onLocation: (location: MailLocation) => void; signal?: AbortSignal },
  ) {
    this.#ctx = ctx;
    this.#onLocation = options.onLocation;
    this.#signal = options.signal;
  }

  /** How far it got. */
  get progress(): IndexProgress {
    return { ...this.#progress };
  }

  /** Pending keys of every message in the mails parsed (journal records they cover). */
  get covered(): Set<string> {
    return this.#covered;
  }

  /** Indexes the mailbox; resolves with what it found (partial when stopped). */
  async run(): Promise<IndexStats> {
    const started = performance.now();
    const cache = await readIndexCache(this.#ctx.layout.indexFile);
    this.#stats.cacheUsed = cache !== null;
    for (const [key, value] of cache?.dedup ?? []) this.#ctx.dedup.loadMailEntry(key, value);
    const listed = new Map<MailLocation, ListedFile[]>();
    for (const location of INDEX_ORDER) listed.set(location, await this.#ctx.store.list(location));
    await this.#removeStaleCopies(listed, cache);
    this.#progress.total = [...listed.values()].reduce((n, files) => n + files.length, 0);
    const yielder = new Yielder();
    for (const location of INDEX_ORDER) {
      this.#progress.location = location;
      for (const file of listed.get(location)!) {
        if (this.#signal?.aborted) return this.#finish(started);
        await this.#index(location, file, cache);
        this.#progress.done++;
        await yielder.maybe();
      }
      this.#ctx.index.markIndexed(location);
      this.#onLocation(location);
    }
    this.#progress.location = null;
    return this.#finish(started);
  }

  #finish(started: number): IndexStats {
    this.#stats.mails = this.#ctx.index.size;
    this.#stats.ms = Math.round(performance.now() - started);
    return { ...this.#stats };
  }

  async #index(location: MailLocation, file: ListedFile, cache: IndexCache | null): Promise<void> {
    const id = idOfName(file.name);
    if (id !== null && this.#ctx.index.get(id)) return; // changed by the service meanwhile
    const found = await this.#load(location, file, cache);
    if (!found) return;
    const existing = this.#ctx.index.get(found.record.id);
    if (existing) {
      // Found twice under a name that does not state the id: keep the later copy.
      if (rank(existing.record) >= rank(found.record)) {
        await this.#removeCopy(this.#ctx.store.pathOf(found.record));
        return;
      }
      await this.#removeCopy(this.#ctx.store.pathOf(existing.record));
    }
    const record = found.record;
    this.#ctx.index.put(record, {
      claimed: record.location === "inbound" && this.#ctx.claims.get(record.id) !== undefined,
    });
  }

  /** The record of a listed file: from the cache when unchanged, else parsed (or quarantined). */
  async #load(
    location: MailLocation,
    file: ListedFile,
    cache: IndexCache | null,
  ): Promise<CachedMail | null> {
    const { store } = this.#ctx;
    const path = join(locationRoot(store.layout, location), file.provider, file.name);
    const cached = cache?.mails.get(cacheKey(location, file.provider, file.name));
    const stamp = MUTABLE.has(location) ? await fileStamp(path) : null;
    if (MUTABLE.has(location) && stamp === null) return null; // gone meanwhile
    if (cached && sameStamp(cached, stamp)) {
      this.#stats.cached++;
      const record = { ...cached.record, location };
      store.noteStamp(record.id, stamp);
      return { record, stamp };
    }
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch {
      return null; // moved or removed meanwhile
    }
    try {
      const fm = parseMail(text).frontMatter;
      const record = recordOf(fm, location, file.name);
      this.#stats.parsed++;
      for (const m of fm.messages) {
        if (typeof m.pending_key === "string") this.#covered.add(m.pending_key);
        if (typeof m.message_id === "string") {
          this.#ctx.dedup.addMail(
            dedupKey(fm.provider, m.message_id),
            m.pending_key,
            Date.parse(m.received_at),
          );
        }
      }
      store.noteStamp(record.id, stamp);
      return { record, stamp };
    } catch (error) {
      this.#stats.quarantined++;
      await quarantine(this.#ctx, null, path, error);
      return null;
    }
  }

  /** Finds mails listed in two folders (by file name) and removes the earlier copy. */
  async #removeStaleCopies(
    listed: Map<MailLocation, ListedFile[]>,
    cache: IndexCache | null,
  ): Promise<void> {
    const seen = new Map<string, MailLocation>();
    const twice = new Map<string, MailLocation[]>();
    for (const [location, files] of listed) {
      for (const file of files) {
        const id = idOfName(file.name);
        if (id === null) continue;
        const first = seen.get(id);
        if (first === undefined) seen.set(id, location);
        else twice.set(id, [...twice.get(id) ?? [first], location]);
      }
    }
    for (const [id, locations] of twice) {
      const copies: { location: MailLocation; file: ListedFile; record: MailRecord }[] = [];
      for (const location of locations) {
        const files = listed.get(location)!;
        const file = files.find((f) => idOfName(f.name) === id)!;
        const loaded = await this.#load(location, file, cache);
        if (loaded) copies.push({ location, file, record: loaded.record });
      }
      copies.sort((a, b) => rank(b.record) - rank(a.record));
      for (const stale of copies.slice(1)) {
        await this.#removeCopy(this.#ctx.store.pathOf(stale.record));
        const files = listed.get(stale.location)!;
        files.splice(files.indexOf(stale.file), 1);
      }
    }
  }

  async #removeCopy(path: string): Promise<void> {
    try {
      await removeIfExists(path);
      this.#stats.duplicatesRemoved++;
      this.#ctx.log.info(`mail: removed stale copy left by an interrupted move: ${path}`);
    } catch (error) {
      this.#ctx.log.warn(`mail: could not remove the stale copy ${path}: ${error}`);
    }
  }
}

function sameStamp(cached: CachedMail, stamp: CachedMail["stamp"]): boolean {
  if (stamp === null) return true; // final folders: never rewritten
  const old = cached.stamp;
  return !!old && old.size === stamp.size && old.ino === stamp.ino && old.mtime === stamp.mtime;
}
