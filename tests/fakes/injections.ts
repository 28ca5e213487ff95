/** Answers a fake platform gives instead of its normal one, queued per API method. */
export class Injections<T> {
  readonly #queues = new Map<string, T[]>();

  /** Queues `answer` for the next call of `method` (answers are used in order, once each). */
  add(method: string, answer: T): void {
    const queue = this.#queues.get(method) ?? [];
    queue.push(answer);
    this.#queues.set(method, queue);
  }

  /** The next queued answer for `method`, if any (removed from the queue). */
  take(method: string): T | undefined {
    return this.#queues.get(method)?.shift();
  }
}
