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
 * Compares two strings in time that depends only on their lengths, never
 * on where they first differ (for signatures and tokens). Compares UTF-16
 * code units, so nothing is allocated on the way.
 *
 * @example
 * ```ts
 * if (!timingSafeEqual(presented, expected)) return unauthorized();
 * ```
 */
export function timingSafeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0); // NaN past the end: 0
  }
  return diff === 0;
}
