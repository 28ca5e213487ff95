import type { Logger } from "../log/mod.ts";
import type { ClaimTable } from "./claims.ts";
import type { MailSettings } from "./config.ts";
import type { DedupTable } from "./dedup.ts";
import {
  isStorageFault,
  MailIndexingError,
  MailNotFoundError,
  MailStorageError,
} from "./errors.ts";
import type { MailEvents } from "./events.ts";
import type { IndexEntry, MailIndex } from "./mail_index.ts";
import type { MailboxLayout } from "./mailbox.ts";
import type { MailDocument } from "./mail_file.ts";
import type { MailStore } from "./store.ts";

/** Counters of `/health` (since start). */
export interface MailCounters {
  /** Inbound messages acknowledged (duplicates not counted). */
  received: number;
  /** Repeated `message_id`s acknowledged without storing them again. */
  duplicates: number;
  /** Inbound mails written. */
  mails_written: number;
  /** Mails completed by agents. */
  completed: number;
  /** Outbound mails delivered. */
  sent: number;
  /** Failed attempts (agent `fail`s, expired claims, outbound delivery errors). */
  failed: number;
}

/** One way the disk is failing courier right now. */
export interface Fault {
  /** What cannot be written (`mail writes`, `claims`…). */
  area: string;
  /** The last error, in the system's words. */
  reason: string;
  /** When it started failing. ISO 8601. */
  since: string;
}

/**
 * What is failing now, for `/health`'s `degraded`: each area reports its
 * errors and clears them once a write succeeds again.
 */
export class Faults {
  readonly #now: () => number;
  readonly #faults = new Map<string, Fault>();

  /**
   * Creates a `Faults`.
   *
   * @param now The clock in ms.
   */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** `area` failed with `error` (the first failure's time is kept). */
  report(area: string, error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    const since = this.#faults.get(area)?.since ?? new Date(this.#now()).toISOString();
    this.#faults.set(area, { area, reason, since });
  }

  /** `area` works again; says whether it had been failing. */
  clear(area: string): boolean {
    return this.#faults.delete(area);
  }

  /** What fails now. */
  list(): Fault[] {
    return [...this.#faults.values()];
  }
}

/**
 * Runs work on one key at a time, in call order (the per-mail lock every
 * change of a mail takes, so two changes never interleave).
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier `run` on `key` has settled. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn);
    const tail = result.then(() => {}, () => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** Resolves once all work started so far has settled. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#tails.values()]);
  }
}

/** What the parts of the mail service share. */
export interface MailContext {
  /** The mailbox's paths. */
  readonly layout: MailboxLayout;
  /** The resolved settings. */
  readonly settings: MailSettings;
  /** The mail files. */
  readonly store: MailStore;
  /** The in-memory index. */
  readonly index: MailIndex;
  /** Who holds which mail. */
  readonly claims: ClaimTable;
  /** Message ids stored. */
  readonly dedup: DedupTable;
  /** The event stream. */
  readonly events: MailEvents;
  /** The per-mail lock. */
  readonly locks: KeyedMutex;
  /** What fails now. */
  readonly faults: Faults;
  /** The daemon's log. */
  readonly log: Logger;
  /** The clock in ms. */
  readonly now: () => number;
  /** Counters since start. */
  readonly counters: MailCounters;
}

/** An ISO 8601 timestamp of the context's clock. */
export function isoNow(ctx: Pick<MailContext, "now">): string {
  return new Date(ctx.now()).toISOString();
}

/**
 * The index entry of `id`.
 *
 * @throws {MailNotFoundError} when there is no such mail.
 * @throws {MailIndexingError} when it may be in a folder not indexed yet.
 */
export function requireEntry(ctx: MailContext, id: string): IndexEntry {
  ctx.index.refresh();
  const entry = ctx.index.get(id);
  if (entry) return entry;
  const pending = ctx.index.missing([]);
  if (pending.length > 0) {
    throw new MailIndexingError({ indexed: ctx.index.size, pending });
  }
  throw new MailNotFoundError(id);
}

/**
 * Reads a mail's file. An unreadable one is moved to `.corrupt/` and
 * dropped from the index (with a warning); a vanished one is dropped. A mail
 * that moved while it was read (completed, dead-lettered) is read where it
 * went, instead of being taken for vanished.
 *
 * @throws {MailNotFoundError} when the file is unreadable or gone.
 * @throws {MailStorageError} when the disk refuses the read.
 */
export async function readMail(ctx: MailContext, entry: IndexEntry): Promise<MailDocument> {
  const path = ctx.store.pathOf(entry.record);
  try {
    return await ctx.store.read(entry.record);
  } catch (error) {
    const now = ctx.index.get(entry.id);
    if (error instanceof Deno.errors.NotFound && now && now.record !== entry.record) {
      return await readMail(ctx, now); // moved meanwhile: its index entry is newer than ours
    }
    if (error instanceof Deno.errors.NotFound) {
      if (!now) throw new MailNotFoundError(entry.id); // removed meanwhile (pruned)
      forget(ctx, entry);
      ctx.log.warn(`mail: ${entry.id} vanished from ${path}; dropped from the index`);
      throw new MailNotFoundError(entry.id, {
        message: `mail ${entry.id} is gone: its file ${path} was removed outside courier`,
      });
    }
    if (isStorageFault(error)) {
      throw new MailStorageError(`read mail ${entry.id}`, error, ctx.layout.root);
    }
    const moved = await quarantine(ctx, entry, path, error);
    throw new MailNotFoundError(entry.id, {
      message: `mail ${entry.id} was unreadable (${(error as Error).message}); ` +
        `moved to ${moved ?? "nowhere (the move failed)"} and dropped from the mailbox`,
      extra: moved ? { quarantined: moved } : {},
    });
  }
}

/**
 * Moves an unreadable mail file to `.corrupt/`, drops it from the index and
 * logs a warning; returns where it went (`null` when the move failed too).
 */
export async function quarantine(
  ctx: MailContext,
  entry: IndexEntry | null,
  path: string,
  error: unknown,
): Promise<string | null> {
  if (entry) forget(ctx, entry);
  const reason = error instanceof Error ? error.message : String(error);
  try {
    const moved = await ctx.store.quarantine(path);
    ctx.log.warn(`mail: unreadable mail file ${path} (${reason}); moved to ${moved}`);
    return moved;
  } catch (moveError) {
    ctx.log.warn(
      `mail: unreadable mail file ${path} (${reason}); could not move it to ` +
        `${ctx.layout.corruptDir}: ${(moveError as Error).message}`,
    );
    return null;
  }
}

function forget(ctx: MailContext, entry: IndexEntry): void {
  ctx.index.remove(entry.id);
  ctx.claims.release(entry.id);
}

/**
 * Runs a write of the mail's state; turns a file system refusal into a
 * {@link MailStorageError} (503, nothing changed) and reports it as a fault.
 */
export async function storageWrite<T>(
  ctx: MailContext,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    const result = await fn();
    ctx.faults.clear("mail state");
    return result;
  } catch (error) {
    if (!isStorageFault(error)) throw error;
    ctx.faults.report("mail state", error);
    ctx.log.error(`mail: could not ${what}: ${(error as Error).message}`);
    throw new MailStorageError(what, error, ctx.layout.root);
  }
}
