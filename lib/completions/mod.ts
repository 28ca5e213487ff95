/**
 * Shell completion scripts for bash, zsh and fish, generated from the
 * command metadata (`COMMANDS`): every visible command, subcommand and
 * option, with the `choices` of options, so a new command is covered without
 * touching this folder.
 *
 * @example
 * ```ts
 * import { COMMANDS } from "../cli/commands/mod.ts";
 * console.log(completionScript("bash", COMMANDS));
 * ```
 *
 * @module
 */
import type { Command } from "../cli/command.ts";
import { VERSION } from "../version/mod.ts";
import { bashScript } from "./bash.ts";
import { fishScript } from "./fish.ts";
import { completionTree } from "./model.ts";
import { zshScript } from "./zsh.ts";

export {
  allNodes,
  type CompletableCommand,
  type CompletionNode,
  type CompletionOption,
  completionTree,
  optionWords,
  ROOT_OPTIONS,
  type ValueKind,
} from "./model.ts";

/** The shells courier writes completion scripts for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

/** One of {@link SHELLS}. */
export type Shell = typeof SHELLS[number];

/** Whether `name` is one of {@link SHELLS}. */
export function isShell(name: string): name is Shell {
  return (SHELLS as readonly string[]).includes(name);
}

/** The line to put in the shell's rc file to load courier's completions. */
export const RC_LINES: Record<Shell, { file: string; line: string }> = {
  bash: { file: "~/.bashrc", line: `eval "$(courier completions bash)"` },
  zsh: { file: "~/.zshrc (after compinit)", line: "source <(courier completions zsh)" },
  fish: { file: "~/.config/fish/config.fish", line: "courier completions fish | source" },
};

/** The completion script of `shell` for `commands` (hidden commands left out). */
export function completionScript(
  shell: Shell,
  commands: readonly Command[],
  version: string = VERSION,
): string {
  const tree = completionTree(commands);
  switch (shell) {
    case "bash":
      return bashScript(tree, version);
    case "zsh":
      return zshScript(tree, version);
    case "fish":
      return fishScript(tree, version);
  }
}
