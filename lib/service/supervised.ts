import { CourierError, ExitCode, type ExitCodeValue } from "../errors/mod.ts";
import type { HomeLayout } from "../home/mod.ts";
import { tailLines } from "../log/mod.ts";
import {
  describeSupervisor,
  type JobCondition,
  jobCondition,
  type ServiceLocation,
  startInstalled,
  type Supervisor,
  SystemdUser,
  type ToolRunner,
} from "../service_manager/mod.ts";
import type { DaemonState } from "./state_file.ts";
import { fetchHealth, getStatus } from "./status.ts";

/** Options of {@link waitForSupervisedDaemon}. */
export interface SupervisedWaitOptions {
  /** How long to wait for readiness (default 10 000 ms). */
  timeoutMs?: number;
  /** Runs `systemctl`/`launchctl` (default: the real ones). */
  runner?: ToolRunner;
  /** A PID that does not count: the daemon a restart replaces. */
  notPid?: number;
}

const CURABLE_NOT: readonly number[] = [
  ExitCode.AlreadyRunning,
  ExitCode.Permission,
  ExitCode.PortInUse,
  ExitCode.Usage,
];

/** Whether two supervisors are the same manager and job. */
export function sameSupervisor(a: Supervisor | undefined | null, b: Supervisor): boolean {
  return a?.manager === b.manager && a.name === b.name;
}

/** The last lines courier wrote under `supervisor`: the journal, or the log launchd appends to. */
export async function supervisedLogExcerpt(
  layout: HomeLayout,
  supervisor: Supervisor,
  options: { runner?: ToolRunner; lines?: number } = {},
): Promise<string[]> {
  const lines = supervisor.manager === "systemd"
    ? await new SystemdUser(options.runner).journal(supervisor.name, options.lines ?? 10)
    : await tailLines(layout.logFile, options.lines ?? 10);
  if (!lines?.length) return [];
  const where = supervisor.manager === "systemd"
    ? `journalctl --user --unit ${supervisor.name}`
    : layout.logFile;
  return [`Last lines of ${where}:`, ...lines.map((line) => `  ${line}`)];
}

async function failure(
  layout: HomeLayout,
  supervisor: Supervisor,
  condition: JobCondition,
  options: { runner?: ToolRunner; message: string },
): Promise<CourierError> {
  const code = condition.exitCode !== null && CURABLE_NOT.includes(condition.exitCode)
    ? condition.exitCode as ExitCodeValue
    : ExitCode.Failure;
  return new CourierError(`${options.message} (${condition.description})`, {
    exitCode: code,
    details: [
      ...await supervisedLogExcerpt(layout, supervisor, options),
      "See 'courier service status' and 'courier logs'.",
    ],
  });
}

/**
 * Waits until the daemon that `supervisor` runs for this home is ready: its
 * state names that supervisor and `/health` answers 200. The manager is
 * asked along the way, so a job that failed (or that the manager gave up
 * on) ends the wait at once with the daemon's exit code (2, 3, 4, 64) and
 * its last log lines. Nothing can signal readiness across the service
 * manager, so this checks, with a back-off from 20 to 250 ms.
 */
export async function waitForSupervisedDaemon(
  layout: HomeLayout,
  supervisor: Supervisor,
  options: SupervisedWaitOptions = {},
): Promise<DaemonState> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = performance.now() + timeoutMs;
  let delay = 20;
  while (true) {
    const { daemon } = await getStatus(layout, { health: false });
    if (daemon && daemon.pid !== options.notPid && sameSupervisor(daemon.supervisor, supervisor)) {
      if ((await fetchHealth(daemon.api_url)).ok) return daemon;
    }
    const condition = await jobCondition(supervisor, options);
    const who = describeSupervisor(supervisor);
    if (condition.failed) {
      throw await failure(layout, supervisor, condition, {
        runner: options.runner,
        message: `${who} could not start courier`,
      });
    }
    if (performance.now() >= deadline) {
      throw await failure(layout, supervisor, { ...condition, exitCode: null }, {
        runner: options.runner,
        message: `courier did not become ready under ${who} within ${timeoutMs / 1000} s`,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 250);
  }
}

/** What {@link startSupervised} did. */
export interface SupervisedStart {
  /** The daemon's state. */
  state: DaemonState;
  /** Milliseconds from the start command to readiness. */
  elapsedMs: number;
  /** The commands run (`systemctl --user start courier.service`, …). */
  commands: string[][];
}

/**
 * Starts courier through the service installed for this home and waits
 * until the daemon it runs is ready (see {@link waitForSupervisedDaemon}).
 */
export async function startSupervised(
  layout: HomeLayout,
  location: ServiceLocation,
  options: SupervisedWaitOptions = {},
): Promise<SupervisedStart> {
  const began = performance.now();
  const commands = await startInstalled(location, options);
  const state = await waitForSupervisedDaemon(layout, location.supervisor, options);
  return { state, elapsedMs: performance.now() - began, commands };
}
