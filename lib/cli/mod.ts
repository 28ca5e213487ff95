/**
 * The command-line interface: parses arguments, dispatches to a command,
 * prints, and turns errors into exit codes. Every piece of real work lives
 * in the library folders beside this one.
 *
 * @module
 */
import { CourierError, ExitCode, UsageError } from "../errors/mod.ts";
import { VERSION } from "../version/mod.ts";
import { type Command, GLOBAL_OPTIONS, type OptionSpec, ROOT_OPTIONS } from "./command.ts";
import { COMMAND_TABLE, loadCommands } from "./commands/table.ts";
import { Output, writeStdout } from "./output.ts";
import { parseArgs, ParseArgsError } from "./parse_args.ts";
import { didYouMean, suggest } from "./suggest.ts";

export type { Command, CommandContext, OptionSpec } from "./command.ts";
export { COMMAND_TABLE, type CommandEntry, loadCommands } from "./commands/table.ts";
export { formatTable, Output } from "./output.ts";

/** Exit code for an unexpected internal error (a bug): EX_SOFTWARE. */
export const INTERNAL_ERROR_EXIT = 70;

function optionLine(name: string, spec: OptionSpec): [string, string] {
  const short = spec.short ? `-${spec.short}, ` : "    ";
  const value = spec.type === "string" ? ` ${spec.valueName ?? "VALUE"}` : "";
  return [`  ${short}--${name}${value}`, spec.description];
}

/**
 * The help text of a command, or of courier itself when `path` is empty
 * (then `commands` lists the top-level commands: see `loadCommands`).
 */
export function helpText(path: Command[], commands: readonly Command[] = []): string {
  const lines: string[] = [];
  const command = path.at(-1);
  if (!command) {
    lines.push(`courier ${VERSION}: run and manage the Courier service`, "", "Usage:");
    lines.push("  courier [--home DIR] [--json] <command> [options]", "", "Commands:");
    const visible = commands.filter((c) => !c.hidden);
    const width = Math.max(...visible.map((c) => c.name.length));
    for (const c of visible) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
    lines.push("", "Global options (before or after the command):");
    pushOptions(lines, ROOT_OPTIONS);
    lines.push("", "Run 'courier <command> --help' for a command's options.");
    return lines.join("\n");
  }
  const name = path.map((c) => c.name).join(" ");
  lines.push(`courier ${name}: ${command.summary}`, "", "Usage:");
  const prefix = path.slice(0, -1).map((c) => c.name + " ").join("");
  for (const usage of command.usage) lines.push(`  courier ${prefix}${usage}`);
  if (command.subcommands) {
    lines.push("", "Commands:");
    const width = Math.max(...command.subcommands.map((c) => c.name.length));
    for (const c of command.subcommands) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
  }
  lines.push("", "Options:");
  pushOptions(lines, { ...command.options, ...GLOBAL_OPTIONS });
  return lines.join("\n");
}

function pushOptions(lines: string[], options: Record<string, OptionSpec>): void {
  const rows = Object.entries(options).map(([name, spec]) => optionLine(name, spec));
  const width = Math.max(...rows.map(([left]) => left.length));
  for (const [left, right] of rows) lines.push(`${left.padEnd(width)}  ${right}`);
}

/** `--json` among the options (not after `--`): errors are then printed as JSON too. */
function jsonRequested(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).includes("--json");
}

/** The `courier …` words of a command path, for hints. */
function spelled(path: Command[]): string {
  return ["courier", ...path.map((c) => c.name)].join(" ");
}

/** An unknown option, with the closest known ones when the name looks like a typo. */
function unknownOption(token: string, names: string[], hint: string): UsageError {
  const guesses = token.startsWith("--") ? suggest(token.slice(2), names).map((n) => `--${n}`) : [];
  return new UsageError(`unknown option "${token}"${didYouMean(guesses)}`, { hint });
}

/** A parse error of a command's options, told in the terms of that command. */
function optionError(error: ParseArgsError, path: Command[], names: string[]): UsageError {
  const command = path.at(-1)!;
  const hint = `${spelled(path)} --help`;
  if (error.problem !== "unknown-option") return new UsageError(error.message, { hint });
  if (command.runsCommand && error.positionals.length > 0) {
    const [program, ...args] = error.positionals;
    return new UsageError(
      `unknown option "${error.token}" after ${program}: to pass it to ${program}, put -- ` +
        `before the command: ${spelled(path)} [options] -- ${
          [program, ...args, error.token].join(" ")
        } …`,
      { hint },
    );
  }
  return unknownOption(error.token, names, hint);
}

/** What the command line asks for. */
type Request =
  | { kind: "version" }
  | { kind: "help"; path: Command[]; code: number }
  | { kind: "run"; path: Command[]; args: string[]; home?: string; json: boolean };

