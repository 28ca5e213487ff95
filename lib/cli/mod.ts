/**
 * The command-line interface: parses arguments, dispatches to a command,
 * prints, and turns errors into exit codes. Every piece of real work lives
 * in the library folders beside this one.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CourierError, ExitCode, UsageError } from "../errors/mod.ts";
import { VERSION } from "../version/mod.ts";
import { type Command, GLOBAL_OPTIONS, type OptionSpec } from "./command.ts";
import { COMMANDS } from "./commands/mod.ts";
import { Output } from "./output.ts";

export type { Command, CommandContext, OptionSpec } from "./command.ts";
export { COMMANDS } from "./commands/mod.ts";
export { formatTable, Output } from "./output.ts";

/** Exit code for an unexpected internal error (a bug): EX_SOFTWARE. */
export const INTERNAL_ERROR_EXIT = 70;

function optionLine(name: string, spec: OptionSpec): [string, string] {
  const short = spec.short ? `-${spec.short}, ` : "    ";
  const value = spec.type === "string" ? ` ${spec.valueName ?? "VALUE"}` : "";
  return [`  ${short}--${name}${value}`, spec.description];
}

/** The help text of a command (or of courier itself when `path` is empty). */
export function helpText(path: Command[]): string {
  const lines: string[] = [];
  const command = path.at(-1);
  if (!command) {
    lines.push(`courier ${VERSION}: run and manage the Courier service`, "", "Usage:");
    lines.push("  courier [--home DIR] <command> [options]", "", "Commands:");
    const visible = COMMANDS.filter((c) => !c.hidden);
    const width = Math.max(...visible.map((c) => c.name.length));
    for (const c of visible) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
    lines.push("", "Global options:");
    const globals: Record<string, OptionSpec> = {
      ...GLOBAL_OPTIONS,
      version: { type: "boolean", description: "print the version" },
    };
    pushOptions(lines, globals);
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

function findCommand(list: Command[], name: string): Command | undefined {
  return list.find((c) => c.name === name);
}

/**
 * Runs courier with `args` (without the program name) and returns the exit
 * code. Never throws: expected errors are printed without a stack trace
 * (set `COURIER_DEBUG=1` to see one), unexpected ones as internal errors.
 *
 * @example
 * ```ts
 * Deno.exit(await main(["status", "--json"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const wantsJson = args.includes("--json");
  let out = new Output({ json: wantsJson });
  try {
    // Global options may come before the command.
    let home: string | undefined;
    let rest = [...args];
    while (rest.length > 0 && rest[0].startsWith("-")) {
      const flag = rest[0];
      if (flag === "--version" || flag === "-V") {
        out.result(`courier ${VERSION}`, { version: VERSION });
        return ExitCode.Ok;
      }
      if (flag === "--help" || flag === "-h") {
        out.text(helpText([]));
        return ExitCode.Ok;
      }
      if (flag === "--json") {
        rest = rest.slice(1);
      } else if (flag === "--home" && rest.length > 1) {
        home = rest[1];
        rest = rest.slice(2);
      } else if (flag.startsWith("--home=")) {
        home = flag.slice("--home=".length);
        rest = rest.slice(1);
      } else {
        throw new UsageError(`unknown option "${flag}"`);
      }
    }
    if (rest.length === 0) {
      out.text(helpText([]));
      return ExitCode.Usage;
    }
    const path: Command[] = [];
    let list = COMMANDS;
    let command: Command | undefined;
    while (rest.length > 0 && !rest[0].startsWith("-")) {
      const next = findCommand(list, rest[0]);
      if (!next) {
        if (command && !command.subcommands) break; // a positional argument
        const where = path.length ? `courier ${path.map((c) => c.name).join(" ")}` : "courier";
        throw new UsageError(`unknown command "${rest[0]}"`, { hint: `${where} --help` });
      }
      command = next;
      path.push(next);
      rest = rest.slice(1);
      if (!next.subcommands) break;
      list = next.subcommands;
    }
    if (!command) throw new UsageError(`unknown option "${rest[0]}"`);
    const hint = `courier ${path.map((c) => c.name).join(" ")} --help`;
    if (command.subcommands) {
      if (rest.includes("--help") || rest.includes("-h") || rest.length === 0) {
        out.text(helpText(path));
        return rest.length === 0 ? ExitCode.Usage : ExitCode.Ok;
      }
      throw new UsageError(`unknown command "${rest[0]}"`, { hint });
    }
    const options = { ...command.options, ...GLOBAL_OPTIONS };
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: Object.fromEntries(
          Object.entries(options).map(([name, spec]) => [
            name,
            {
              type: spec.type,
              ...(spec.short ? { short: spec.short } : {}),
              ...(spec.multiple ? { multiple: true } : {}),
            },
          ]),
        ),
        allowPositionals: command.positionals ?? false,
        strict: true,
      });
    } catch (error) {
      const code = (error as { code?: string }).code ?? "";
      if (!code.startsWith("ERR_PARSE_ARGS")) throw error;
      throw new UsageError(parseArgsMessage(error), { hint });
    }
    const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
    if (values.help) {
      out.text(helpText(path));
      return ExitCode.Ok;
    }
    if (typeof values.home === "string") home = values.home;
    out = new Output({ json: Boolean(values.json) });
    return await command.run!({ values, positionals: parsed.positionals, homeOption: home, out });
  } catch (error) {
    return reportError(error, out);
  }
}

function parseArgsMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = message.match(/Unknown option '([^']+)'/);
  if (unknown) return `unknown option "${unknown[1]}"`;
  const positional = message.match(/Unexpected argument '([^']+)'/);
  if (positional) return `unexpected argument "${positional[1]}"`;
  const missing = message.match(/Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/);
  if (missing) return `option ${missing[1]} needs a value`;
  const ambiguous = message.match(/Option '([^']+)' argument is ambiguous/);
  if (ambiguous) {
    return `option ${ambiguous[1]} got a value starting with "-": write ${ambiguous[1]}=VALUE`;
  }
  return message.split("\n")[0].replace(/\. To specify.*$/, "");
}

/** Prints an error the way the CLI does and returns its exit code. */
export function reportError(error: unknown, out: Output): number {
  const debug = Boolean(Deno.env.get("COURIER_DEBUG"));
  if (error instanceof CourierError) {
    if (out.json) {
      out.data({ error: { type: error.name, message: error.message, exit_code: error.exitCode } });
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
