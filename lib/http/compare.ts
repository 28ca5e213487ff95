const encoder = new TextEncoder();

/**
 * Compares two byte strings in time that depends only on their lengths,
 * never on where they first differ (for tokens and signatures).
 *
 * @example
 * ```ts
 * timingSafeEqualBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2])); // true
 * ```
 */
export function timingSafeEqualBytes(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/**
 * Compares two strings (as UTF-8) in time that depends only on their
 * lengths (for signatures and tokens).
 *
 * @example
 * ```ts
 * if (!timingSafeEqual(presented, expected)) return unauthorized();
 * ```
 */
export function timingSafeEqual(a: string, b: string): boolean {
  return timingSafeEqualBytes(encoder.encode(a), encoder.encode(b));
}
