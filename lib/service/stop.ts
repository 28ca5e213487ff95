/**
 * Stopping daemons: `stop`, `kill` and `stop --all`. Apart from starting
 * (`control.ts`), so that `courier stop` loads only what stopping needs.
 *
 * @module
 */
import { type HomeLayout, homeLayout } from "../home/mod.ts";
import { importLazily } from "../lazy/mod.ts";
import { openLogger } from "../log/mod.ts";
import { readProcessIdentity } from "../proc/identity.ts";
import { signalIfSame, waitForExit } from "../proc/signals.ts";
import { installedService, type Supervisor } from "../service_manager/names.ts";
import type { DaemonProcess } from "./discover.ts";
import { NotRunningError } from "./errors.ts";
import { readDaemonState, removeRunFiles } from "./state_file.ts";
import { getStatus, type ServiceStatus } from "./status.ts";

/** Tells the service manager to stop courier's service (loaded only for a supervised daemon). */
async function askToStop(
  ...args: Parameters<typeof import("../service_manager/operations.ts").askToStop>
): ReturnType<typeof import("../service_manager/operations.ts").askToStop> {
  const manager = await importLazily<typeof import("../service_manager/operations.ts")>(
    "../service_manager/operations.ts",
    import.meta.url,
  );
  return await manager.askToStop(...args);
}

/**
 * Adds a line to the daemon's log from this process (a signal the daemon
 * cannot log itself, SIGKILL above all). Never rotates the log: the daemon
 * has it open.
 */
function noteInLog(layout: HomeLayout, message: string): void {
  const log = openLogger(layout.logFile, { rotateBytes: Infinity });
  log.info(message);
  log.close();
}

/** What stopping one daemon did. */
export interface StopResult {
  /** The PID stopped. */
  pid: number;
  /** Its home. */
  home: string;
  /** `true` when SIGTERM was not enough and SIGKILL was sent. */
  forced: boolean;
}

/** Options of {@link stopService}. */
export interface StopOptions {
  /** Time between SIGTERM and SIGKILL (default 10 000 ms). */
  timeoutMs?: number;
}

async function terminate(
  target: {
    identity: DaemonProcess["identity"];
    layout: HomeLayout | null;
    supervisor?: Supervisor;
  },
  timeoutMs: number,
): Promise<{ sent: boolean; forced: boolean }> {
  // A supervised daemon is stopped through its manager first, so it is not started again.
  const told = target.supervisor && await askToStop(target.supervisor, { timeoutMs });
  const sent = await signalIfSame(target.identity, "SIGTERM");
  if (!sent && !told) return { sent: false, forced: false };
  // A process stopped by SIGSTOP (or Ctrl-Z) acts on SIGTERM only once resumed (as systemd does).
  if (sent) await signalIfSame(target.identity, "SIGCONT");
  let forced = false;
  if (!(await waitForExit(target.identity, { timeoutMs }))) {
    forced = await signalIfSame(target.identity, "SIGKILL");
    if (forced && target.layout) {
      noteInLog(
        target.layout,
        `stop: the daemon (PID ${target.identity.pid}) had not exited ${timeoutMs / 1000} s ` +
          `after SIGTERM: sent SIGKILL`,
      );
    }
    await waitForExit(target.identity, { timeoutMs: 5000 });
  }
  if (target.layout) await removeRunFiles(target.layout, target.identity.pid).catch(() => {});
  return { sent: true, forced };
}

async function liveTarget(layout: HomeLayout, status: ServiceStatus) {
  if (status.daemon) return status.daemon.identity;
  if ((status.state === "starting" || status.state === "unhealthy") && status.pid) {
    // No state file yet: it holds this home's lock (checked again here), so it is our daemon.
    const { heldLockFiles } = await importLazily<typeof import("../proc/lock_holders.ts")>(
      "../proc/lock_holders.ts",
      import.meta.url,
    );
    const held = await heldLockFiles(status.pid, "/run/courier.lock");
    if (held?.some((path) => path.startsWith(layout.lockFile))) {
      return await readProcessIdentity(status.pid);
    }
  }
  return null;
}

