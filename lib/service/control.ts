import { CourierError, ExitCode, type ExitCodeValue } from "../errors/mod.ts";
import { ensureHome, type HomeLayout, homeLayout } from "../home/mod.ts";
import { tailLines } from "../log/mod.ts";
import { currentRunMode, type RunMode, selfCommand } from "../proc/self_command.ts";
import { installedService } from "../service_manager/names.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "./defaults.ts";
import {
  AlreadyRunningError,
  PortInUseError,
  ServiceUnhealthyError,
  StartFailedError,
} from "./errors.ts";
import { assertPortAvailable } from "./port_check.ts";
import { parseReadinessLine, type ReadinessMessage } from "./readiness.ts";
import type { DaemonState } from "./state_file.ts";
import { fetchHealth, getStatus, type ServiceStatus } from "./status.ts";
import { startSupervised } from "./supervised.ts";

/** Options of {@link startService}. */
export interface StartOptions {
  /** Host to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port (default 8644), or `auto` for a port lease. */
  port?: number | "auto";
  /** How long to wait for readiness (default 10 000 ms). */
  timeoutMs?: number;
  /** Extra daemon arguments passed through (e.g. `--debounce-window 200`). */
  daemonArgs?: string[];
  /** How to run courier itself (default: the current run mode). */
  mode?: RunMode;
  /**
   * When courier's service is installed for the home (`courier service
   * install`), start it through the service manager, with the options it
   * was installed with (default true); `false` always spawns the daemon.
   */
  service?: boolean;
  /**
   * When a daemon already runs in this home, return it (once it answers
   * `/health`) instead of throwing {@link AlreadyRunningError}; a daemon
   * that is starting is waited for. A daemon that runs but is not healthy
   * (stopped by a signal, not answering) is a {@link ServiceUnhealthyError}.
   */
  ifNotRunning?: boolean;
}

/** What {@link startService} returns. */
export interface StartResult {
  /** The daemon's state. */
  state: DaemonState;
  /** Milliseconds from spawn (or from the call, when it was already running) to readiness. */
  elapsedMs: number;
  /** `true` when it was already running (`ifNotRunning`) and nothing was started. */
  alreadyRunning: boolean;
}

const LOG_LINES_ON_FAILURE = 10;

/** Whether the status names a daemon that holds the home (alive, in whatever shape). */
function holdsHome(status: ServiceStatus): boolean {
  return status.pid !== null && status.state !== "stale" && status.state !== "stopped";
}

/**
 * Starts the daemon of `home` in the background and returns once it is
 * listening and `GET /health` answers 200 (the daemon checks that itself
 * before it reports ready).
 *
 * Before spawning it refuses when a daemon already runs (exit 2; with
 * `ifNotRunning`, see {@link StartOptions.ifNotRunning}) or the port is
 * taken (exit 4, naming the holder). The daemon is courier itself
 * (`selfCommand`), in its own session, and reports readiness, or the reason
 * it cannot start, on a pipe: no sleeping, no polling. When several starts
 * race, the daemon that takes the home's lock wins and the others see it
 * as already running.
 */
export async function startService(home: string, options: StartOptions = {}): Promise<StartResult> {
  const layout = homeLayout(home);
  await ensureHome(layout);
  const began = performance.now();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = began + timeoutMs;
  for (;;) {
    const status = await getStatus(layout, { health: false });
    if (holdsHome(status)) {
      if (!options.ifNotRunning) {
        throw new AlreadyRunningError(status.pid ?? undefined, status.port ?? undefined);
      }
      if (status.state === "running" && status.daemon) {
        // The common case (a login shell): it runs; one question settles whether it answers.
        const health = await fetchHealth(status.daemon.api_url);
        if (health.ok) {
          return {
            state: status.daemon,
            elapsedMs: performance.now() - began,
            alreadyRunning: true,
          };
        }
      }
      const running = await awaitHealthy(layout, deadline);
      if (running) {
        return { state: running, elapsedMs: performance.now() - began, alreadyRunning: true };
      }
      continue; // it went away while starting: start one
    }
    const service = options.service === false ? null : await installedService(layout.root);
    if (service) {
      const started = await startSupervised(layout, service, { timeoutMs: options.timeoutMs });
      return { state: started.state, elapsedMs: started.elapsedMs, alreadyRunning: false };
    }
    try {
      const state = await spawnDaemon(layout, options, timeoutMs);
      return { state, elapsedMs: performance.now() - began, alreadyRunning: false };
    } catch (error) {
      // Another start took the home's lock first.
      if (!(error instanceof AlreadyRunningError) || !options.ifNotRunning) throw error;
      if (performance.now() >= deadline) throw error;
    }
  }
}

/**
 * Waits until the daemon holding the home answers `/health` and returns its
 * state; `null` when it went away meanwhile.
 *
 * @throws {ServiceUnhealthyError} when it runs but is stopped by a signal,
 * does not answer, or is still not ready at `deadline`.
 */
async function awaitHealthy(layout: HomeLayout, deadline: number): Promise<DaemonState | null> {
  let delay = 5;
  for (;;) {
    const left = deadline - performance.now();
    const status = await getStatus(layout, {
      healthTimeoutMs: Math.min(2000, Math.max(200, left)),
    });
    if (status.state === "running") return status.daemon;
    if (!holdsHome(status)) return null;
    if (status.state === "unhealthy" || left <= 0) {
      throw new ServiceUnhealthyError(status.pid!, {
        reason: status.reason ?? "it did not become ready in time",
        hint: status.hint,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, Math.max(1, left))));
    delay = Math.min(delay * 2, 100);
  }
}

