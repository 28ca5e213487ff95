import type { FindingLevel } from "../../doctor/mod.ts";
import { ExitCode } from "../../errors/mod.ts";
import { parsePort, stringOption } from "../args.ts";
import type { Command } from "../command.ts";
import type { Style } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

const MARK: Record<FindingLevel, [string, Style]> = {
  ok: ["ok", "green"],
  info: ["info", "blue"],
  warn: ["warn", "yellow"],
  problem: ["PROBLEM", "red"],
};

/** `courier doctor`. */
export const doctorCommand: Command = {
  name: "doctor",
  summary: "check the home, stale files, orphans, the port and helper tools",
  usage: ["doctor [--port N] [--json]"],
  options: {
    port: {
      type: "string",
      valueName: "N",
      description:
        "port to check (default: the one the service runs on, else $COURIER_PORT or 8644)",
    },
  },
  async run(ctx) {
    const hint = "courier doctor --help";
    const text = stringOption(ctx.values, "port");
    const env = Deno.env.get("COURIER_PORT");
    const port = text !== undefined ? parsePort(text, { option: "--port", hint }) : undefined;
    const defaultPort = env === "auto"
      ? "auto"
      : env !== undefined
      ? parsePort(env, { option: "COURIER_PORT", hint })
      : undefined;
    const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
      "../../home/mod.ts",
      import.meta.url,
    );
    const { diagnose } = await importLazily<typeof import("../../doctor/mod.ts")>(
      "../../doctor/mod.ts",
      import.meta.url,
    );
    const diagnosis = await diagnose(resolveHome(ctx.homeOption), { port, defaultPort });
    if (ctx.out.json) {
      ctx.out.data(diagnosis);
    } else {
      const width = Math.max(...diagnosis.findings.map((f) => MARK[f.level][0].length));
      for (const finding of diagnosis.findings) {
        const [label, style] = MARK[finding.level];
        ctx.out.text(
          `${ctx.out.paint(style, label.padEnd(width))}  ${
            finding.check.padEnd(8)
          }  ${finding.message}`,
        );
        if (finding.fix) ctx.out.text(`${" ".repeat(width + 12)}fix: ${finding.fix}`);
      }
      ctx.out.text(
        diagnosis.ok ? "All is well." : "Problems found: run the fix commands above.",
      );
    }
    return diagnosis.ok ? ExitCode.Ok : ExitCode.Failure;
  },
};
