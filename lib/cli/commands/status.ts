import type { ServiceStateName } from "../../service/mod.ts";
import type { Command } from "../command.ts";
import { formatTable, type Style } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

/** Exit codes of `courier status`, by state. */
export const STATUS_EXIT: Record<ServiceStateName, number> = {
  running: 0,
  stale: 1,
  stopped: 3,
  starting: 4,
  unhealthy: 4,
};

const STYLE: Record<ServiceStateName, Style> = {
  running: "green",
  starting: "yellow",
  unhealthy: "red",
  stale: "yellow",
  stopped: "dim",
};

function uptime(seconds: number | null): string {
  if (seconds === null) return "-";
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return h ? `${h}h ${m}m ${s}s` : m ? `${m}m ${s}s` : `${s}s`;
}

/** `courier status`. */
export const statusCommand: Command = {
  name: "status",
  summary: "show whether the service runs and is healthy",
  usage: ["status [--json]"],
  options: {},
  async run(ctx) {
    const [{ homeLayout, resolveHome }, { getStatus }] = await Promise.all([
      importLazily<typeof import("../../home/mod.ts")>("../../home/mod.ts", import.meta.url),
      importLazily<typeof import("../../service/status.ts")>(
        "../../service/status.ts",
        import.meta.url,
      ),
    ]);
    const status = await getStatus(homeLayout(resolveHome(ctx.homeOption)));
    const { daemon: _daemon, ...json } = status;
    if (ctx.out.json) {
      ctx.out.data(json);
    } else {
      const rows: string[][] = [["state", ctx.out.paint(STYLE[status.state], status.state)]];
      if (status.pid !== null) rows.push(["pid", String(status.pid)]);
      if (status.api_url) rows.push(["url", status.api_url]);
      if (status.uptime_s !== null) rows.push(["uptime", uptime(status.uptime_s)]);
      if (status.version) rows.push(["version", status.version]);
      if (status.supervisor) {
        rows.push(["run by", `${status.supervisor.manager} (${status.supervisor.name})`]);
      }
      rows.push(["home", status.home]);
      for (const [name, c] of Object.entries(status.connections ?? {})) {
        const state = c.connected
          ? ctx.out.paint("green", "connected")
          : ctx.out.paint("yellow", c.last_error ? `reconnecting: ${c.last_error}` : "connecting");
        rows.push([`${name}`, `${c.type} ${c.mode}, ${state}`]);
      }
      if (status.reason) rows.push(["reason", status.reason]);
      const [, ...lines] = formatTable(["", ""], rows);
      ctx.out.text(...lines);
      if (status.hint) ctx.out.text(status.hint);
    }
    return STATUS_EXIT[status.state];
  },
};