/** Prints the help of `path` (courier's own, with every command, when it is empty). */
async function printHelp(path: Command[]): Promise<void> {
  writeStdout(helpText(path, path.length === 0 ? await loadCommands() : []) + "\n");
}

/**
 * Finds the command and loads its module (only that one): global options
 * (`--home DIR`, `--json`, and `--help`) may come before it and between a
 * command and its subcommand, `--version` before it. Typos of commands get
 * a suggestion.
 */
async function findCommand(args: string[]): Promise<Request> {
  const path: Command[] = [];
  let home: string | undefined;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const hint = `${spelled(path)} --help`;
    if (arg.startsWith("-") && arg !== "-") {
      if (path.length === 0 && (arg === "--version" || arg === "-V")) return { kind: "version" };
      if (arg === "--help" || arg === "-h") return { kind: "help", path, code: ExitCode.Ok };
      if (arg === "--json") json = true;
      else if (arg.startsWith("--home=")) home = arg.slice("--home=".length);
      else if (arg === "--home") {
        if (i + 1 >= args.length) throw new UsageError("option --home needs a value", { hint });
        home = args[++i];
      } else {
        const names = Object.keys(path.length === 0 ? ROOT_OPTIONS : GLOBAL_OPTIONS);
        throw unknownOption(arg, names, hint);
      }
      continue;
    }
    const parent = path.at(-1);
    const choices = parent ? parent.subcommands ?? [] : COMMAND_TABLE;
    const entry = choices.find((c) => c.name === arg);
    if (!entry) {
      const guesses = suggest(arg, choices.filter((c) => !c.hidden).map((c) => c.name));
      throw new UsageError(`unknown command "${arg}"${didYouMean(guesses)}`, { hint });
    }
    const command = "load" in entry ? await entry.load() : entry;
    path.push(command);
    if (!command.subcommands) return { kind: "run", path, args: args.slice(i + 1), home, json };
  }
  if (path.length === 0 && json) {
    throw new UsageError("which command? none was given", { hint: "courier --help" });
  }
  return { kind: "help", path, code: ExitCode.Usage };
}

/**
 * Runs courier with `args` (without the program name) and returns the exit
 * code. Never throws: expected errors are printed without a stack trace
 * (set `COURIER_DEBUG=1` to see one), unexpected ones as internal errors.
 *
 * Only the module of the command that runs is loaded (help loads them
 * all), and a command's implementation only when it runs, so `--version`
 * and `status` load no more than they need.
 *
 * @example
 * ```ts
 * Deno.exit(await main(["status", "--json"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let out = new Output({ json: jsonRequested(args) });
  try {
    const request = await findCommand(args);
    if (request.kind === "version") {
      out.result(`courier ${VERSION}`, { version: VERSION });
      return ExitCode.Ok;
    }
    if (request.kind === "help") {
      await printHelp(request.path);
      return request.code;
    }
    const { path } = request;
    const command = path.at(-1)!;
    const options = { ...command.options, ...GLOBAL_OPTIONS };
    let parsed;
    try {
      parsed = parseArgs(request.args, {
        options,
        allowPositionals: command.positionals ?? false,
      });
    } catch (error) {
      if (!(error instanceof ParseArgsError)) throw error;
      throw optionError(error, path, Object.keys(options));
    }
    const { values, positionals } = parsed;
    if (values.help) {
      await printHelp(path);
      return ExitCode.Ok;
    }
    const home = typeof values.home === "string" ? values.home : request.home;
    out = new Output({ json: request.json || Boolean(values.json) });
    values.json = out.json;
    return await command.run!({ values, positionals, homeOption: home, out });
  } catch (error) {
    return reportError(error, out);
  }
}

/** Prints an error the way the CLI does and returns its exit code. */
export function reportError(error: unknown, out: Output): number {
  const debug = Boolean(Deno.env.get("COURIER_DEBUG"));
  if (error instanceof CourierError) {
    if (out.json) {
      const { type: _, message: __, exit_code: ___, ...facts } = error.facts;
      out.data({
        error: { type: error.name, message: error.message, exit_code: error.exitCode, ...facts },
      });
    }
    out.error(error.message);
    for (const line of error.details) out.warn(line);
    if (debug && error.stack) out.warn(error.stack);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (out.json) {
    out.data({ error: { type: "InternalError", message, exit_code: INTERNAL_ERROR_EXIT } });
  }
  out.error(`internal error: ${message}`);
  if (debug && error instanceof Error && error.stack) out.warn(error.stack);
  else out.warn("This is a bug in courier. Re-run with COURIER_DEBUG=1 for details and report it.");
  return INTERNAL_ERROR_EXIT;
}
