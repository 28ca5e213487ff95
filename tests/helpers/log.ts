/** A logger for tests that keeps its lines. */
import type { Logger } from "../../lib/log/mod.ts";

/** A {@link Logger} that records every line (any level) in `lines`. */
export function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(m),
    warn: (m) => lines.push(m),
    error: (m) => lines.push(m),
    close() {},
  };
}
