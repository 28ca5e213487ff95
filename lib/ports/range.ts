/** An inclusive range of TCP ports, `start` to `end`. */
export interface PortRange {
  /** First port (1-65535). */
  start: number;
  /** Last port (1-65535, at least `start`). */
  end: number;
}

/** The range leases come from when none is given: 10000-10999. */
export const DEFAULT_PORT_RANGE: Readonly<PortRange> = Object.freeze({ start: 10000, end: 10999 });

/**
 * The ports browsers and `fetch` refuse to connect to (the WHATWG Fetch
 * standard's "bad ports"): a dev server or a daemon on one of them cannot be
 * opened in a browser, and Deno's `fetch` refuses it too.
 */
const BLOCKED_BY_BROWSERS: ReadonlySet<number> = new Set([
  1,
  7,
  9,
  11,
  13,
  15,
  17,
  19,
  20,
  21,
  22,
  23,
  25,
  37,
  42,
  43,
  53,
  69,
  77,
  79,
  87,
  95,
  101,
  102,
  103,
  104,
  109,
  110,
  111,
  113,
  115,
  117,
  119,
  123,
  135,
  137,
  139,
  143,
  161,
  179,
  389,
  427,
  465,
  512,
  513,
  514,
  515,
  526,
  530,
  531,
  532,
  540,
  548,
  554,
  556,
  563,
  587,
  601,
  636,
  989,
  990,
  993,
  995,
  1719,
  1720,
  1723,
  2049,
  3659,
  4045,
  4190,
  5060,
  5061,
  6000,
  6566,
  6665,
  6666,
  6667,
  6668,
  6669,
  6679,
  6697,
  10080,
]);

/** Whether browsers and `fetch` refuse `port` (see the Fetch standard's "bad port" list). */
export function isBlockedByBrowsers(port: number): boolean {
  return BLOCKED_BY_BROWSERS.has(port);
}

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
