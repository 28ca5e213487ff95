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
export { isShell, RC_LINES, type Shell, SHELLS } from "./shells.ts";
import type { Shell } from "./shells.ts";
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
