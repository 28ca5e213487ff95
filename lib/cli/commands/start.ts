import { UsageError } from "../../errors/mod.ts";
import type { HomeLayout } from "../../home/mod.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "../../service/defaults.ts";
import type { DaemonState, StartOptions } from "../../service/mod.ts";
import { parseInteger, parsePort, parseSeconds, stringOption } from "../args.ts";
import type { Command, CommandContext, OptionSpec } from "../command.ts";
import type { Output } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

/** Options shared by `start`, `restart` and the internal `daemon`. */
const SERVE_OPTIONS: Record<string, OptionSpec> = {
  port: {
    type: "string",
    valueName: "N|auto",
    description:
      `port to listen on (default $COURIER_PORT or ${DEFAULT_PORT}); auto: lease one, preferring that`,
  },
  host: {
    type: "string",
    valueName: "H",
    description: `host to listen on (default ${DEFAULT_HOST})`,
  },
  "debounce-window": {
    type: "string",
    valueName: "MS",
    description: "mail: fold messages arriving within MS of the last one (default 5000)",
  },
  "debounce-max-wait": {
    type: "string",
    valueName: "MS",
    description: "mail: cut a burst MS after its first message (default 30000)",
  },
};

const START_OPTIONS: Record<string, OptionSpec> = {
  ...SERVE_OPTIONS,
  foreground: {
    type: "boolean",
    description: "run in this process, logging to stderr; Ctrl-C stops it",
  },
  timeout: {
    type: "string",
    valueName: "SECONDS",
    description: "how long to wait for the service to become ready (default 10)",
  },
  "if-not-running": {
    type: "boolean",
    description: "exit 0 without doing anything when it is already running",
  },
};

interface ServeSettings {
  host: string;
  port: number | "auto";
  debounce: Record<string, number | undefined>;
  daemonArgs: string[];
  /** Every serve option as resolved (port and host always), recorded for `restart`. */
  recorded: Record<string, string>;
}

function serveSettings(values: CommandContext["values"], hint: string): ServeSettings {
  const portText = stringOption(values, "port") ?? Deno.env.get("COURIER_PORT");
  let port: number | "auto" = DEFAULT_PORT;
  if (portText !== undefined) {
    const option = stringOption(values, "port") !== undefined ? "--port" : "COURIER_PORT";
    port = portText === "auto" ? "auto" : parsePort(portText, { option, hint });
  }
  const host = stringOption(values, "host") ?? DEFAULT_HOST;
  if (!host || /[\s/]/.test(host)) throw new UsageError(`invalid --host "${host}"`, { hint });
  const daemonArgs: string[] = [];
  const debounce: Record<string, number | undefined> = {};
  for (
    const [option, key] of [
      ["debounce-window", "debounceWindowMs"],
      ["debounce-max-wait", "debounceMaxWaitMs"],
    ]
  ) {
    const text = stringOption(values, option);
    if (text === undefined) continue;
    debounce[key] = parseInteger(text, { option: `--${option}`, hint, min: 0, max: 3_600_000 });
    daemonArgs.push(`--${option}`, String(debounce[key]));
  }
  const recorded: Record<string, string> = { host, port: String(port) };
  for (const name of Object.keys(SERVE_OPTIONS)) {
    const value = stringOption(values, name);
    if (value !== undefined && !(name in recorded)) recorded[name] = value;
  }
  return { host, port, debounce, daemonArgs, recorded };
}

function startOptions(
  ctx: CommandContext,
  hint: string,
): StartOptions & { settings: ServeSettings } {
  const settings = serveSettings(ctx.values, hint);
  const timeout = stringOption(ctx.values, "timeout");
  return {
    host: settings.host,
    port: settings.port,
    daemonArgs: settings.daemonArgs,
    timeoutMs: timeout === undefined
      ? undefined
      : parseSeconds(timeout, { option: "--timeout", hint }),
    settings,
  };
}

/** `--port auto`: the port lease, whose module is loaded only then. */
async function leaseDaemonPort(layout: HomeLayout, host: string) {
  const { leaseDaemonPort } = await importLazily<typeof import("../../service/port_lease.ts")>(
    "../../service/port_lease.ts",
    import.meta.url,
  );
  return await leaseDaemonPort(layout, host);
}

