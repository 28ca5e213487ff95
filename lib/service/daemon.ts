import { asFileSystemError, CourierError, HomePermissionError } from "../errors/mod.ts";
import { ensureHome, type HomeLayout, homeLayout } from "../home/mod.ts";
import { exposureWarning } from "../http/mod.ts";
import { type Logger, openLogger } from "../log/mod.ts";
import { readProcessIdentity } from "../proc/mod.ts";
import type { Supervisor } from "../service_manager/mod.ts";
import { VERSION } from "../version/mod.ts";
import { prepareApiGuard } from "./api_guard.ts";
import { defaultExtensions } from "./default_extensions.ts";
import { AlreadyRunningError, StartFailedError } from "./errors.ts";
import type { DaemonExtension } from "./extension.ts";
import { HostedServices } from "./hosted_services.ts";
import { createHandler } from "./http_app.ts";
import { listenHttp } from "./http_listen.ts";
import type { CourierHttpServer } from "./http_server.ts";
import { instanceLockHolder, tryAcquireInstanceLock } from "./instance_lock.ts";
import { assertPortAvailable } from "./port_check.ts";
import type { ReadinessReporter } from "./readiness.ts";
import { fetchHealth } from "./status.ts";
import {
  apiUrl,
  createPidFile,
  type DaemonState,
  readDaemonState,
  removeRunFiles,
  writeDaemonState,
} from "./state_file.ts";

import { DEFAULT_HOST, DEFAULT_PORT } from "./defaults.ts";

/** Options of {@link runDaemon}. */
export interface DaemonOptions {
  /** The courier home (absolute or relative). */
  home: string;
  /** Host to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port to listen on (default 8644), or `auto` for a port lease. */
  port?: number | "auto";
  /** Mirror the log to stderr (foreground mode). */
  foreground?: boolean;
  /**
   * The service manager running this daemon: recorded in the state (so
   * `stop` tells it), and the log goes to stderr only, which it keeps.
   */
  supervisor?: Supervisor;
  /** Where readiness (or the reason for failing) is reported. */
  reporter?: ReadinessReporter;
  /** Hosted services (default: {@link defaultExtensions}). */
  extensions?: DaemonExtension[];
  /** Options passed through to the hosted services. */
  extensionOptions?: Record<string, string | number | boolean | undefined>;
  /** How long a request waits for a hosted service that is still starting (default 5000 ms). */
  serviceStartWaitMs?: number;
  /** The options as `start` took them, recorded in the state file for `restart`. */
  startOptions?: Record<string, string>;
  /** Aborting it stops the daemon gracefully, as SIGTERM does (for library use). */
  signal?: AbortSignal;
  /** Takes a port lease for `port: "auto"`; returns the port and how to give it back. */
  leasePort?: (
    layout: HomeLayout,
    host: string,
  ) => Promise<{ port: number; release: () => Promise<void> }>;
}

const STOP_SIGNALS: Deno.Signal[] = ["SIGTERM", "SIGINT", "SIGHUP"];

/**
 * Runs the Courier daemon in this process until SIGTERM/SIGINT (or
 * `options.signal`), and returns its exit code.
 *
 * Order of start: take the home's instance lock (exclusive, held until
 * exit) → clear stale run files (the lock proves their writer dead) →
 * prepare the hosted services (cheap checks: a bad `config.json` refuses the
 * start here) → check the port (IPv4 and IPv6 twin) and bind it (the bind is
 * authoritative) → create the PID file with O_EXCL → write the state file
 * atomically → check that its own `/health` answers 200 → report readiness →
 * start the hosted services, in the
 * background (their modules load only now; requests for them wait, see
 * {@link HostedServices}). On SIGTERM/SIGINT it stops accepting, finishes
 * requests in flight, stops the services, removes its PID and state files,
 * releases the lock and returns 0.
 */
