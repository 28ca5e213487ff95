import type { Output } from "./output.ts";

/** One option of a command, in `parseArgs` form (`./parse_args.ts`) plus help text. */
export interface OptionSpec {
  /** `string` takes a value, `boolean` is a flag. */
  type: "string" | "boolean";
  /** One-letter alias (`-n`). */
  short?: string;
  /** What it does, one line. */
  description: string;
  /** The value's name in help (`SECONDS`, `N`). */
  valueName?: string;
  /** Values to offer in shell completions. */
  choices?: readonly string[];
  /** May be given more than once. */
  multiple?: boolean;
}

/** What a command's `run` receives. */
export interface CommandContext {
  /** Parsed option values. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** Positional arguments (after `--`, everything is positional). */
  positionals: string[];
  /** The home given by `--home`, if any (resolve with `resolveHome`). */
  homeOption?: string;
  /** Where to print. */
  out: Output;
}

/** A CLI command: parse, call the library, print, return an exit code. */
export interface Command {
  /** Its name (`start`). */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Usage lines after `courier `, e.g. `start [--port N]`. */
  usage: string[];
  /** Its options (the global ones are added by the dispatcher). */
  options: Record<string, OptionSpec>;
  /** Positional arguments it takes: `false` for none (default). */
  positionals?: boolean;
  /**
   * Its positionals are a command line it runs (`port exec -- CMD ARGS…`):
   * an unknown option after them gets the hint to put `--` before the command.
   */
  runsCommand?: boolean;
  /** Hidden from help and completions (internal commands). */
  hidden?: boolean;
  /** Subcommands (`port allocate`); when set, `run` is not called. */
  subcommands?: Command[];
  /**
   * Runs it and returns the exit code. A command's module is loaded for
   * its options and help too (`--help`, completions, a mistyped option), so
   * it imports only light modules at its top (`../command.ts`, `../args.ts`,
   * `../output.ts`, `../../errors/mod.ts`) and `run` imports what it needs
   * with `importLazily` (`lib/lazy`: out of sight of `deno run`'s start-up
   * analysis). It is registered in `commands/table.ts`.
   */
  run?(ctx: CommandContext): Promise<number>;
}

/** Options every command accepts. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  home: {
    type: "string",
    valueName: "DIR",
    description: "courier home (default: $COURIER_HOME or ~/.courier)",
  },
  json: { type: "boolean", description: "print machine-readable JSON" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** The options courier takes before a command (`courier --home DIR status`). */
export const ROOT_OPTIONS: Record<string, OptionSpec> = {
  ...GLOBAL_OPTIONS,
  version: { type: "boolean", short: "V", description: "print the version" },
};
