import { UsageError } from "../../errors/mod.ts";
import type { Command } from "../command.ts";
import { formatTable } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

const listCommand: Command = {
  name: "list",
  summary: "list the chat providers: connected or last error, messages in and out",
  usage: ["list [--json]"],
  options: {},
  async run(ctx) {
    const [{ homeLayout, resolveHome }, { listProviders }] = await Promise.all([
      importLazily<typeof import("../../home/mod.ts")>("../../home/mod.ts", import.meta.url),
      importLazily<typeof import("../../mail/provider_list.ts")>(
        "../../mail/provider_list.ts",
        import.meta.url,
      ),
    ]);
    const listing = await listProviders(homeLayout(resolveHome(ctx.homeOption)));
    if (ctx.out.json) {
      ctx.out.data(listing);
      return 0;
    }
    if (listing.providers.length === 0) {
      ctx.out.text("No providers in config.json (see 'Chat platforms' in the README).");
      return 0;
    }
    const count = (n: number | undefined) => (n === undefined ? "-" : String(n));
    const rows = listing.providers.map((p) => {
      const state = p.config_error
        ? ctx.out.paint("red", "config error")
        : !listing.live
        ? "-"
        : p.connected === null
        ? "webhook"
        : p.connected
        ? ctx.out.paint("green", "connected")
        : ctx.out.paint("yellow", "disconnected");
      return [
        p.name,
        p.type,
        p.mode,
        state,
        count(p.received),
        count(p.sent),
        count(p.failed),
        count(p.dropped),
        count(p.rejected),
      ];
    });
    ctx.out.text(
      ...formatTable(
        ["NAME", "TYPE", "MODE", "STATE", "IN", "OUT", "FAILED", "DROPPED", "REFUSED"],
        rows,
      ),
    );
    for (const p of listing.providers) {
      if (p.config_error) ctx.out.text(`${p.name}: ${p.config_error}`);
      else if (p.last_error) {
        ctx.out.text(`${p.name}: last error ${p.last_error_at}: ${p.last_error}`);
      }
    }
    if (listing.note) ctx.out.text(`(${listing.note})`);
    return 0;
  },
};

const checkCommand: Command = {
  name: "check",
  summary: "check a provider's credentials with its platform (needs no running courier)",
  usage: [
    "check NAME [--json]     # reads config.json and this shell's environment (env: secrets)",
  ],
  options: {},
  positionals: true,
  async run(ctx) {
    if (ctx.positionals.length !== 1) {
      throw new UsageError(
        ctx.positionals.length === 0 ? "missing provider NAME" : "expected one provider NAME",
        { hint: "courier provider check --help" },
      );
    }
    const [{ homeLayout, resolveHome }, { checkProvider }] = await Promise.all([
      importLazily<typeof import("../../home/mod.ts")>("../../home/mod.ts", import.meta.url),
      importLazily<typeof import("../../providers/check.ts")>(
        "../../providers/check.ts",
        import.meta.url,
      ),
    ]);
    const layout = homeLayout(resolveHome(ctx.homeOption));
    const result = await checkProvider(layout.configFile, ctx.positionals[0]);
    const head = `${result.name} (${result.type}, ${result.mode})`;
    if (ctx.out.json) ctx.out.data(result);
    else if (result.ok) ctx.out.text(`${head}: ${ctx.out.paint("green", "ok")}: ${result.detail}`);
    else ctx.out.error(`${head}: the credentials do not work: ${result.detail}`);
    return result.ok ? 0 : 1;
  },
};

/** `courier provider list|check`: the chat platforms of `config.json`. */
export const providerCommand: Command = {
  name: "provider",
  summary: "list the chat providers and check their credentials",
  usage: ["provider <command> [options]"],
  options: {},
  subcommands: [listCommand, checkCommand],
};