async function runForeground(home: string, settings: ServeSettings, out: Output): Promise<number> {
  // Run by a service that `courier service install` wrote: it keeps the log, `stop` tells it.
  const { supervisorFromEnv } = await importLazily<
    typeof import("../../service_manager/detect.ts")
  >("../../service_manager/detect.ts", import.meta.url);
  const supervisor = supervisorFromEnv() ?? undefined;
  const { runDaemon } = await importLazily<typeof import("../../service/daemon.ts")>(
    "../../service/daemon.ts",
    import.meta.url,
  );
  return await runDaemon({
    home,
    host: settings.host,
    port: settings.port,
    foreground: true,
    supervisor,
    extensionOptions: settings.debounce,
    startOptions: settings.recorded,
    leasePort: leaseDaemonPort,
    reporter: {
      ready(state) {
        if (supervisor) return; // its log says so
        out.result(
          `Courier is running in the foreground (PID ${state.pid}) at ${state.api_url}. Press Ctrl-C to stop.`,
          {
            started: true,
            pid: state.pid,
            api_url: state.api_url,
            host: state.host,
            port: state.port,
          },
        );
      },
      failed() {},
    },
  });
}

/** What `start` prints of a daemon, in every outcome. */
function facts(state: DaemonState) {
  return {
    pid: state.pid,
    host: state.host,
    port: state.port,
    api_url: state.api_url,
    home: state.home,
    version: state.version,
  };
}

async function doStart(
  ctx: CommandContext,
  options: ReturnType<typeof startOptions>,
): Promise<number> {
  const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
    "../../home/mod.ts",
    import.meta.url,
  );
  const home = resolveHome(ctx.homeOption);
  if (ctx.values.foreground) {
    return await runForeground(home, options.settings, ctx.out);
  }
  const alreadyRunning = (state: DaemonState) => {
    // Only a port asked for (--port, COURIER_PORT) can be "not the one asked for".
    const explicit = stringOption(ctx.values, "port") ?? Deno.env.get("COURIER_PORT");
    const asked = explicit !== undefined && options.port !== "auto" && options.port !== state.port
      ? `; not on port ${options.port} as asked: restart it to move it`
      : "";
    ctx.out.result(
      `Courier is already running (PID ${state.pid}) at ${state.api_url}${asked}`,
      { started: false, already_running: true, ...facts(state) },
    );
    return 0;
  };
  const ifNotRunning = Boolean(ctx.values["if-not-running"]);
  if (ifNotRunning) {
    // The everyday case of a dotfile line, answered without loading what spawning needs.
    const running = await runningDaemon(home);
    if (running) return alreadyRunning(running);
  }
  const { startService } = await importLazily<typeof import("../../service/control.ts")>(
    "../../service/control.ts",
    import.meta.url,
  );
  const started = await startService(home, { ...options, ifNotRunning });
  const { state, elapsedMs } = started;
  if (started.alreadyRunning) return alreadyRunning(state);
  const by = state.supervisor ? ` by ${state.supervisor.manager} (${state.supervisor.name})` : "";
  const { exposureWarning } = await importLazily<typeof import("../../http/host.ts")>(
    "../../http/host.ts",
    import.meta.url,
  );
  const exposed = exposureWarning(state.host, state.port);
  if (exposed) ctx.out.warn(`warning: ${exposed}`);
  ctx.out.result(`Courier started${by} (PID ${state.pid}) at ${state.api_url}`, {
    started: true,
    ...facts(state),
    elapsed_ms: Math.round(elapsedMs),
    supervisor: state.supervisor ?? null,
    ...(exposed ? { warning: exposed } : {}),
  });
  return 0;
}

/**
 * The serve options `restart` uses: those recorded by the running (or last)
 * daemon, overridden by the ones given now.
 */
async function restartValues(ctx: CommandContext, home: string): Promise<CommandContext["values"]> {
  const { homeLayout } = await importLazily<typeof import("../../home/mod.ts")>(
    "../../home/mod.ts",
    import.meta.url,
  );
  const { readDaemonState } = await importLazily<typeof import("../../service/mod.ts")>(
    "../../service/mod.ts",
    import.meta.url,
  );
  const state = await readDaemonState(homeLayout(home));
  if (!state) return ctx.values;
  const recorded = state.start_options ??
    { host: state.host, port: state.port_leased ? "auto" : String(state.port) };
  const values: CommandContext["values"] = { ...ctx.values };
  for (const [name, value] of Object.entries(recorded)) {
    if (name in SERVE_OPTIONS && values[name] === undefined) values[name] = value;
  }
  return values;
}