/** Checks the port, spawns the daemon and waits for its readiness line and `/health`. */
async function spawnDaemon(
  layout: HomeLayout,
  options: StartOptions,
  timeoutMs: number,
): Promise<DaemonState> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  if (port !== "auto") {
    try {
      await assertPortAvailable(port, { host });
    } catch (error) {
      // The holder may be this home's own daemon, started a moment ago by another start.
      const now = await getStatus(layout, { health: false });
      if (error instanceof PortInUseError && holdsHome(now)) {
        throw new AlreadyRunningError(now.pid ?? undefined, now.port ?? undefined);
      }
      throw error;
    }
  }

  const args = ["daemon", "--home", layout.root, "--host", host, "--port", String(port)];
  const command = selfCommand([...args, ...(options.daemonArgs ?? [])], {
    mode: options.mode ?? currentRunMode(),
  });
  const message = await spawnAndAwaitReadiness(layout, command, timeoutMs);
  if (message.courier === "error") {
    if (message.exit_code === ExitCode.AlreadyRunning) {
      const now = await getStatus(layout, { health: false });
      throw new AlreadyRunningError(now.pid ?? undefined, now.port ?? undefined);
    }
    const details = [...message.details];
    if (message.exit_code === ExitCode.Failure) details.push(...await logExcerpt(layout));
    throw new CourierError(message.message, {
      exitCode: message.exit_code as ExitCodeValue,
      details,
    });
  }
  // Ready means answering: the daemon has asked its own /health before it said so (asking
  // again from here would wait for the services it starts right after).
  return message.state;
}

async function logExcerpt(layout: HomeLayout): Promise<string[]> {
  const lines = await tailLines(layout.logFile, LOG_LINES_ON_FAILURE);
  return lines.length ? [`Last lines of ${layout.logFile}:`, ...lines.map((l) => `  ${l}`)] : [];
}

async function spawnAndAwaitReadiness(
  layout: HomeLayout,
  command: { command: string; args: string[] },
  timeoutMs: number,
): Promise<ReadinessMessage> {
  let child: Deno.ChildProcess;
  try {
    // `detached`: the daemon gets its own session (setsid), so closing the terminal or
    // Ctrl-C there never reaches it.
    child = new Deno.Command(command.command, {
      args: command.args,
      cwd: "/",
      detached: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new StartFailedError(`cannot run ${command.command}: ${(error as Error).message}`);
  }
  child.unref(); // the daemon outlives this process
  let stderr = "";
  const errors = child.stderr.getReader();
  const stderrRead = (async () => {
    const decoder = new TextDecoder();
    for (let chunk = await errors.read(); !chunk.done; chunk = await errors.read()) {
      stderr = (stderr + decoder.decode(chunk.value, { stream: true })).slice(-8192);
    }
  })().catch(() => {});
  // The deadline is an AbortSignal.timeout, not a setTimeout: in Deno 2 the first setTimeout
  // loads Node's timers, which `start` would pay for. Its listener goes in the end, so the
  // deadline never holds this process open.
  const deadline = AbortSignal.timeout(timeoutMs);
  let onDeadline = () => {};
  const timedOut = new Promise<"timeout">((resolve) => (onDeadline = () => resolve("timeout")));
  deadline.addEventListener("abort", onDeadline, { once: true });
  const output = child.stdout.getReader();
  const failure = async (message: string) =>
    new StartFailedError(message, [...stderrLines(stderr), ...await logExcerpt(layout)]);
  const tooLate = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    return failure(
      `Courier did not become ready within ${timeoutMs / 1000} s (PID ${child.pid} killed)`,
    );
  };
  try {
    const decoder = new TextDecoder();
    let stdout = "";
    while (true) {
      const chunk = await Promise.race([output.read(), timedOut]);
      if (chunk === "timeout") throw await tooLate();
      stdout += chunk.done ? decoder.decode() : decoder.decode(chunk.value, { stream: true });
      // Whole lines, and at the end whatever is left: a line written just before exiting counts.
      const lines = stdout.split("\n");
      for (const line of chunk.done ? lines : lines.slice(0, -1)) {
        const message = parseReadinessLine(line);
        if (message) return message;
      }
      if (chunk.done) break;
    }
    // Its stdout ended without a readiness line: the daemon has exited (or is about to).
    const status = await Promise.race([child.status, timedOut]);
    if (status === "timeout") throw await tooLate();
    await Promise.race([stderrRead, timedOut]);
    throw await failure(
      `Courier exited before it was ready (${status.signal ?? `exit code ${status.code}`})`,
    );
  } finally {
    deadline.removeEventListener("abort", onDeadline);
    await output.cancel().catch(() => {});
    await errors.cancel().catch(() => {});
  }
}

function stderrLines(stderr: string): string[] {
  const lines = stderr.trim().split("\n").filter(Boolean).slice(-10);
  return lines.length ? ["Daemon output:", ...lines.map((l) => `  ${l}`)] : [];
}
