import { CourierError, ExitCode } from "../errors/mod.ts";
import { type CommandLine, type RunMode, selfCommand } from "../proc/mod.ts";
import type { Supervisor } from "./names.ts";

/** What a unit file or property list describes: one courier daemon under a manager. */
export interface ServiceSpec {
  /** The manager and the unit name or label. */
  supervisor: Supervisor;
  /** What runs: `courier start --foreground …` (see {@link serviceCommand}). */
  command: CommandLine;
  /** The courier home it serves (absolute). */
  home: string;
  /** The home's log file (launchd appends the daemon's output to it). */
  logFile: string;
}

/** Options of {@link serviceCommand}. */
export interface ServiceCommandOptions {
  /** The courier home (absolute). */
  home: string;
  /** Host to listen on. */
  host: string;
  /** Port to listen on, or `auto` for a port lease. */
  port: number | "auto";
  /** How courier runs: the compiled binary, or `deno run main.ts`. */
  mode: RunMode;
}

/**
 * The command a service runs: `courier start --foreground` with the home,
 * host and port spelled out (so the environment of the service manager
 * cannot change them): the binary's absolute path when compiled, the
 * `deno` executable with `run <flags> main.ts` under `deno run`.
 */
export function serviceCommand(options: ServiceCommandOptions): CommandLine {
  const args = [
    "start",
    "--foreground",
    "--home",
    options.home,
    "--host",
    options.host,
    "--port",
    String(options.port),
  ];
  const command = selfCommand(args, { mode: options.mode });
  for (const word of [command.command, ...command.args]) {
    assertPrintable(word, word === options.home ? "the home" : "the command line");
  }
  return command;
}

/**
 * Throws unless `value` is free of control characters: unit files are
 * line-based and property lists are XML, which cannot carry most of them.
 */
export function assertPrintable(value: string, what: string): void {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new CourierError(
      `${what} (${JSON.stringify(value)}) contains a control character; ` +
        `a service file cannot name it`,
      { exitCode: ExitCode.Usage, details: ["Choose a home whose path has none (--home DIR)."] },
    );
  }
}
