/** Items per chunk after a split; a chunk splits when it passes twice this. */
const CHUNK = 256;

/** Options of {@link SortedList.walk}. */
export interface WalkOptions<K> {
  /** Start at this key (default: the first item in walking order). */
  from?: K;
  /** Skip an item equal to `from` (paging after a cursor). */
  exclusive?: boolean;
  /** Walk from the largest item down. */
  descending?: boolean;
}

/**
 * A sorted list of unique items, kept in chunks of a few hundred: adding,
 * removing and finding a position cost O(log N) comparisons plus a splice
 * inside one chunk, and walking from any position costs O(1) per item.
 * `K` is the sort key, `T` the item (an item is its own key).
 */
export class SortedList<K, T extends K> {
  readonly #compare: (a: K, b: K) => number;
  #chunks: T[][] = [];
  #size = 0;

  /**
   * Creates a `SortedList`.
   *
   * @param compare Orders keys; 0 means the same item.
   */
  constructor(compare: (a: K, b: K) => number) {
    this.#compare = compare;
  }

  /** How many items it holds. */
  get size(): number {
    return this.#size;
  }

  /** Adds `item` (an item equal to one already present replaces it). */
  add(item: T): void {
    if (this.#chunks.length === 0) {
      this.#chunks.push([item]);
      this.#size = 1;
      return;
    }
    const c = this.#chunkFor(item);
    const chunk = this.#chunks[c];
    const i = this.#lowerBound(chunk, item);
    if (i < chunk.length && this.#compare(chunk[i], item) === 0) {
      chunk[i] = item;
      return;
    }
    chunk.splice(i, 0, item);
    this.#size++;
    if (chunk.length > 2 * CHUNK) this.#chunks.splice(c + 1, 0, chunk.splice(CHUNK));
  }

  /** Removes the item with `key`; says whether there was one. */
  delete(key: K): boolean {
    if (this.#chunks.length === 0) return false;
    const c = this.#chunkFor(key);
    const chunk = this.#chunks[c];
    const i = this.#lowerBound(chunk, key);
    if (i >= chunk.length || this.#compare(chunk[i], key) !== 0) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(c, 1);
    return true;
  }

  /** The smallest item. */
  first(): T | undefined {
    return this.#chunks[0]?.[0];
  }

  /** The largest item. */
  last(): T | undefined {
    const chunk = this.#chunks.at(-1);
    return chunk?.[chunk.length - 1];
  }

  /** Every item, smallest first. */
  *[Symbol.iterator](): Generator<T> {
    yield* this.walk();
  }

  /**
   * Items in order from `from` (ascending, or descending), lazily. Do not
   * change the list while walking it.
   */
  *walk(options: WalkOptions<K> = {}): Generator<T> {
    const chunks = this.#chunks;
    if (chunks.length === 0) return;
    let c: number, i: number;
    if (options.from === undefined) {
      c = options.descending ? chunks.length - 1 : 0;
      i = options.descending ? chunks[c].length - 1 : 0;
    } else {
      c = this.#chunkFor(options.from);
      i = this.#lowerBound(chunks[c], options.from);
      const at = chunks[c][i];
      const equal = at !== undefined && this.#compare(at, options.from) === 0;
      if (options.descending) {
        // the last item below `from` (or equal to it, when not exclusive)
        if (!equal || options.exclusive) i--;
      } else if (equal && options.exclusive) {
        i++;
      }
    }
    if (options.descending) {
      while (c >= 0) {
        const chunk = chunks[c];
        if (i >= chunk.length) i = chunk.length - 1;
        for (; i >= 0; i--) yield chunk[i];
        c--;
        if (c >= 0) i = chunks[c].length - 1;
      }
    } else {
      while (c < chunks.length) {
        const chunk = chunks[c];
        for (; i < chunk.length; i++) yield chunk[i];
        c++;
        i = 0;
      }
    }
  }

  /** The index of the first chunk whose last item is ≥ `key` (else the last chunk). */
  #chunkFor(key: K): number {
    const chunks = this.#chunks;
    let lo = 0, hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = chunks[mid];
      if (this.#compare(chunk[chunk.length - 1], key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first position in `chunk` whose item is ≥ `key`. */
  #lowerBound(chunk: T[], key: K): number {
    let lo = 0, hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compare(chunk[mid], key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
