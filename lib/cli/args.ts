import { UsageError } from "../errors/mod.ts";

/** Parses a TCP port (1-65535) or throws a {@link UsageError} naming the option. */
export function parsePort(value: string, options: { option: string; hint: string }): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`invalid ${options.option} "${value}": expected a port from 1 to 65535`, {
      hint: options.hint,
    });
  }
  return port;
}

/** Parses a non-negative number of seconds (fractions allowed) into milliseconds. */
export function parseSeconds(value: string, options: { option: string; hint: string }): number {
  const seconds = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(seconds)) {
    throw new UsageError(`invalid ${options.option} "${value}": expected a number of seconds`, {
      hint: options.hint,
    });
  }
  return Math.round(seconds * 1000);
}

/** Parses a whole number within `[min, max]`. */
export function parseInteger(
  value: string,
  options: { option: string; hint: string; min?: number; max?: number },
): number {
  const n = /^-?\d+$/.test(value) ? Number(value) : NaN;
  const min = options.min ?? 0;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `invalid ${options.option} "${value}": expected a whole number from ${min} to ${max}`,
      { hint: options.hint },
    );
  }
  return n;
}

/** Reads a string option, `undefined` when absent. */
export function stringOption(
  values: Record<string, unknown>,
  name: string,
): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/** Seconds per unit of {@link parseDuration}. */
export const DURATION_UNITS: Readonly<Record<string, number>> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
};

const UNIT_NAMES = "s (seconds), m (minutes), h (hours), d (days), w (weeks)";

/**
 * Parses a duration such as `30d`, `12h`, `90m` or `1h30m` into seconds.
 * A bare number is refused: the error names the units.
 */
export function parseDuration(value: string, options: { option: string; hint: string }): number {
  const text = value.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(text)) {
    throw new UsageError(
      `invalid ${options.option} "${value}": give a unit: ${UNIT_NAMES}, e.g. ${text}d`,
      { hint: options.hint },
    );
  }
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)([a-z]+)/g)];
  const valid = parts.length > 0 && parts.map((p) => p[0]).join("") === text &&
    parts.every((p) => Object.hasOwn(DURATION_UNITS, p[2]));
  if (!valid) {
    throw new UsageError(
      `invalid ${options.option} "${value}": expected a duration like 30d, 12h, 90m or 1h30m ` +
        `(units: ${UNIT_NAMES})`,
      { hint: options.hint },
    );
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * DURATION_UNITS[p[2]], 0);
}
