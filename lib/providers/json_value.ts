/**
 * Reading untrusted JSON from platforms: objects only, never a throw.
 *
 * @module
 */

/** `value` when it is a JSON object (not null, not an array), else `undefined`. */
export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

/** `text` parsed as a JSON object, or `undefined` when it is not JSON or not an object. */
export function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    return asRecord(JSON.parse(text));
  } catch {
    return undefined;
  }
}
