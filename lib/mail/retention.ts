import { dedupWindowMs } from "./config.ts";
import type { MailContext } from "./context.ts";
import { MailIndexingError } from "./errors.ts";
import type { IndexEntry } from "./mail_index.ts";

const DAY_MS = 86_400_000;
/** How often the retention settings are applied. */
const RETENTION_EVERY_MS = 3_600_000;

/** The final statuses a prune may remove. */
export type PrunableStatus = "done" | "dead";

/** What to prune. */
export interface PruneOptions {
  /** Mails finished (completed, delivered or dead-lettered) longer ago than this (ms). */
  olderThanMs: number;
  /** Which mails (default both). */
  statuses?: PrunableStatus[];
  /** Only count them. */
  dryRun?: boolean;
}

/** What a prune removed (or, on a dry run, would remove). */
export interface PruneResult {
  /** Mails removed. */
  pruned: number;
  /** Of them, done. */
  done: number;
  /** Of them, dead. */
  dead: number;
  /** The cutoff: mails finished before this. ISO 8601. */
  before: string;
  /** Nothing was removed: only counted. */
  dry_run: boolean;
}

function finishedMs(entry: IndexEntry): number {
  return entry.record.finished_ms ?? entry.record.received_ms;
}

/**
 * Retention: removes done and dead mails some time after they finished,
 * on demand (`prune`, what `courier mail prune --older-than` calls) and
 * every hour by the `archive_retention_days` and
 * `deadletter_retention_days` settings; and forgets message ids older than
 * the deduplication window (`dedup_window_days`, never longer than mails
 * are kept).
 */
export class Retention {
  readonly #ctx: MailContext;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  /**
   * Creates a `Retention`.
   *
   * @param ctx What the mail service's parts share.
   */
  constructor(ctx: MailContext) {
    this.#ctx = ctx;
  }

  /** Applies the retention settings now and every hour after (when any is set). */
  start(): void {
    const settings = this.#ctx.settings;
    const { archiveRetentionDays, deadletterRetentionDays } = settings;
    if (
      archiveRetentionDays === null && deadletterRetentionDays === null &&
      !Number.isFinite(dedupWindowMs(settings))
    ) return;
    this.#schedule(0);
  }

  /** Stops the hourly run. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /**
   * Removes done and/or dead mails finished more than `olderThanMs` ago
   * (each under its mail's lock, so a requeue in progress wins).
   *
   * @throws {MailIndexingError} while those folders are still being indexed.
   */
  async prune(options: PruneOptions): Promise<PruneResult> {
    const { index, store, claims, locks, log } = this.#ctx;
    const statuses = options.statuses ?? ["done", "dead"];
    const missing = index.missing(statuses);
    if (missing.length > 0) throw new MailIndexingError({ indexed: index.size, pending: missing });
    const cutoff = this.#ctx.now() - options.olderThanMs;
    const result: PruneResult = {
      pruned: 0,
      done: 0,
      dead: 0,
      before: new Date(cutoff).toISOString(),
      dry_run: options.dryRun ?? false,
    };
    const candidates: IndexEntry[] = [];
    for (const status of statuses) {
      for (const entry of index.each(status)) {
        if (finishedMs(entry) < cutoff) candidates.push(entry);
      }
    }
    const removed: IndexEntry[] = [];
    for (const candidate of candidates) {
      await locks.run(candidate.id, async () => {
        const entry = index.get(candidate.id);
        if (entry !== candidate || finishedMs(entry) >= cutoff) return; // changed meanwhile
        if (!result.dry_run) {
          await store.unlink(entry.record);
          index.remove(entry.id);
          claims.release(entry.id);
        }
        removed.push(entry);
        result[entry.status as PrunableStatus]++;
        result.pruned++;
      });
    }
    if (!result.dry_run && removed.length > 0) {
      await store.syncDirs(removed.map((e) => e.record));
      log.info(
        `mail: pruned ${result.pruned} mail(s) (${result.done} done, ${result.dead} dead) ` +
          `finished before ${result.before}`,
      );
    }
    return result;
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#apply().catch((error) => {
        this.#ctx.log.error(`mail: applying the retention settings failed: ${error}`);
      }).finally(() => this.#schedule(RETENTION_EVERY_MS));
    }, delay);
  }

  async #apply(): Promise<void> {
    const { archiveRetentionDays: archive, deadletterRetentionDays: dead } = this.#ctx.settings;
    if (archive !== null) await this.prune({ olderThanMs: archive * DAY_MS, statuses: ["done"] });
    if (dead !== null) await this.prune({ olderThanMs: dead * DAY_MS, statuses: ["dead"] });
    const window = dedupWindowMs(this.#ctx.settings);
    if (Number.isFinite(window)) {
      const forgotten = this.#ctx.dedup.expire(this.#ctx.now() - window);
      if (forgotten > 0) {
        this.#ctx.log.info(
          `mail: forgot ${forgotten} message id(s) older than ${window / DAY_MS} day(s)`,
        );
      }
    }
  }
}
