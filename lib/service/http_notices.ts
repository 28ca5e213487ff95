/**
 * Log lines of the daemon's HTTP server that could repeat thousands of
 * times a second (accept errors, the connection limit), rate-limited.
 *
 * @module
 */

/** Where the server reports what it did (a daemon's `Logger` fits). */
export interface ServerLog {
  /** Something an operator should know about. */
  warn(message: string): void;
  /** Something that went wrong. */
  error(message: string): void;
}

const NOTICE_INTERVAL_MS = 10_000;

/** Log lines that could repeat thousands of times a second: the first, then a count per 10 s. */
export class Notices {
  readonly #log: ServerLog | undefined;
  readonly #seen = new Map<string, { at: number; more: number; level: keyof ServerLog }>();

  /**
   * Creates the notices of one server.
   *
   * @param log Where they go (`undefined`: nowhere).
   */
  constructor(log: ServerLog | undefined) {
    this.#log = log;
  }

  /** Logs `message` at `level`, unless a line of `key` went out less than 10 s ago (counted). */
  note(key: string, level: keyof ServerLog, message: string): void {
    const now = performance.now();
    const seen = this.#seen.get(key);
    if (seen && now - seen.at < NOTICE_INTERVAL_MS) {
      seen.more++;
      return;
    }
    this.#seen.set(key, { at: now, more: 0, level });
    this.#log?.[level](message);
  }

  /** Reports the counts of lines held back for 10 s or more (or all, with `all`). */
  flush(all = false): void {
    const now = performance.now();
    for (const [key, seen] of this.#seen) {
      if (!all && now - seen.at < NOTICE_INTERVAL_MS) continue;
      if (seen.more > 0) {
        this.#log?.[seen.level](
          `${key}: ${seen.more} more time(s) in the last ${Math.round((now - seen.at) / 1000)} s`,
        );
      }
      this.#seen.delete(key);
    }
  }
}