/**
 * The daemon of `home` when it runs and answers `/health` (what
 * `startService` checks too, after loading more); `null` for anything else
 * (stopped, starting, stopped by a signal, not answering), which
 * `startService` then sorts out.
 */
async function runningDaemon(home: string): Promise<DaemonState | null> {
  const [{ homeLayout }, { fetchHealth, getStatus }] = await Promise.all([
    importLazily<typeof import("../../home/mod.ts")>("../../home/mod.ts", import.meta.url),
    importLazily<typeof import("../../service/status.ts")>(
      "../../service/status.ts",
      import.meta.url,
    ),
  ]);
  const status = await getStatus(homeLayout(home), { health: false });
  if (status.state !== "running" || !status.daemon) return null;
  return (await fetchHealth(status.daemon.api_url)).ok ? status.daemon : null;
}

/** `courier start`. */
export const startCommand: Command = {
  name: "start",
  summary: "start the Courier service in the background (or --foreground)",
  usage: [
    "start [--port N|auto] [--host H] [--foreground] [--timeout SECONDS] [--if-not-running]",
  ],
  options: START_OPTIONS,
  run: (ctx) => doStart(ctx, startOptions(ctx, "courier start --help")),
};

/** `courier restart`. */
export const restartCommand: Command = {
  name: "restart",
  summary: "stop the service if it runs, then start it as it was started",
  usage: ["restart [start options] [--stop-timeout SECONDS]"],
  options: {
    ...START_OPTIONS,
    "stop-timeout": {
      type: "string",
      valueName: "SECONDS",
      description: "time to stop gracefully before SIGKILL (default 10)",
    },
  },
  async run(ctx) {
    const hint = "courier restart --help";
    // --if-not-running: start only when nothing runs, exactly as start does.
    if (ctx.values["if-not-running"]) return await doStart(ctx, startOptions(ctx, hint));
    const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
      "../../home/mod.ts",
      import.meta.url,
    );
    const home = resolveHome(ctx.homeOption);
    const given = { ...ctx, values: await restartValues(ctx, home) };
    const options = startOptions(given, hint); // parsed before anything is stopped
    const stopTimeout = stringOption(ctx.values, "stop-timeout");
    const timeoutMs = stopTimeout === undefined
      ? undefined
      : parseSeconds(stopTimeout, { option: "--stop-timeout", hint });
    const { stopService } = await importLazily<typeof import("../../service/stop.ts")>(
      "../../service/stop.ts",
      import.meta.url,
    );
    const { NotRunningError } = await importLazily<typeof import("../../service/errors.ts")>(
      "../../service/errors.ts",
      import.meta.url,
    );
    try {
      const stopped = await stopService(home, { timeoutMs });
      ctx.out.text(`Stopped Courier (PID ${stopped.pid})${stopped.forced ? " with SIGKILL" : ""}`);
    } catch (error) {
      if (!(error instanceof NotRunningError)) throw error;
    }
    return await doStart(given, options);
  },
};

/** `courier daemon`: the background daemon itself (internal; spawned by `start`). */
export const daemonCommand: Command = {
  name: "daemon",
  summary: "run the daemon (internal: spawned by start)",
  usage: ["daemon --home DIR --host H --port N"],
  options: SERVE_OPTIONS,
  hidden: true,
  async run(ctx) {
    const [{ resolveHome }, { runDaemon }, { pipeReporter }] = await Promise.all([
      importLazily<typeof import("../../home/mod.ts")>("../../home/mod.ts", import.meta.url),
      importLazily<typeof import("../../service/daemon.ts")>(
        "../../service/daemon.ts",
        import.meta.url,
      ),
      importLazily<typeof import("../../service/readiness.ts")>(
        "../../service/readiness.ts",
        import.meta.url,
      ),
    ]);
    const home = resolveHome(ctx.homeOption);
    const settings = serveSettings(ctx.values, "courier start --help");
    return await runDaemon({
      home,
      host: settings.host,
      port: settings.port,
      extensionOptions: settings.debounce,
      startOptions: settings.recorded,
      leasePort: leaseDaemonPort,
      reporter: pipeReporter(),
    });
  },
};
