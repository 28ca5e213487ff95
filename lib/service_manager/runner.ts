import { CourierError } from "../errors/mod.ts";

/** What one run of a service manager's tool (`systemctl`, `launchctl`, …) gave. */
export interface ToolRun {
  /** The command line, tool first. */
  argv: string[];
  /** Its exit code (127 when the tool is not installed). */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error (or why the tool could not be run). */
  stderr: string;
}

/** Runs the service manager's tools; tests and library users may pass their own. */
export interface ToolRunner {
  /** Runs `argv` to completion (never throws for a failing or missing tool). */
  run(argv: string[], options?: { timeoutMs?: number }): Promise<ToolRun>;
}

/** Options of {@link commandRunner}. */
export interface CommandRunnerOptions {
  /** Environment added to this process's for every tool (e.g. a `PATH` of fakes). */
  env?: Record<string, string>;
  /** Default time a tool may take (default 30 000 ms). */
  timeoutMs?: number;
}

const decoder = new TextDecoder();

/** A {@link ToolRunner} that runs real processes, found on `PATH`. */
export function commandRunner(options: CommandRunnerOptions = {}): ToolRunner {
  return {
    async run(argv, runOptions = {}) {
      const [command, ...args] = argv;
      try {
        const output = await new Deno.Command(command, {
          args,
          env: options.env,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(runOptions.timeoutMs ?? options.timeoutMs ?? 30_000),
        }).output();
        return {
          argv,
          code: output.code,
          stdout: decoder.decode(output.stdout),
          stderr: decoder.decode(output.stderr),
        };
      } catch (error) {
        const missing = error instanceof Deno.errors.NotFound;
        const reason = missing ? "not found on PATH" : (error as Error).message;
        return { argv, code: missing ? 127 : 1, stdout: "", stderr: `${command}: ${reason}` };
      }
    },
  };
}

/** A tool of the service manager failed; the message quotes the command and what it said. */
export class ServiceManagerError extends CourierError {
  /** The failed run. */
  readonly run: ToolRun;

  /**
   * @param run The run that failed.
   * @param details Hints printed after the message.
   */
  constructor(run: ToolRun, details: string[] = []) {
    const said = (run.stderr.trim() || run.stdout.trim()).split("\n").slice(0, 3).join("; ");
    super(`'${run.argv.join(" ")}' failed (exit code ${run.code})${said ? `: ${said}` : ""}`, {
      details,
    });
    this.name = "ServiceManagerError";
    this.run = run;
  }
}

/** Runs `argv` and throws a {@link ServiceManagerError} unless it exits 0. */
export async function runOrThrow(
  runner: ToolRunner,
  argv: string[],
  options: { details?: string[]; timeoutMs?: number } = {},
): Promise<ToolRun> {
  const run = await runner.run(argv, { timeoutMs: options.timeoutMs });
  if (run.code !== 0) throw new ServiceManagerError(run, options.details);
  return run;
}

/**
 * The base of a service manager's client: runs its tools through a
 * {@link ToolRunner} and records every command that changed something in
 * {@link ManagerClient.ran}, so callers can show what was done.
 */
export class ManagerClient {
  /** The commands run that changed something, in order. */
  readonly ran: string[][] = [];
  /** Runs the tools. */
  protected readonly runner: ToolRunner;

  /** @param runner Runs the tools (default: real processes on `PATH`). */
  constructor(runner: ToolRunner = commandRunner()) {
    this.runner = runner;
  }

  /** Runs `argv`, records it, and throws a {@link ServiceManagerError} if it fails. */
  protected async change(argv: string[]): Promise<void> {
    this.ran.push(argv);
    await runOrThrow(this.runner, argv, { timeoutMs: 60_000 });
  }

  /** Runs `argv` and records it if it succeeded; a failure is only returned (clean-ups). */
  protected async tryChange(argv: string[]): Promise<boolean> {
    const run = await this.runner.run(argv, { timeoutMs: 60_000 });
    if (run.code === 0) this.ran.push(argv);
    return run.code === 0;
  }
}
