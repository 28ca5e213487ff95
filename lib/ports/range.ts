/** An inclusive range of TCP ports, `start` to `end`. */
export interface PortRange {
  /** First port (1-65535). */
  start: number;
  /** Last port (1-65535, at least `start`). */
  end: number;
}

/** The range leases come from when none is given: 10000-10999. */
export const DEFAULT_PORT_RANGE: Readonly<PortRange> = Object.freeze({ start: 10000, end: 10999 });

/** Whether `port` is a whole number from 1 to 65535. */
export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/**
 * Parses `START-END` (inclusive, e.g. `10000-10999`). Returns an explanation
 * string when the text is not a valid range.
 *
 * @example
 * ```ts
 * const range = parsePortRange("20000-20099");
 * if (typeof range === "string") throw new Error(range);
 * ```
 */
export function parsePortRange(text: string): PortRange | string {
  const match = text.trim().match(/^(\d+)\s*-\s*(\d+)$/);
  if (!match) return "expected START-END, e.g. 10000-10999";
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!isValidPort(start) || !isValidPort(end)) return "ports must be from 1 to 65535";
  if (start > end) return `START (${start}) is greater than END (${end})`;
  return { start, end };
}

/** Throws a `RangeError` unless `range` is a valid range (library callers). */
export function assertPortRange(range: PortRange): void {
  if (!isValidPort(range.start) || !isValidPort(range.end) || range.start > range.end) {
    throw new RangeError(
      `invalid port range ${range.start}-${range.end}: expected 1 <= start <= end <= 65535`,
    );
  }
}
