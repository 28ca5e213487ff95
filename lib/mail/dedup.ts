const DAY_MS = 86_400_000;

/**
 * A copy of `text` that shares no memory with the string it was cut from
 * (a message id cut out of a parsed mail file would otherwise keep the
 * whole file's text alive as long as the table keeps the id).
 */
export function detached(text: string): string {
  return (" " + text).slice(1);
}

/** The key under which a message id is deduplicated. */
export function dedupKey(provider: string, messageId: string): string {
  return detached(`${provider}\u0000${messageId}`);
}

/**
 * Which message ids courier has stored, and under which pending key, so a
 * repeated `message_id` (a platform retrying, or a sender retrying after an
 * error) is acknowledged with the first copy's key and stored once. Three
 * tiers, looked up in this order: ids in a mail (with the day the message
 * arrived, so they can be forgotten after the retention window), ids only
 * in the pending journal so far, and ids whose journal write is under way.
 */
export class DedupTable {
  readonly #windowDays: number;
  readonly #now: () => number;
  /** In a mail: key → `<day>|<pending key>`. */
  readonly #mail = new Map<string, string>();
  /** Acknowledged, only in the journal: key → pending key. */
  readonly #journal = new Map<string, string>();
  /** Being written to the journal: key → the pending key once durable. */
  readonly #inflight = new Map<string, Promise<string>>();

  /**
   * Creates a `DedupTable`.
   *
   * @param options `windowMs`: ids of messages older than this are not kept
   *   (default forever); `now`: the clock in ms.
   */
  constructor(options: { windowMs?: number; now?: () => number } = {}) {
    this.#windowDays = (options.windowMs ?? Number.POSITIVE_INFINITY) / DAY_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Message ids remembered (in mails and in the journal). */
  get size(): number {
    return this.#mail.size + this.#journal.size;
  }

  /**
   * The pending key a repeat of `key` is acknowledged with: a string, a
   * promise while the first copy is being written (it rejects if that
   * write fails), or `undefined` for an id never seen.
   */
  lookup(key: string): string | Promise<string> | undefined {
    const mail = this.#mail.get(key);
    if (mail !== undefined) return mail.slice(mail.indexOf("|") + 1);
    return this.#journal.get(key) ?? this.#inflight.get(key);
  }

  /**
   * The pending key of the copy that is kept: the one in a mail, else the
   * last one acknowledged into the journal. A journal record of `key` with
   * another pending key is a second copy and must not be folded.
   */
  canonical(key: string): string | undefined {
    const mail = this.#mail.get(key);
    if (mail !== undefined) return mail.slice(mail.indexOf("|") + 1);
    return this.#journal.get(key);
  }

  /** Records that the first copy of `key` is being written; `stored` resolves to its key. */
  appending(key: string, stored: Promise<string>): void {
    stored.catch(() => {});
    this.#inflight.set(key, stored);
    stored.then(
      (pendingKey) => {
        if (this.#inflight.get(key) === stored) this.#inflight.delete(key);
        if (!this.#mail.has(key)) this.#journal.set(key, pendingKey);
      },
      () => {
        if (this.#inflight.get(key) === stored) this.#inflight.delete(key);
      },
    );
  }

  /** A journal record of the last run (replayed in file order: the last copy wins). */
  addJournal(key: string, pendingKey: string): void {
    if (!this.#mail.has(key)) this.#journal.set(key, pendingKey);
  }

  /** A message `key` is in a mail under `pendingKey`; it arrived at `receivedMs`. */
  addMail(key: string, pendingKey: string, receivedMs: number): void {
    if (this.#journal.get(key) === pendingKey) this.#journal.delete(key);
    const day = Number.isFinite(receivedMs) ? Math.floor(receivedMs / DAY_MS) : 0;
    if (this.#tooOld(day)) return;
    this.#mail.set(key, detached(`${day}|${pendingKey}`));
  }

  /** A journal record of `key` was dropped as a second copy: forget it. */
  dropped(key: string, pendingKey: string): void {
    if (this.#journal.get(key) === pendingKey) this.#journal.delete(key);
  }

  /** Forgets ids of mails whose messages arrived before `beforeMs`; says how many. */
  expire(beforeMs: number): number {
    const day = Math.floor(beforeMs / DAY_MS);
    let removed = 0;
    for (const [key, value] of this.#mail) {
      if (Number(value.slice(0, value.indexOf("|"))) < day) {
        this.#mail.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /** The ids in mails, as `[key, "<day>|<pending key>"]` (for the index cache). */
  mailEntries(): IterableIterator<[string, string]> {
    return this.#mail.entries();
  }

  /** Loads ids from the index cache (entries already known win). */
  loadMailEntry(key: string, value: string): void {
    const bar = value.indexOf("|");
    if (bar < 0 || this.#mail.has(key) || this.#tooOld(Number(value.slice(0, bar)))) return;
    this.#mail.set(key, value);
  }

  #tooOld(day: number): boolean {
    return day < Math.floor(this.#now() / DAY_MS) - this.#windowDays;
  }
}
