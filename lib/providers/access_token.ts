/**
 * A cached platform access token (Lark's tenant access token, DingTalk's
 * access token): fetched once, shared by concurrent calls, refreshed before
 * it expires, dropped when the platform says it is no longer valid.
 *
 * @module
 */

/** A platform's `expire`/`expireIn` (seconds) as ms, or `fallbackS` when it is not a positive number. */
export function expiresInMs(seconds: unknown, fallbackS = 3600): number {
  const s = Number(seconds);
  return (Number.isFinite(s) && s > 0 ? s : fallbackS) * 1000;
}

/** A token as the platform issued it. */
export interface IssuedToken {
  /** The token. */
  token: string;
  /** How long it is valid from now (ms). */
  expiresInMs: number;
}

/** Options of {@link AccessTokenCache}. */
export interface AccessTokenCacheOptions {
  /** The clock in ms (default `Date.now`). */
  now?: () => number;
  /** Fetch a new token when the cached one has less than this left (ms, default 5 minutes). */
  refreshBeforeMs?: number;
}

/**
 * Holds one access token. {@link get} returns the cached token while it has
 * more than `refreshBeforeMs` left; otherwise one fetch runs and every
 * caller waiting meanwhile shares it.
 *
 * @example
 * ```ts
 * const cache = new AccessTokenCache(async () => ({ token: "t-1", expiresInMs: 7_200_000 }));
 * const token = await cache.get(); // fetched once, then served from the cache
 * ```
 */
export class AccessTokenCache {
  #fetchToken: () => Promise<IssuedToken>;
  #now: () => number;
  #refreshBeforeMs: number;
  #current: { token: string; expiresAt: number } | null = null;
  #pending: Promise<string> | null = null;

  /**
   * Creates an `AccessTokenCache`.
   *
   * @param fetchToken Asks the platform for a new token (throws a `ProviderError` on failure).
   * @param options The clock and the refresh margin.
   */
  constructor(fetchToken: () => Promise<IssuedToken>, options: AccessTokenCacheOptions = {}) {
    this.#fetchToken = fetchToken;
    this.#now = options.now ?? Date.now;
    this.#refreshBeforeMs = options.refreshBeforeMs ?? 5 * 60_000;
  }

  /** A valid token: the cached one, or a new one (one fetch shared by concurrent callers). */
  get(): Promise<string> {
    const current = this.#current;
    if (current && current.expiresAt - this.#now() > this.#refreshBeforeMs) {
      return Promise.resolve(current.token);
    }
    this.#pending ??= this.#refresh().finally(() => {
      this.#pending = null;
    });
    return this.#pending;
  }

  /**
   * Forgets `token` (the platform said it is invalid or expired), so that the
   * next {@link get} fetches a new one. A newer token than `token` is kept.
   */
  invalidate(token?: string): void {
    if (token === undefined || this.#current?.token === token) this.#current = null;
  }

  /**
   * Runs `call` with a valid token; when it fails and `rejected(error)` says
   * the platform no longer accepts that token, forgets it and runs `call`
   * once more with a new one.
   */
  async use<T>(
    call: (token: string) => Promise<T>,
    rejected: (error: unknown) => boolean,
  ): Promise<T> {
    const token = await this.get();
    try {
      return await call(token);
    } catch (error) {
      if (!rejected(error)) throw error;
      this.invalidate(token);
      return await call(await this.get());
    }
  }

  async #refresh(): Promise<string> {
    const issued = await this.#fetchToken();
    this.#current = { token: issued.token, expiresAt: this.#now() + issued.expiresInMs };
    return issued.token;
  }
}
