/** Severity of a log line. */
export type LogLevel = "info" | "warn" | "error";

/** Options of {@link openLogger}. */
export interface LoggerOptions {
  /** Also write each line to stderr (foreground mode). */
  mirrorToStderr?: boolean;
  /** Rotate the file to `<file>.1` when it is larger than this at open (default 10 MiB). */
  rotateBytes?: number;
  /**
   * Write to stderr only, never to the file: a service manager keeps the
   * log (the journal, or launchd appending stderr to this same file, which
   * is then rotated by copying and truncating, as launchd holds it open).
   */
  stderrOnly?: boolean;
}

/** Appends timestamped lines to a log file. Never throws: logging must not kill a daemon. */
export interface Logger {
  /** Logs at `info`. */
  info(message: string): void;
  /** Logs at `warn`. */
  warn(message: string): void;
  /** Logs at `error`. */
  error(message: string): void;
  /** Closes the file. */
  close(): void;
}

const encoder = new TextEncoder();

/**
 * Opens (creating if needed) an append-only log file. Each line reads
 * `2026-11-22T10:00:00.000Z INFO  pid=123 message`.
 */
export function openLogger(path: string, options: LoggerOptions = {}): Logger {
  try {
    const size = Deno.statSync(path).size;
    if (size > (options.rotateBytes ?? 10 * 1024 * 1024)) {
      if (options.stderrOnly) {
        Deno.copyFileSync(path, `${path}.1`);
        Deno.truncateSync(path, 0);
      } else {
        Deno.renameSync(path, `${path}.1`);
      }
    }
  } catch {
    // no file yet
  }
  let file: Deno.FsFile | null = null;
  try {
    if (!options.stderrOnly) {
      file = Deno.openSync(path, { create: true, append: true, mode: 0o600 });
    }
  } catch {
    file = null;
  }
  const write = (level: LogLevel, message: string) => {
    const line = `${new Date().toISOString()} ${
      level.toUpperCase().padEnd(5)
    } pid=${Deno.pid} ${message}\n`;
    const bytes = encoder.encode(line);
    try {
      file?.writeSync(bytes);
    } catch {
      // disk full or file gone: keep serving
    }
    if (options.mirrorToStderr || options.stderrOnly) {
      try {
        Deno.stderr.writeSync(bytes);
      } catch {
        // terminal gone
      }
    }
  };
  return {
    info: (m) => write("info", m),
    warn: (m) => write("warn", m),
    error: (m) => write("error", m),
    close: () => {
      try {
        file?.close();
      } catch {
        // already closed
      }
      file = null;
    },
  };
}

/** A logger that drops everything (for library use and tests). */
export function nullLogger(): Logger {
  return { info() {}, warn() {}, error() {}, close() {} };
}

/** The last `n` lines of a text file (empty when it does not exist). */
export async function tailLines(path: string, n: number): Promise<string[]> {
  let text: string;
  try {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      // Read back only as much as needed: 64 KiB covers ~100 lines of log.
      const want = Math.min(size, Math.max(65536, n * 512));
      await file.seek(size - want, Deno.SeekMode.Start);
      const buffer = new Uint8Array(want);
      let read = 0;
      while (read < want) {
        const got = await file.read(buffer.subarray(read));
        if (got === null) break;
        read += got;
      }
      text = new TextDecoder().decode(buffer.subarray(0, read));
      if (want < size) text = text.slice(text.indexOf("\n") + 1);
    } finally {
      file.close();
    }
  } catch {
    return [];
  }
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return n <= 0 ? [] : lines.slice(-n);
}
