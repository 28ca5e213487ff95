import { ExitCode, type ExitCodeValue } from "./exit_codes.ts";

/**
 * Base class of every expected courier error.
 *
 * An expected error is one a user can cause and fix (a busy port, a bad
 * option); the CLI prints its message without a stack trace and exits with
 * {@link CourierError.exitCode}. Anything that is not a `CourierError` is a bug.
 */
export class CourierError extends Error {
  /** The exit code the CLI uses for this error. */
  readonly exitCode: ExitCodeValue;
  /** Extra lines printed after the message (hints, log excerpts). */
  readonly details: string[];
  /**
   * Facts for programs, printed beside `type`, `message` and `exit_code` in
   * the CLI's `--json` error (an HTTP `status`, the `holder` of a claim…).
   */
  readonly facts: Record<string, unknown>;

  /**
   * An expected error that the CLI reports without a stack trace.
   *
   * @param message What happened and what to do next, in one line.
   * @param options Exit code, cause, detail lines and facts for `--json`.
   */
  constructor(
    message: string,
    options: {
      exitCode?: ExitCodeValue;
      cause?: unknown;
      details?: string[];
      facts?: Record<string, unknown>;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "CourierError";
    this.exitCode = options.exitCode ?? ExitCode.Failure;
    this.details = options.details ?? [];
    this.facts = options.facts ?? {};
  }
}

/** The command line is wrong: unknown command or option, or a bad value. */
export class UsageError extends CourierError {
  /**
   * @param message The problem, e.g. `invalid port "abc"`.
   * @param options `hint`: the usage line to show, e.g. `courier start --help`.
   */
  constructor(message: string, options: { hint?: string } = {}) {
    super(message, {
      exitCode: ExitCode.Usage,
      details: [`Run '${options.hint ?? "courier --help"}' for usage.`],
    });
    this.name = "UsageError";
  }
}
