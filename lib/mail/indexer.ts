import { join } from "node:path";
import { removeIfExists } from "../fs/mod.ts";
import { type MailContext, quarantine } from "./context.ts";
import { dedupKey, detached } from "./dedup.ts";
import { type CachedMail, INDEX_ORDER, IndexCacheReader, Yielder } from "./index_cache.ts";
import type { MailRecord } from "./mail_index.ts";
import { locationRoot, type MailLocation } from "./mailbox.ts";
import { parseMail } from "./mail_file.ts";
import { type FileStamp, fileStamp, type ListedFile, MUTABLE, recordOf } from "./store.ts";

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

function sameStamp(a: FileStamp | null, b: FileStamp | null): boolean {
  return !!a && !!b && a.size === b.size && a.ino === b.ino && a.mtime === b.mtime;
}

/**
 * Builds the in-memory index from the mail files, in the background while
 * the service already serves: lists every folder first (and removes the
 * stale copy of any mail a crash left in two folders), then indexes
 * `inbound/`, `outbound/`, `.deadletter/` and `archive/` in that order,
 * each reported through `onLocation` as soon as it is complete. Each folder
 * takes the mails the index cache knows (streamed, files in mutable folders
 * checked by size, inode and mtime), then parses the rest. Unreadable files
 * are quarantined.
 */
export class Indexer {
  readonly #ctx: MailContext;
  readonly #onLocation: (location: MailLocation) => void;
  readonly #signal?: AbortSignal;
  #covered = new Set<string>();
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

  /**
   * Pending keys of every message in the mails parsed (the journal records
   * they cover); handed over once, then forgotten.
   */
  takeCovered(): Set<string> {
    const covered = this.#covered;
    this.#covered = new Set();
    return covered;
  }

  /** Indexes the mailbox; resolves with what it found (partial when stopped). */
  async run(): Promise<IndexStats> {
    const started = performance.now();
    const yielder = new Yielder();
    const cache = await IndexCacheReader.open(this.#ctx.layout.indexFile);
    this.#stats.cacheUsed = cache !== null;
    try {
      const listed = new Map<MailLocation, ListedFile[]>();
      for (const location of INDEX_ORDER) {
        listed.set(location, await this.#ctx.store.list(location));
      }
      await this.#removeStaleCopies(listed);
      this.#progress.total = [...listed.values()].reduce((n, files) => n + files.length, 0);
      for (const location of INDEX_ORDER) {
        this.#progress.location = location;
        const todo = new Map<string, Set<string>>();
        for (const file of listed.get(location)!) {
          let names = todo.get(file.provider);
          if (!names) todo.set(file.provider, names = new Set());
          names.add(file.name);
        }
        listed.delete(location);
        for (let mail; cache && (mail = await cache.nextMail(location));) {
          if (this.#signal?.aborted) return this.#finish(started);
          const names = todo.get(mail.provider);
          if (!names?.has(mail.name) || !(await this.#fromCache(mail))) continue;
          names.delete(mail.name);
          this.#progress.done++;
          await yielder.maybe();
        }
        for (const [provider, names] of todo) {
          for (const name of names) {
            if (this.#signal?.aborted) return this.#finish(started);
            await this.#fromFile(location, { provider, name });
            this.#progress.done++;
            await yielder.maybe();
          }
        }
        this.#ctx.index.markIndexed(location);
        this.#onLocation(location);
      }
      if (cache) {
        await cache.finish();
        for (const [key, value] of cache.dedup) this.#ctx.dedup.loadMailEntry(key, value);
      }
      this.#progress.location = null;
      return this.#finish(started);
    } finally {
      yielder.close();
      await cache?.close();
    }
  }

  #finish(started: number): IndexStats {
    this.#stats.mails = this.#ctx.index.size;
    this.#stats.ms = Math.round(performance.now() - started);
    return { ...this.#stats };
  }

  /** Indexes a cached mail if its file is unchanged; false when it must be parsed. */
  async #fromCache(mail: CachedMail): Promise<boolean> {
    let stamp: FileStamp | null = null;
    if (MUTABLE.has(mail.location)) {
      stamp = await fileStamp(this.#path(mail.location, mail));
      if (!sameStamp(stamp, mail.stamp)) return false;
    }
    mail.record.location = mail.location;
    this.#stats.cached++;
    await this.#put(mail.record, stamp);
    return true;
  }

  /** Parses a mail file and indexes it (quarantining it when unreadable). */
  async #fromFile(location: MailLocation, file: ListedFile): Promise<void> {
    const path = this.#path(location, file);
    const stamp = MUTABLE.has(location) ? await fileStamp(path) : null;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch {
      return; // moved or removed meanwhile
    }
    let record: MailRecord;
    try {
      const fm = parseMail(text).frontMatter;
      record = recordOf(fm, location, file.name);
      for (const m of fm.messages) {
        if (typeof m.pending_key === "string") this.#covered.add(detached(m.pending_key));
        if (typeof m.message_id === "string") {
          const key = dedupKey(fm.provider, m.message_id);
          this.#ctx.dedup.addMail(key, m.pending_key, Date.parse(m.received_at));
        }
      }
    } catch (error) {
      this.#stats.quarantined++;
      await quarantine(this.#ctx, null, path, error);
      return;
    }
    this.#stats.parsed++;
    await this.#put(record, stamp);
  }

  /** Puts a record into the index; of two copies of one mail the later is kept. */
  async #put(record: MailRecord, stamp: FileStamp | null): Promise<void> {
    const { index, store, claims } = this.#ctx;
    const existing = index.get(record.id);
    if (existing) {
      if (existing.record.location === record.location && !existing.record.file) return;
      const [keep, drop] = rank(existing.record) >= rank(record)
        ? [existing.record, record]
        : [record, existing.record];
      await this.#removeCopy(store.pathOf(drop));
      if (keep === existing.record) return;
    }
    store.noteStamp(record.id, stamp);
    index.put(record, {
      claimed: record.location === "inbound" && claims.get(record.id) !== undefined,
    });
  }

  #path(location: MailLocation, file: { provider: string; name: string }): string {
    return join(locationRoot(this.#ctx.layout, location), file.provider, file.name);
  }

  /** Finds mails listed in two folders (by file name) and removes the earlier copy. */
  async #removeStaleCopies(listed: Map<MailLocation, ListedFile[]>): Promise<void> {
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
      const copies: { location: MailLocation; file: ListedFile; rank: number }[] = [];
      for (const location of locations) {
        const file = listed.get(location)!.find((f) => idOfName(f.name) === id)!;
        try {
          const fm = parseMail(await Deno.readTextFile(this.#path(location, file))).frontMatter;
          copies.push({ location, file, rank: rank(recordOf(fm, location, file.name)) });
        } catch {
          // unreadable: indexing quarantines it
        }
      }
      copies.sort((a, b) => b.rank - a.rank);
      for (const stale of copies.slice(1)) {
        await this.#removeCopy(this.#path(stale.location, stale.file));
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