export async function runDaemon(options: DaemonOptions): Promise<number> {
  const startedAt = performance.now();
  const layout = homeLayout(options.home);
  const host = options.host ?? DEFAULT_HOST;
  const reporter = options.reporter ?? { ready() {}, failed() {} };

  // Listen for stop signals first, so a SIGTERM during start-up is a clean stop.
  let stopReason: string | null = null;
  let wake: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => (wake = resolve));
  const requestStop = (reason: string) => {
    stopReason ??= reason;
    wake();
  };
  const listeners: [Deno.Signal, () => void][] = [];
  for (const signal of STOP_SIGNALS) {
    if (signal === "SIGHUP" && !options.foreground) {
      // A background daemon outlives the terminal that started it.
      const ignore = () => {};
      Deno.addSignalListener(signal, ignore);
      listeners.push([signal, ignore]);
      continue;
    }
    const handler = () => requestStop(signal);
    Deno.addSignalListener(signal, handler);
    listeners.push([signal, handler]);
  }
  options.signal?.addEventListener("abort", () => requestStop("abort"), { once: true });
  const removeListeners = () => {
    for (const [signal, handler] of listeners) Deno.removeSignalListener(signal, handler);
  };

  // Refusing to start before the lock is ours: report, log if we can, undo the listeners.
  const refuse = (error: CourierError, fileLog?: Logger): number => {
    // Without a usable home there is no log file: a foreground daemon still says why, on stderr.
    const log = fileLog ??
      (options.foreground ? openLogger("/dev/null", { stderrOnly: true }) : null);
    log?.warn(`start refused: ${error.message}`);
    log?.close();
    removeListeners();
    reporter.failed(error);
    return error.exitCode;
  };
  try {
    await ensureHome(layout);
  } catch (error) {
    return refuse(
      error instanceof CourierError ? error : new HomePermissionError(layout.root, error),
    );
  }
  const log = openLogger(layout.logFile, {
    mirrorToStderr: options.foreground,
    stderrOnly: options.supervisor !== undefined,
  });
  let lock: Awaited<ReturnType<typeof tryAcquireInstanceLock>>;
  try {
    lock = await tryAcquireInstanceLock(layout);
  } catch (cause) {
    return refuse(new HomePermissionError(layout.lockFile, cause), log);
  }
  if (!lock) {
    const running = await readDaemonState(layout);
    const holder = running?.pid ?? (await instanceLockHolder(layout)) ?? undefined;
    return refuse(new AlreadyRunningError(holder, running?.port), log);
  }
  // A background daemon's stderr is a closed pipe: make sure a crash is in the log.
  const onCrash = (event: ErrorEvent | PromiseRejectionEvent) => {
    const error = "reason" in event ? event.reason : event.error;
    log.error(`crashed: ${errorText(error)}${error instanceof Error ? `\n${error.stack}` : ""}`);
  };
  globalThis.addEventListener("error", onCrash);
  globalThis.addEventListener("unhandledrejection", onCrash);

  let services: HostedServices | null = null;
  let state: DaemonState | null = null;
  let server: CourierHttpServer | null = null;
  let releasePort: (() => Promise<void>) | null = null;
  let pidFileWritten = false;
  let code = 0;
  try {
    // We hold the lock, so any PID or state file here was left by a daemon that died.
    for (const path of [layout.pidFile, layout.stateFile]) {
      await Deno.remove(path).then(
        () => log.warn(`removed stale ${path} left by a daemon that died`),
        () => {},
      );
    }

    services = new HostedServices(
      options.extensions ?? await defaultExtensions(),
      { layout, log, options: options.extensionOptions ?? {} },
      { startWaitMs: options.serviceStartWaitMs },
    );
    await services.prepare();

    let port: number;
    if (options.port === "auto") {
      if (!options.leasePort) throw new CourierError("--port auto is not available here");
      const lease = await options.leasePort(layout, host);
      port = lease.port;
      releasePort = lease.release;
    } else {
      port = options.port ?? DEFAULT_PORT;
    }
    await assertPortAvailable(port, { host, skip: [host] });
    const handler = createHandler({
      state: () => state,
      startedAt,
      extensions: [services],
      onError: (error) => log.error(`request failed: ${errorText(error)}`),
      guard: await prepareApiGuard(layout, host, log),
    });
    server = await listenHttp({ host, port, handler, layout, log });

    // Ready means answering: ask our own /health over TCP, as any client would (meanwhile the
    // run files are written).
    const selfCheck = fetchHealth(apiUrl(host, port));
    const identity = await readProcessIdentity(Deno.pid);
    if (!identity) throw new CourierError("cannot read this process's identity from the system");
    await createPidFile(layout, Deno.pid);
    pidFileWritten = true;
    state = {
      pid: Deno.pid,
      host,
      port,
      api_url: apiUrl(host, port),
      started_at: new Date().toISOString(),
      version: VERSION,
      home: layout.root,
      identity,
      exe: Deno.execPath(),
      port_leased: options.port === "auto" ? true : undefined,
      supervisor: options.supervisor,
      start_options: options.startOptions,
    };
    await writeDaemonState(layout, state);
    const health = await selfCheck;
    if (!health.ok) {
      throw new StartFailedError(`listening on ${state.api_url}, but ${health.reason}`);
    }
    log.info(`started: listening on ${state.api_url} (home ${layout.root}, version ${VERSION})`);
    const exposed = exposureWarning(host, port);
    if (exposed) log.warn(exposed);
    reporter.ready(state);
    services.start(); // after ready: requests for a service wait for its start

    await stopRequested;
    log.info(`stopping (${stopReason})`);
  } catch (cause) {
    // A full or read-only disk, or no permission, is the user's to fix: say so (exit 3).
    const error = asFileSystemError(cause, layout.root) ?? cause;
    code = error instanceof CourierError ? error.exitCode : 1;
    log.error(`start failed: ${errorText(error)}`);
    reporter.failed(error);
  }

  // Shutdown: stop accepting, let requests in flight finish, flush services.
  services?.draining();
  if (server) await server.shutdown().catch(() => {});
  await services?.stop().catch(() => (code ||= 1)); // each failure is logged

  if (releasePort) await releasePort().catch(() => {});
  if (pidFileWritten) await removeRunFiles(layout, Deno.pid).catch(() => {});
  if (state) log.info("stopped");
  lock.release();
  globalThis.removeEventListener("error", onCrash);
  globalThis.removeEventListener("unhandledrejection", onCrash);
  log.close();
  removeListeners();
  return code;
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
