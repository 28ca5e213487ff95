import { timingSafeEqual } from "./compare.ts";
import { readTokenFileSync, TokenFileError } from "./token.ts";

/** How often, at most, {@link LiveToken} looks at its file again (ms). */
export const TOKEN_RECHECK_MS = 200;

/** Options of {@link LiveToken}. */
export interface LiveTokenOptions {
  /** Look at the file again at most this often (ms, default {@link TOKEN_RECHECK_MS}). */
  recheckMs?: number;
  /** The clock (ms, default `performance.now`). */
  now?: () => number;
  /**
   * Called when the token changes: `null` when a new token was taken (the
   * file was rotated), the error when the file became unusable (from then on
   * no token is accepted until it is usable again).
   */
  onChange?: (problem: TokenFileError | null) => void;
}

/**
 * The API token as the daemon checks it: the token file is the one source
 * of truth. On a request, and at most every {@link TOKEN_RECHECK_MS} ms, the
 * file is `stat`ed; when its identity (device, inode, size, times) changed it
 * is read again. So `courier token rotate` (a rename over the file) takes
 * effect within a fraction of a second, without a restart, a watcher or a
 * background task, and an idle daemon does no work. A missing, unreadable or
 * malformed file fails closed: no token is accepted.
 *
 * @example
 * ```ts
 * const token = new LiveToken("/home/me/.courier/run/api.token");
 * token.verify(presented); // constant time
 * ```
 */
export class LiveToken {
  /** The token file. */
  readonly path: string;
  readonly #recheckMs: number;
  readonly #now: () => number;
  readonly #onChange: (problem: TokenFileError | null) => void;
  #token: string | null = null;
  #signature = "";
  #problem: TokenFileError | null = null;
  #checkedAt: number;

  /**
   * Creates a `LiveToken` and reads the file once.
   *
   * @param path The token file.
   * @param options Recheck interval, clock, change callback.
   */
  constructor(path: string, options: LiveTokenOptions = {}) {
    this.path = path;
    this.#recheckMs = options.recheckMs ?? TOKEN_RECHECK_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#onChange = options.onChange ?? (() => {});
    this.#checkedAt = this.#now();
    this.#refresh(false);
  }

  /** Why no token is accepted right now, or `null` when one is. */
  get problem(): TokenFileError | null {
    this.#current();
    return this.#problem;
  }

  /** Whether `presented` is the current token (compared in constant time). */
  verify(presented: string): boolean {
    const token = this.#current();
    return token !== null && timingSafeEqual(presented, token);
  }

  #current(): string | null {
    const now = this.#now();
    if (now - this.#checkedAt >= this.#recheckMs) {
      this.#checkedAt = now;
      this.#refresh(true);
    }
    return this.#token;
  }

  #refresh(notify: boolean): void {
    let signature: string;
    try {
      const info = Deno.statSync(this.path);
      signature = [info.dev, info.ino, info.size, info.mtime?.getTime(), info.ctime?.getTime()]
        .join(":");
    } catch (error) {
      return this.#fail(
        new TokenFileError(
          this.path,
          error instanceof Deno.errors.NotFound ? "missing" : "unreadable",
          error,
        ),
        notify,
      );
    }
    if (signature === this.#signature && this.#token !== null) return;
    let token: string;
    try {
      token = readTokenFileSync(this.path);
    } catch (error) {
      return this.#fail(error as TokenFileError, notify);
    }
    const changed = this.#token === null || !timingSafeEqual(token, this.#token);
    this.#signature = signature;
    this.#token = token;
    this.#problem = null;
    if (changed && notify) this.#onChange(null);
  }

  #fail(problem: TokenFileError, notify: boolean): void {
    const known = this.#problem?.message === problem.message;
    this.#token = null;
    this.#signature = "";
    this.#problem = problem;
    if (notify && !known) this.#onChange(problem);
  }
}
