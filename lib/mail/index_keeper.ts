import type { MailContext } from "./context.ts";
import { MailIndexingError } from "./errors.ts";
import { Indexer, type IndexProgress, type IndexStats } from "./indexer.ts";
import { INDEX_ORDER, type IndexCacheContent, writeIndexCache } from "./index_cache.ts";
import type { MailLocation } from "./mailbox.ts";
import { recordFileName } from "./store.ts";

type CacheEntry = IndexCacheContent["mails"] extends Iterable<infer T> ? T : never;

/**
 * The index's life: builds it in the background (an {@link Indexer}),
 * lets requests wait briefly for the folders they need, and saves the
 * index cache.
 */
export class IndexKeeper {
  readonly #ctx: MailContext;
  readonly #indexer: Indexer;
  readonly #waiters = new Map<MailLocation, (() => void)[]>();
  #stats: IndexStats | null = null;

  /**
   * Creates an `IndexKeeper`.
   *
   * @param ctx What the mail service's parts share.
   * @param options `onLocation`: called as each folder is complete; `signal`: stops indexing.
   */
  constructor(
    ctx: MailContext,
    options: { onLocation: (location: MailLocation) => void; signal: AbortSignal },
  ) {
    this.#ctx = ctx;
    this.#indexer = new Indexer(ctx, {
      onLocation: (location) => {
        options.onLocation(location);
        for (const wake of this.#waiters.get(location) ?? []) wake();
        this.#waiters.delete(location);
      },
      signal: options.signal,
    });
  }

  /** What indexing found (`null` until it is complete). */
  get stats(): IndexStats | null {
    return this.#stats;
  }

  /** How far indexing got, or `null` when it is done. */
  progress(): IndexProgress | null {
    return this.#stats ? null : this.#indexer.progress;
  }

  /** Indexes the mailbox; `null` when stopped or failed (logged). */
  async run(): Promise<IndexStats | null> {
    const stats = await this.#indexer.run().catch((error) => {
      this.#ctx.log.error(`mail: indexing the mailbox failed: ${error}`);
      return null;
    });
    if (stats && this.#ctx.index.missing([]).length === 0) this.#stats = stats;
    return this.#stats;
  }

  /** Pending keys of the mails parsed (see {@link Indexer.takeCovered}). */
  takeCovered(): Set<string> {
    return this.#indexer.takeCovered();
  }

  /** Waits (up to the `indexWaitMs` setting) for `locations` to be indexed. */
  async waitFor(locations: MailLocation[]): Promise<void> {
    const ctx = this.#ctx;
    if (locations.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waits = locations.map((location) =>
      new Promise<void>((resolve) => {
        const list = this.#waiters.get(location) ?? [];
        list.push(resolve);
        this.#waiters.set(location, list);
      })
    );
    await Promise.race([
      Promise.all(waits),
      new Promise((resolve) => (timer = setTimeout(resolve, ctx.settings.indexWaitMs))),
    ]);
    clearTimeout(timer);
    const missing = locations.filter((location) => !ctx.index.isIndexed(location));
    if (missing.length > 0) {
      throw new MailIndexingError({ indexed: ctx.index.size, pending: missing });
    }
  }

  /** Runs `fn`; when it needed a mail not indexed yet, waits for the index and runs it again. */
  async retry<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof MailIndexingError)) throw error;
      await this.waitFor(this.#ctx.index.missing([]));
      return await fn();
    }
  }

  /** Writes the index cache; call only while the journal is empty. Never throws. */
  async saveCache(): Promise<void> {
    const ctx = this.#ctx;
    // Taken synchronously, so it is the index as of now; grouped by folder in indexing order.
    const groups = new Map(INDEX_ORDER.map((location) => [location, [] as CacheEntry[]]));
    for (const entry of ctx.index.entries()) {
      const record = entry.record;
      const stamp = ctx.store.stampOf(record.id) ?? null;
      if ((record.location === "inbound" || record.location === "outbound") && !stamp) continue;
      groups.get(record.location)!.push({
        record,
        name: record.file ?? recordFileName(record),
        stamp,
      });
    }
    const mails = [...groups.values()].flat();
    try {
      await writeIndexCache(ctx.layout.indexFile, { mails, dedup: ctx.dedup.mailEntries() });
      ctx.faults.clear("index cache");
    } catch (error) {
      ctx.log.warn(
        `mail: could not save the index cache (the next start parses every mail): ${error}`,
      );
      await Deno.remove(ctx.layout.indexFile).catch(() => {});
    }
  }
}
