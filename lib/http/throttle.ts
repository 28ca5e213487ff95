/** Options of {@link AuthThrottle}. */
export interface AuthThrottleOptions {
  /** Wrong tokens a peer may send within the window (default 10); the next attempt gets 429. */
  limit?: number;
  /** The window (ms, default 60 000). */
  windowMs?: number;
  /** Peers remembered at most (default 10 000): memory stays bounded whoever knocks. */
  maxPeers?: number;
  /** The clock (ms, default `Date.now`). */
  now?: () => number;
}

/**
 * Brute-force protection for the API token: once a peer has sent `limit`
 * wrong tokens within `windowMs`, its requests that need the token are
 * refused (429) without looking at the token until the oldest of those
 * failures is `windowMs` old. While a peer is locked out even the right
 * token is refused, or each attempt would still say whether a guess was
 * right. Loopback is not exempt (a web page's requests come from
 * 127.0.0.1 too). Only failures are remembered: requests with the right
 * token cost a map lookup and are never delayed.
 */
export class AuthThrottle {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #maxPeers: number;
  readonly #now: () => number;
  /** Per peer, the times of its recent failures (at most `limit`), oldest first. */
  readonly #failures = new Map<string, number[]>();

  /**
   * Creates an `AuthThrottle` (no failures remembered).
   *
   * @param options Limit, window, table size and clock.
   */
  constructor(options: AuthThrottleOptions = {}) {
    this.#limit = options.limit ?? 10;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxPeers = options.maxPeers ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Peers with failures remembered (for tests and metrics). */
  get size(): number {
    return this.#failures.size;
  }

  /** How long `peer` is still locked out (ms), or 0 when it is not. */
  lockedFor(peer: string): number {
    const times = this.#failures.get(peer);
    if (!times || times.length < this.#limit) return 0;
    const left = times[times.length - this.#limit] + this.#windowMs - this.#now();
    return left > 0 ? left : 0;
  }

  /**
   * Records a wrong token from `peer`; returns how long it is locked out
   * from now on (ms), or 0 when it is not (yet).
   */
  recordFailure(peer: string): number {
    const now = this.#now();
    let times = this.#failures.get(peer);
    if (times) {
      this.#failures.delete(peer); // re-inserted last: the map stays in order of last failure
    } else {
      if (this.#failures.size >= this.#maxPeers) this.#evict(now);
      times = [];
    }
    times.push(now);
    while (times.length > this.#limit || (times.length > 0 && times[0] + this.#windowMs <= now)) {
      times.shift();
    }
    this.#failures.set(peer, times);
    return this.lockedFor(peer);
  }

  /** Makes room: forgets peers whose failures have all expired, else the longest quiet one. */
  #evict(now: number): void {
    for (const [peer, times] of this.#failures) {
      if (times[times.length - 1] + this.#windowMs <= now) this.#failures.delete(peer);
    }
    if (this.#failures.size >= this.#maxPeers) {
      const quietest = this.#failures.keys().next().value;
      if (quietest !== undefined) this.#failures.delete(quietest);
    }
  }
}

/**
 * The key a peer address is throttled under: an IPv4 address as it is (an
 * IPv4-mapped IPv6 address as its IPv4 one), an IPv6 address by its /64
 * (one host usually holds a whole /64).
 */
export function peerKey(address: string): string {
  if (!address.includes(":")) return address; // IPv4: the common case, kept cheap
  const name = address.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, "");
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(name);
  if (mapped) return mapped[1];
  if (!name.includes(":")) return name;
  const [head, tail = ""] = name.split("::");
  const left = head ? head.split(":") : [];
  const right = name.includes("::") && tail ? tail.split(":") : [];
  const groups = name.includes("::")
    ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
    : left;
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(":")}::/64`;
}
