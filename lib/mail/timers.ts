/** The longest delay `setTimeout` takes (about 24.8 days). */
const MAX_DELAY = 2 ** 31 - 1;

interface Due<T> {
  at: number;
  seq: number;
  item: T;
}

/**
 * Items due at given times, with one timer for the earliest: a binary heap
 * of (time, item). When the timer fires, or {@link TimerQueue.runDue} is
 * called, every item whose time has come is handed to `onDue`, earliest
 * first. Items are never cancelled: the handler checks whether the item
 * still means anything (a claim renewed, a retry time changed).
 */
export class TimerQueue<T> {
  readonly #onDue: (item: T) => void;
  readonly #now: () => number;
  #heap: Due<T>[] = [];
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #stopped = false;

  /**
   * Creates a `TimerQueue`.
   *
   * @param onDue Called with each item once its time has come.
   * @param options `now`: the clock in ms (default `Date.now`).
   */
  constructor(onDue: (item: T) => void, options: { now?: () => number } = {}) {
    this.#onDue = onDue;
    this.#now = options.now ?? Date.now;
  }

  /** Items waiting. */
  get size(): number {
    return this.#heap.length;
  }

  /** Hands `item` to `onDue` at `atMs` (at once when that has passed, on the next tick). */
  schedule(item: T, atMs: number): void {
    if (this.#stopped) return;
    this.#push({ at: atMs, seq: this.#seq++, item });
    this.#arm();
  }

  /** Hands over every item that is due now, synchronously. */
  runDue(): void {
    const now = this.#now();
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const due = this.#pop()!;
      this.#onDue(due.item);
    }
    this.#arm();
  }

  /** Forgets every item and the timer. */
  stop(): void {
    this.#stopped = true;
    this.#heap = [];
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  #arm(): void {
    const next = this.#heap[0]?.at;
    if (next === undefined || this.#stopped) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.#timer !== undefined && this.#timerAt <= next) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = next;
    const delay = Math.min(MAX_DELAY, Math.max(0, next - this.#now()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      this.runDue();
    }, delay);
  }

  #push(due: Due<T>): void {
    const heap = this.#heap;
    heap.push(due);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  #pop(): Due<T> | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l], heap[m])) m = l;
        if (r < heap.length && before(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  }
}

function before<T>(a: Due<T>, b: Due<T>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
