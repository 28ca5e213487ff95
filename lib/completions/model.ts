import { type Command, GLOBAL_OPTIONS, type OptionSpec, ROOT_OPTIONS } from "../cli/command.ts";

export { ROOT_OPTIONS };

/**
 * A command may list the values its positional arguments take (as
 * `completions` does with `bash zsh fish`); the generators offer them.
 * An optional extra field, so any command can opt in without changing
 * {@link Command}.
 */
export interface CompletableCommand extends Command {
  /** Values offered for the positional arguments. */
  positionalChoices?: readonly string[];
}

/** What a shell should offer for a value: a fixed list, directories, files, or nothing. */
export type ValueKind =
  | { kind: "choices"; choices: readonly string[] }
  | { kind: "dir" }
  | { kind: "file" }
  | { kind: "any" };

/** One option as the generators see it. */
export interface CompletionOption {
  /** Long name without dashes (`port`). */
  name: string;
  /** One-letter alias without the dash (`n`). */
  short?: string;
  /** One line of help. */
  description: string;
  /** The value's name in help (`N`, `DIR`), when it takes one. */
  valueName?: string;
  /** What its value is, or `null` for a flag. */
  value: ValueKind | null;
  /** May be given more than once. */
  multiple: boolean;
}

/** One command path (`courier port allocate`) as the generators see it. */
export interface CompletionNode {
  /** Command names from the root (`["port", "allocate"]`); empty for courier itself. */
  path: string[];
  /** One line of help. */
  summary: string;
  /** The options accepted at this point of the command line. */
  options: CompletionOption[];
  /** Visible subcommands (empty for a leaf). */
  subcommands: CompletionNode[];
  /** What positional arguments take, or `null` when there are none. */
  positionals: ValueKind | null;
}

function valueKind(name: string, spec: OptionSpec): ValueKind | null {
  if (spec.type === "boolean") return null;
  if (spec.choices && spec.choices.length > 0) return { kind: "choices", choices: spec.choices };
  const valueName = (spec.valueName ?? "").toUpperCase();
  if (valueName === "DIR" || valueName.endsWith("_DIR") || name === "home") return { kind: "dir" };
  if (["FILE", "PATH"].includes(valueName) || valueName.endsWith("_FILE")) return { kind: "file" };
  return { kind: "any" };
}

function options(specs: Record<string, OptionSpec>): CompletionOption[] {
  return Object.entries(specs).map(([name, spec]) => ({
    name,
    short: spec.short,
    description: spec.description,
    valueName: spec.type === "string" ? spec.valueName ?? "VALUE" : undefined,
    value: valueKind(name, spec),
    multiple: spec.multiple ?? false,
  }));
}

function node(command: CompletableCommand, parent: string[]): CompletionNode {
  const path = [...parent, command.name];
  if (command.subcommands) {
    // The dispatcher takes the global options between a command and its subcommand too;
    // only --help is offered there (`--home`/`--json` belong before or after the command).
    return {
      path,
      summary: command.summary,
      options: options({ help: GLOBAL_OPTIONS.help }),
      subcommands: command.subcommands.filter((c) => !c.hidden).map((c) => node(c, path)),
      positionals: null,
    };
  }
  let positionals: ValueKind | null = null;
  if (command.positionalChoices?.length) {
    positionals = { kind: "choices", choices: command.positionalChoices };
  } else if (command.positionals) {
    positionals = { kind: "file" };
  }
  return {
    path,
    summary: command.summary,
    // Same precedence as the dispatcher: the global options win a name clash.
    options: options({ ...command.options, ...GLOBAL_OPTIONS }),
    subcommands: [],
    positionals,
  };
}

/** The completion tree of `commands` (hidden ones left out) under courier itself. */
export function completionTree(commands: readonly Command[]): CompletionNode {
  return {
    path: [],
    summary: "run and manage the Courier service",
    options: options(ROOT_OPTIONS),
    subcommands: commands.filter((c) => !c.hidden).map((c) => node(c, [])),
    positionals: null,
  };
}

/** Every node of `root`, parents before children. */
export function allNodes(root: CompletionNode): CompletionNode[] {
  return [root, ...root.subcommands.flatMap(allNodes)];
}

/** The option words of an option: `--name` and `-s`. */
export function optionWords(option: CompletionOption): string[] {
  return option.short ? [`--${option.name}`, `-${option.short}`] : [`--${option.name}`];
}
