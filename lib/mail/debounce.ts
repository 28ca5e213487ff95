/** Options of {@link Debouncer}. */
export interface DebounceOptions {
  /** Flush a bucket this long after its last item (ms). */
  windowMs: number;
  /** Flush a bucket at the latest this long after its first item (ms). */
  maxWaitMs: number;
  /** Flush a bucket once it holds this many items (default: no limit). */
  maxItems?: number;
  /** The clock (ms); defaults to `Date.now`. */
  now?: () => number;
}

interface Bucket<T> {
  items: T[];
  firstAt: number;
  lastAt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  dueAt: number;
}

/** Called with the items of a closed bucket, in arrival order. */
export type FlushHandler<T> = (key: string, items: T[]) => void;

/**
 * Groups items by key into buckets that close `windowMs` after their last
 * item, or `maxWaitMs` after their first, whichever comes first. A closed
 * bucket is handed to the flush handler and a new item with the same key
 * opens a new bucket. One timer per bucket, re-armed only when it fires
 * early, so adding an item costs no timer churn.
 */
export class Debouncer<T> {
  readonly #buckets = new Map<string, Bucket<T>>();
  readonly #onFlush: FlushHandler<T>;
  readonly #windowMs: number;
  readonly #maxWaitMs: number;
  readonly #maxItems: number;
  readonly #now: () => number;
  #count = 0;

  /**
   * Creates a `Debouncer`.
   *
   * @param onFlush Receives each closed bucket (synchronously; it owns any async work).
   * @param options The window, the maximum wait and the clock.
   */
  constructor(onFlush: FlushHandler<T>, options: DebounceOptions) {
    this.#onFlush = onFlush;
    this.#windowMs = Math.max(0, options.windowMs);
    this.#maxWaitMs = Math.max(0, options.maxWaitMs);
    this.#maxItems = options.maxItems ?? Number.POSITIVE_INFINITY;
    this.#now = options.now ?? Date.now;
  }

  /** Items waiting in open buckets. */
  get pendingCount(): number {
    return this.#count;
  }

  /** Open buckets. */
  get bucketCount(): number {
    return this.#buckets.size;
  }

  /** Adds `item` to the bucket of `key`, opening it if needed. */
  add(key: string, item: T): void {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (
      bucket && (now - bucket.firstAt >= this.#maxWaitMs || now - bucket.lastAt >= this.#windowMs)
    ) {
      // Its timer is late (a busy event loop): the window and max wait still cut here.
      this.#close(key, bucket);
      bucket = undefined;
    }
    if (!bucket) {
      bucket = { items: [], firstAt: now, lastAt: now, timer: undefined, dueAt: 0 };
      this.#buckets.set(key, bucket);
    }
    bucket.items.push(item);
    bucket.lastAt = now;
    this.#count++;
    if (bucket.items.length >= this.#maxItems) {
      this.#close(key, bucket);
      return;
    }
    bucket.dueAt = Math.min(bucket.lastAt + this.#windowMs, bucket.firstAt + this.#maxWaitMs);
    if (bucket.timer === undefined) this.#arm(key, bucket);
  }

  /** Closes every open bucket now (shutdown). */
  flushAll(): void {
    for (const [key, bucket] of [...this.#buckets]) this.#close(key, bucket);
  }

  #arm(key: string, bucket: Bucket<T>): void {
    const delay = Math.max(0, bucket.dueAt - this.#now());
    bucket.timer = setTimeout(() => {
      bucket.timer = undefined;
      if (this.#buckets.get(key) !== bucket) return;
      if (this.#now() >= bucket.dueAt) this.#close(key, bucket);
      else this.#arm(key, bucket);
    }, delay);
  }

  #close(key: string, bucket: Bucket<T>): void {
    if (bucket.timer !== undefined) clearTimeout(bucket.timer);
    bucket.timer = undefined;
    this.#buckets.delete(key);
    this.#count -= bucket.items.length;
    this.#onFlush(key, bucket.items);
  }
}
