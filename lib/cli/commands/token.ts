import { UsageError } from "../../errors/mod.ts";
import type { Command } from "../command.ts";
import { importLazily } from "../../lazy/mod.ts";

const HINT = "courier token --help";

/** `courier token [rotate]`: prints or replaces the API token. */
export const tokenCommand: Command & { positionalChoices: readonly string[] } = {
  name: "token",
  summary: "print the API token for scripts (rotate: replace it)",
  usage: [
    'token                     # curl -H "Authorization: Bearer $(courier token)" …',
    "token rotate              # a new token; the running daemon refuses the old one at once",
  ],
  options: {},
  positionals: true,
  positionalChoices: ["rotate"],
  async run(ctx) {
    if (ctx.positionals.length > 1 || (ctx.positionals[0] ?? "rotate") !== "rotate") {
      throw new UsageError(`unexpected argument "${ctx.positionals.at(-1)}"`, { hint: HINT });
    }
    const { ensureHome, homeLayout, resolveHome } = await importLazily<
      typeof import("../../home/mod.ts")
    >("../../home/mod.ts", import.meta.url);
    const { ensureTokenFile, rotateTokenFile } = await importLazily<
      typeof import("../../http/token.ts")
    >("../../http/token.ts", import.meta.url);
    const layout = homeLayout(resolveHome(ctx.homeOption));
    await ensureHome(layout);
    const path = layout.tokenFile;
    if (ctx.positionals[0] === "rotate") {
      await rotateTokenFile(path);
      ctx.out.result(
        `Wrote a new API token to ${path}; a running daemon refuses the old one within a ` +
          `second. Print it with 'courier token'.`,
        { rotated: true, path },
      );
      return 0;
    }
    const { token, created } = await ensureTokenFile(path);
    if (created && !ctx.out.json) ctx.out.warn(`created a new API token in ${path}`);
    ctx.out.result(token, { token, path, created });
    return 0;
  },
};
