/** Backoff settings. */
export interface BackoffOptions {
  /** Delay after the first failure (ms, default 1000). */
  baseMs?: number;
  /** Largest delay (ms, default 30000). */
  capMs?: number;
}

/**
 * Exponential backoff: `baseMs * 2^(attempts-1)`, capped at `capMs`.
 * `attempts` counts failures so far (1 after the first).
 */
export function backoffDelay(attempts: number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? 1000;
  const cap = options.capMs ?? 30_000;
  return Math.min(cap, base * 2 ** Math.max(0, attempts - 1));
}
