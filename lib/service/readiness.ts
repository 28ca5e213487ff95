import { CourierError } from "../errors/mod.ts";
import type { DaemonState } from "./state_file.ts";

/**
 * How a daemon tells whoever started it that it is up, or why it is not.
 * Readiness is signalled, never guessed: `start` waits for exactly one
 * message and returns the moment it comes.
 */
export interface ReadinessReporter {
  /** The daemon is listening and its state file is written. */
  ready(state: DaemonState): void;
  /** The daemon will not start; `error` says why. */
  failed(error: unknown): void;
}

/** The one line a background daemon writes to its stdout pipe. */
export type ReadinessMessage =
  | { courier: "ready"; state: DaemonState }
  | { courier: "error"; exit_code: number; message: string; details: string[]; type: string };

/** Marks the readiness line, so stray output is never mistaken for it. */
export const READINESS_PREFIX = "COURIER-READINESS ";

/** Encodes an error as a readiness message (exit code 1 for unexpected errors). */
export function errorMessage(error: unknown): ReadinessMessage {
  if (error instanceof CourierError) {
    return {
      courier: "error",
      exit_code: error.exitCode,
      message: error.message,
      details: error.details,
      type: error.name,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { courier: "error", exit_code: 1, message, details: [], type: "Error" };
}

/** Parses a readiness line; `null` for any other line. */
export function parseReadinessLine(line: string): ReadinessMessage | null {
  if (!line.startsWith(READINESS_PREFIX)) return null;
  try {
    const message = JSON.parse(line.slice(READINESS_PREFIX.length));
    return message?.courier === "ready" || message?.courier === "error" ? message : null;
  } catch {
    return null;
  }
}

/**
 * The reporter of a daemon spawned by `start`: one line on stdout (a pipe
 * the parent reads), then stdout is closed so nothing can ever block on or
 * break with it once the parent has gone.
 */
export function pipeReporter(): ReadinessReporter {
  let sent = false;
  const send = (message: ReadinessMessage) => {
    if (sent) return;
    sent = true;
    try {
      Deno.stdout.writeSync(
        new TextEncoder().encode(READINESS_PREFIX + JSON.stringify(message) + "\n"),
      );
      Deno.stdout.close();
    } catch {
      // the parent has gone: nobody is waiting
    }
  };
  return {
    ready: (state) => send({ courier: "ready", state }),
    failed: (error) => send(errorMessage(error)),
  };
}