/**
 * Stops the daemon of `home`: SIGTERM, up to `timeoutMs` for a graceful
 * exit, then SIGKILL. The process is identified by PID *and* start time
 * before every signal; a reused PID is never signalled. The PID and state
 * files are gone afterwards.
 *
 * @throws {NotRunningError} when no daemon runs (stale files are removed).
 */
export async function stopService(home: string, options: StopOptions = {}): Promise<StopResult> {
  const layout = homeLayout(home);
  const status = await getStatus(layout, { health: false });
  const identity = await liveTarget(layout, status);
  // With a service installed, tell it too: it may be about to start courier again (after a crash).
  const supervisor = status.daemon?.supervisor ?? (await installedService(layout.root))?.supervisor;
  if (!identity) {
    if (supervisor) await askToStop(supervisor);
    if (status.state === "stale" && status.pid !== null) {
      await removeRunFiles(layout, status.pid);
      throw new NotRunningError(`removed stale files naming PID ${status.pid}`);
    }
    throw new NotRunningError();
  }
  const result = await terminate({ identity, layout, supervisor }, options.timeoutMs ?? 10_000);
  if (!result.sent) throw new NotRunningError(`PID ${identity.pid} exited meanwhile`);
  return { pid: identity.pid, home: layout.root, forced: result.forced };
}

/** What {@link killService} did. */
export interface KillResult {
  /** The PID signalled. */
  pid: number;
  /** The signal sent. */
  signal: Deno.Signal;
  /** Whether the process has exited (then its files were removed). */
  exited: boolean;
}

/**
 * Sends `signal` (default SIGKILL) to the daemon of `home` at once, after
 * checking its identity. If the process exits, its PID and state files are
 * removed.
 *
 * @throws {NotRunningError} when no daemon runs.
 */
export async function killService(
  home: string,
  options: { signal?: Deno.Signal } = {},
): Promise<KillResult> {
  const layout = homeLayout(home);
  const signal = options.signal ?? "SIGKILL";
  const status = await getStatus(layout, { health: false });
  const identity = await liveTarget(layout, status);
  if (!identity || !(await signalIfSame(identity, signal))) {
    if (status.state === "stale" && status.pid !== null) {
      await removeRunFiles(layout, status.pid);
      throw new NotRunningError(`removed stale files naming PID ${status.pid}`);
    }
    throw new NotRunningError();
  }
  noteInLog(layout, `kill: sent ${signal} to the daemon (PID ${identity.pid})`);
  const terminating = ["SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"].includes(signal);
  const exited = terminating &&
    await waitForExit(identity, { timeoutMs: signal === "SIGKILL" ? 5000 : 1000 });
  if (exited) await removeRunFiles(layout, identity.pid).catch(() => {});
  return { pid: identity.pid, signal, exited };
}

/** Options of {@link stopAllDaemons}. */
export interface StopAllOptions extends StopOptions {
  /** Only daemons whose home lies within this directory. */
  within?: string;
}

/**
 * Stops every courier daemon of the current user in any home, orphans
 * included (see {@link findDaemons} for how they are recognised), all at
 * once, each with SIGTERM then SIGKILL after `timeoutMs`.
 */
export async function stopAllDaemons(options: StopAllOptions = {}): Promise<StopResult[]> {
  const { findDaemons } = await importLazily<typeof import("./discover.ts")>(
    "./discover.ts",
    import.meta.url,
  );
  const daemons = await findDaemons({ within: options.within });
  const results = await Promise.all(daemons.map(async (daemon) => {
    const layout = daemon.homeDeleted ? null : homeLayout(daemon.home);
    const state = layout && await readDaemonState(layout);
    const supervisor = state?.pid === daemon.pid ? state.supervisor : undefined;
    const result = await terminate(
      { identity: daemon.identity, layout, supervisor },
      options.timeoutMs ?? 10_000,
    );
    return result.sent ? { pid: daemon.pid, home: daemon.home, forced: result.forced } : null;
  }));
  return results.filter((r): r is StopResult => r !== null);
}
