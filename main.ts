/**
 * courier's entry point: `deno run main.ts <command>` or the compiled
 * `courier <command>`. All logic lives in `lib/`.
 *
 * @module
 */
import { main } from "./lib/cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
