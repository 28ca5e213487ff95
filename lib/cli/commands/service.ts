import { ExitCode, UsageError } from "../../errors/mod.ts";
import { parsePort, parseSeconds, stringOption } from "../args.ts";
import type { Command, CommandContext } from "../command.ts";
import { formatTable } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

/** A command line as a shell would read it back (words quoted where needed). */
function shellLine(argv: string[]): string {
  return argv.map((w) => /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)
    .join(" ");
}

/** What `service install` was asked for (absent: the library's defaults). */
function installSettings(ctx: CommandContext): {
  port?: number | "auto";
  host?: string;
  timeoutMs?: number;
} {
  const hint = "courier service install --help";
  const portOption = stringOption(ctx.values, "port");
  const portText = portOption ?? Deno.env.get("COURIER_PORT");
  let port: number | "auto" | undefined;
  if (portText === "auto") port = "auto";
  else if (portText !== undefined) {
    port = parsePort(portText, {
      option: portOption !== undefined ? "--port" : "COURIER_PORT",
      hint,
    });
  }
  const host = stringOption(ctx.values, "host");
  if (host !== undefined && (!host || /[\s/]/.test(host))) {
    throw new UsageError(`invalid --host "${host}"`, { hint });
  }
  const timeout = stringOption(ctx.values, "timeout");
  const timeoutMs = timeout === undefined
    ? undefined
    : parseSeconds(timeout, { option: "--timeout", hint });
  return { port, host, timeoutMs };
}

const install: Command = {
  name: "install",
  summary: "run courier as a user service of the OS: at login, restarted when it fails",
  usage: ["install [--port N|auto] [--host H] [--timeout SECONDS]"],
  options: {
    port: {
      type: "string",
      valueName: "N|auto",
      description: "port the service listens on (default $COURIER_PORT or 8644)",
    },
    host: { type: "string", valueName: "H", description: "host to listen on (default 127.0.0.1)" },
    timeout: {
      type: "string",
      valueName: "SECONDS",
      description: "how long to wait for the service to become ready (default 10)",
    },
  },
  async run(ctx) {
    const settings = installSettings(ctx);
    const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
      "../../home/mod.ts",
      import.meta.url,
    );
    const { installService } = await importLazily<typeof import("../../supervise/mod.ts")>(
      "../../supervise/mod.ts",
      import.meta.url,
    );
    const result = await installService({ home: resolveHome(ctx.homeOption), ...settings });
    const { state } = result;
    const lines: string[] = [];
    if (result.written) {
      const content = result.content.trimEnd().split("\n").map((l) => l && `    ${l}`);
      lines.push(`Wrote ${result.file}:`, ...content);
    }
    if (result.stopped) {
      lines.push(`Stopped Courier (PID ${result.stopped.pid}), which ran outside the service.`);
    }
    for (const argv of result.commands) lines.push(`Ran: ${shellLine(argv)}`);
    const runs = `${result.name} runs Courier (PID ${state.pid}) at ${state.api_url}`;
    lines.push(
      result.changed
        ? `${runs}. It starts at login and is started again when it fails.`
        : `${runs}: already installed, nothing changed.`,
    );
    if (result.linger === false) {
      lines.push(
        `Lingering is off: systemd stops ${result.name} when your last session ends, and starts ` +
          "it at your next login. To keep it running: loginctl enable-linger",
      );
    } else if (result.linger === null && result.manager === "systemd") {
      lines.push(
        "Could not tell whether lingering is on (loginctl did not answer); if it is off, the " +
          "service stops when your last session ends ('loginctl enable-linger' keeps it running).",
      );
    }
    ctx.out.result(lines, {
      installed: true,
      manager: result.manager,
      name: result.name,
      file: result.file,
      written: result.written,
      created: result.created,
      changed: result.changed,
      commands: result.commands,
      stopped: result.stopped,
      pid: state.pid,
      api_url: state.api_url,
      linger: result.linger,
      content: result.content,
    });
    return ExitCode.Ok;
  },
};

const uninstall: Command = {
  name: "uninstall",
  summary: "stop courier's user service and remove it",
  usage: ["uninstall"],
  options: {},
  async run(ctx) {
    const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
      "../../home/mod.ts",
      import.meta.url,
    );
    const { uninstallService } = await importLazily<typeof import("../../supervise/mod.ts")>(
      "../../supervise/mod.ts",
      import.meta.url,
    );
    const home = resolveHome(ctx.homeOption);
    const result = await uninstallService({ home });
    const lines = result.removed
      ? [
        `Removed ${result.name} (${result.file}).`,
        ...result.commands.map((argv) => `Ran: ${shellLine(argv)}`),
        result.stopped
          ? `Stopped Courier (PID ${result.stopped}); 'courier start' runs it without a service.`
          : "Courier is not running; 'courier start' runs it without a service.",
      ]
      : [`No courier service is installed for the home ${home} (no ${result.file}).`];
    ctx.out.result(lines, { ...result, home });
    return ExitCode.Ok;
  },
};

const status: Command = {
  name: "status",
  summary: "show the service as the OS sees it, beside courier's own status",
  usage: ["status"],
  options: {},
  async run(ctx) {
    const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
      "../../home/mod.ts",
      import.meta.url,
    );
    const { serviceStatus } = await importLazily<typeof import("../../supervise/mod.ts")>(
      "../../supervise/mod.ts",
      import.meta.url,
    );
    const report = await serviceStatus({ home: resolveHome(ctx.homeOption) });
    const { courier } = report;
    const code = !report.installed
      ? ExitCode.Failure
      : !report.active || courier.state === "stopped" || courier.state === "stale"
      ? ExitCode.Permission
      : courier.state === "running"
      ? ExitCode.Ok
      : ExitCode.PortInUse;
    if (ctx.out.json) {
      ctx.out.data(report);
      return code;
    }
    const kind = report.manager === "systemd" ? "systemd user unit" : "launchd agent";
    const unit = [
      report.state,
      report.enabled === null
        ? ""
        : report.manager === "systemd"
        ? (report.enabled ? "enabled" : "not enabled")
        : (report.enabled ? "loaded" : "not loaded"),
      report.pid ? `PID ${report.pid}` : "",
      report.restarts !== null
        ? `${report.restarts} restart${report.restarts === 1 ? "" : "s"}`
        : "",
      report.last_exit_code ? `last exit code ${report.last_exit_code}` : "",
    ].filter(Boolean).join(", ");
    const rows = [
      ["service", `${report.name} (${kind})`],
      ["file", report.installed ? report.file : `${report.file} (not installed)`],
      ["state", report.error ? `unknown: ${report.error}` : unit],
    ];
    if (report.linger !== null) {
      rows.push(["linger", report.linger ? "on" : "off: it stops when your last session ends"]);
    }
    const courierLine = [
      courier.state,
      courier.pid ? `PID ${courier.pid}` : "",
      courier.api_url ?? "",
      courier.supervisor ? `run by ${courier.supervisor.manager} (${courier.supervisor.name})` : "",
    ].filter(Boolean).join(", ");
    rows.push(["courier", courierLine]);
    const [, ...lines] = formatTable(["", ""], rows);
    ctx.out.text(...lines);
    if (!report.installed) ctx.out.text("Install it with 'courier service install'.");
    return code;
  },
};

/** `courier service`: install, remove and inspect courier's user service. */
export const serviceCommand: Command = {
  name: "service",
  summary: "run courier as a user service of the OS (systemd, launchd)",
  usage: ["service <command> [options]"],
  options: {},
  subcommands: [install, uninstall, status],
};
