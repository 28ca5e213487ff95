/**
 * The shells courier completes, and the line that loads the script in each:
 * all the `completions` command's help needs, kept apart from the script
 * generators so that the command table stays light.
 *
 * @module
 */

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
