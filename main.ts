/**
 * courier's entry point: `deno run main.ts <command>` or the compiled
 * `courier <command>`. All logic lives in `lib/`. `courier --version` alone
 * is answered here, before the CLI's modules load: scripts and installers
 * call it to find out whether and which courier is there.
 *
 * @module
 */
import { writeStdout } from "./lib/cli/output.ts";
import { importLazily } from "./lib/lazy/mod.ts";
import { VERSION } from "./lib/version/mod.ts";

if (import.meta.main) {
  const args = Deno.args;
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
    writeStdout(`courier ${VERSION}\n`);
    Deno.exit(0);
  }
  const { main } = await importLazily<typeof import("./lib/cli/mod.ts")>(
    "./lib/cli/mod.ts",
    import.meta.url,
  );
  Deno.exit(await main(args));
}
