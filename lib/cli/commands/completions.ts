import type { CompletableCommand } from "../../completions/mod.ts";
import { isShell, RC_LINES, SHELLS } from "../../completions/shells.ts";
import { UsageError } from "../../errors/mod.ts";
import { writeStdout } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

const HINT = "courier completions --help";

/** `courier completions bash|zsh|fish`: prints a completion script. */
export const completionsCommand: CompletableCommand = {
  name: "completions",
  summary: "print the shell completion script for bash, zsh or fish",
  // One line a shell, with the line that loads it from the shell's rc file.
  usage: SHELLS.map((shell) =>
    `completions ${shell.padEnd(4)}  # ${RC_LINES[shell].file}: ${RC_LINES[shell].line}`
  ),
  options: {},
  positionals: true,
  positionalChoices: SHELLS,
  async run(ctx) {
    if (ctx.positionals.length !== 1) {
      throw new UsageError(
        ctx.positionals.length === 0
          ? `which shell? expected one of: ${SHELLS.join(", ")}`
          : `expected one shell, got ${ctx.positionals.length}: ${ctx.positionals.join(" ")}`,
        { hint: HINT },
      );
    }
    const [shell] = ctx.positionals;
    if (!isShell(shell)) {
      throw new UsageError(`unknown shell "${shell}": expected one of ${SHELLS.join(", ")}`, {
        hint: HINT,
      });
    }
    // Imported here, not at the top: the command list imports this module.
    const { COMMANDS } = await importLazily<typeof import("./mod.ts")>("./mod.ts", import.meta.url);
    const { completionScript } = await importLazily<typeof import("../../completions/mod.ts")>(
      "../../completions/mod.ts",
      import.meta.url,
    );
    const script = completionScript(shell, COMMANDS);
    if (ctx.out.json) ctx.out.data({ shell, script });
    else writeStdout(script);
    return 0;
  },
};
