/**
 * A small command-line parser: long options (`--port 80`, `--port=80`),
 * short ones (`-n 5`, `-n5`, grouped flags `-fv`), booleans, options given
 * more than once, positionals, and `--` ending the options. It follows the
 * rules of `node:util` `parseArgs` in strict mode (which it replaces: that
 * module costs every CLI call the start-up of Node compatibility), and its
 * errors are {@link ParseArgsError}s whose messages the CLI prints as they
 * are.
 *
 * @example
 * ```ts
 * const { values, positionals } = parseArgs(["-n", "5", "--follow", "app.log"], {
 *   options: { lines: { type: "string", short: "n" }, follow: { type: "boolean" } },
 *   allowPositionals: true,
 * });
 * // values: { lines: "5", follow: true }, positionals: ["app.log"]
 * ```
 *
 * @module
 */
import { UsageError } from "../errors/mod.ts";

/** One option the parser knows, by its long name. */
export interface ArgOption {
  /** `string` takes a value, `boolean` is a flag. */
  type: "string" | "boolean";
  /** One-letter alias (`n` for `-n`). */
  short?: string;
  /** May be given more than once: the values are collected in an array. */
  multiple?: boolean;
}

/** What {@link parseArgs} is told. */
export interface ParseArgsOptions {
  /** The options, by long name. */
  options: Record<string, ArgOption>;
  /** Whether arguments that are not options are allowed (default `false`). */
  allowPositionals?: boolean;
}

/** What {@link parseArgs} found. */
export interface ParsedArgs {
  /** Option values by long name: a string, `true`, or an array for `multiple`. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** The other arguments, in order (everything after `--` among them). */
  positionals: string[];
}

/** The kinds of mistakes {@link ParseArgsError} reports. */
export type ArgsProblem =
  | "unknown-option"
  | "unexpected-argument"
  | "missing-value"
  | "dash-value"
  | "unexpected-value";

/** The command line does not fit the options: an unknown option, a missing value… */
export class ParseArgsError extends UsageError {
  /** What is wrong. */
  readonly problem: ArgsProblem;
  /** The option or argument as it was written (`--bogus`, `-x`, `extra`). */
  readonly token: string;
  /** The positional arguments that came before it. */
  readonly positionals: readonly string[];

  /**
   * @param problem What is wrong.
   * @param message The one-line explanation.
   * @param details The offending token, and the positionals that came before it.
   */
  constructor(
    problem: ArgsProblem,
    message: string,
    details: { token: string; positionals: readonly string[] },
  ) {
    super(message);
    this.name = "ParseArgsError";
    this.problem = problem;
    this.token = details.token;
    this.positionals = details.positionals;
  }
}

/**
 * Parses `args` against `options`.
 *
 * - `--name value` and `--name=value` set a string option (`--name=` sets it
 *   to `""`); a value that starts with `-` must use the `=` form.
 * - `-n value`, `-nvalue` set one by its short alias; `-abc` sets flags `a`,
 *   `b` and `c`, where a string option in the middle takes the rest (`-vn5`).
 * - `--` ends the options: what follows is positional. A lone `-` is positional.
 * - Given twice, an option keeps its last value, unless it is `multiple`.
 *
 * @throws {ParseArgsError} on an unknown option, a missing value, a value
 * given to a flag, or a positional argument where none is allowed.
 */
export function parseArgs(args: readonly string[], options: ParseArgsOptions): ParsedArgs {
  const specs = options.options;
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.short) byShort.set(spec.short, name);
  }
  const values: ParsedArgs["values"] = {};
  const positionals: string[] = [];
  const fail = (problem: ArgsProblem, message: string, token: string): ParseArgsError =>
    new ParseArgsError(problem, message, { token, positionals: [...positionals] });
  const set = (name: string, value: string | boolean) => {
    if (specs[name].multiple) {
      const list = values[name];
      values[name] = [...(Array.isArray(list) ? list : []), String(value)];
    } else {
      values[name] = value;
    }
  };
  const known = (name: string): boolean => Object.hasOwn(specs, name);
  /** Takes the value of a string option from the next argument. */
  const takeNext = (name: string, written: string, index: number): string => {
    const next = args[index];
    if (next === undefined) throw fail("missing-value", `option --${name} needs a value`, written);
    if (next.length > 1 && next.startsWith("-")) {
      throw fail(
        "dash-value",
        `option ${written} got a value starting with "-": write --${name}=VALUE`,
        written,
      );
    }
    return next;
  };
  const positional = (arg: string) => {
    if (!options.allowPositionals) {
      throw fail("unexpected-argument", `unexpected argument "${arg}"`, arg);
    }
    positionals.push(arg);
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      for (const rest of args.slice(i + 1)) positional(rest);
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq === -1 ? undefined : eq);
      const written = `--${name}`;
      if (!known(name)) throw fail("unknown-option", `unknown option "${written}"`, written);
      if (specs[name].type === "boolean") {
        if (eq !== -1) throw fail("unexpected-value", `option ${written} takes no value`, written);
        set(name, true);
      } else if (eq !== -1) {
        set(name, arg.slice(eq + 1));
      } else {
        set(name, takeNext(name, written, ++i));
      }
      continue;
    }
    if (arg.length < 2 || !arg.startsWith("-")) {
      positional(arg);
      continue;
    }
    // One or more short options: -n, -n5, -fv, -fn5.
    for (let at = 1; at < arg.length; at++) {
      const letter = arg[at];
      const written = `-${letter}`;
      const name = byShort.get(letter);
      if (name === undefined) throw fail("unknown-option", `unknown option "${written}"`, written);
      if (specs[name].type === "boolean") {
        set(name, true);
        continue;
      }
      const rest = arg.slice(at + 1);
      set(name, rest !== "" ? rest : takeNext(name, written, ++i));
      break;
    }
  }
  return { values, positionals };
}
