import { Launchctl } from "./launchd.ts";
import type { ServiceLocation, Supervisor } from "./names.ts";
import { commandRunner, type ToolRunner } from "./runner.ts";
import { SystemdUser } from "./systemd.ts";

/** Options of the operations on an installed service. */
export interface OperationOptions {
  /** Runs `systemctl`/`launchctl` (default: the real ones on `PATH`). */
  runner?: ToolRunner;
}

/**
 * Tells the service manager to stop courier's job and not to start it
 * again until asked: `systemctl --user stop --no-block <unit>` (queued; the
 * caller waits for the process itself) or `launchctl bootout
 * gui/<uid>/<label>` (unloads the agent until the next login or start).
 * Returns the command when the manager accepted it, else `null`.
 */
export async function askToStop(
  supervisor: Supervisor,
  options: OperationOptions & { timeoutMs?: number } = {},
): Promise<string[] | null> {
  const runner = options.runner ?? commandRunner();
  const argv = supervisor.manager === "systemd"
    ? ["systemctl", "--user", "stop", "--no-block", supervisor.name]
    : ["launchctl", "bootout", new Launchctl(runner).target(supervisor.name)];
  const run = await runner.run(argv, { timeoutMs: (options.timeoutMs ?? 10_000) + 5_000 });
  return run.code === 0 ? argv : null;
}

/**
 * Starts an installed service through its manager and returns the commands
 * run: systemd `reset-failed` (so a unit that gave up may start again) and
 * `start`; launchd `kickstart` when the agent is loaded, else `enable` and
 * `bootstrap`.
 */
export async function startInstalled(
  location: ServiceLocation,
  options: OperationOptions = {},
): Promise<string[][]> {
  const { supervisor } = location;
  if (supervisor.manager === "systemd") {
    const systemd = new SystemdUser(options.runner);
    await systemd.trySystemctl("reset-failed", supervisor.name);
    await systemd.systemctl("start", supervisor.name);
    return systemd.ran;
  }
  const launchd = new Launchctl(options.runner);
  if (await launchd.job(supervisor.name)) {
    await launchd.launchctl("kickstart", launchd.target(supervisor.name));
  } else {
    await launchd.tryLaunchctl("enable", launchd.target(supervisor.name));
    await launchd.launchctl("bootstrap", launchd.domain, location.file);
  }
  return launchd.ran;
}

/** How a service's job is doing, as its manager sees it. */
export interface JobCondition {
  /** The manager gave up, or does not have the job: waiting will not help. */
  failed: boolean;
  /** The exit code of its last run, when that ended with one. */
  exitCode: number | null;
  /** The main process, when one runs. */
  pid: number | null;
  /** In words: `active (running)`, `failed (exit-code, exit code 4)`, `not loaded`. */
  description: string;
}

/** Asks the manager how courier's job is doing. */
export async function jobCondition(
  supervisor: Supervisor,
  options: OperationOptions = {},
): Promise<JobCondition> {
  if (supervisor.manager === "systemd") {
    const state = await new SystemdUser(options.runner).state(supervisor.name);
    const exitCode = state.exitKind === "exited" ? state.exitStatus : null;
    const failed = state.loadState !== "loaded" ||
      state.activeState === "failed" || state.activeState === "inactive";
    const how = [
      state.result && state.result !== "success" ? state.result : "",
      exitCode ? `exit code ${exitCode}` : "",
      state.exitKind === "killed" || state.exitKind === "dumped"
        ? `signal ${state.exitStatus}`
        : "",
    ].filter(Boolean).join(", ");
    const description = state.loadState !== "loaded"
      ? `not loaded (${state.loadState || "unknown"})`
      : `${state.activeState} (${state.subState}${how ? `, ${how}` : ""})`;
    return { failed, exitCode, pid: state.mainPid, description };
  }
  const job = await new Launchctl(options.runner).job(supervisor.name);
  if (!job) return { failed: true, exitCode: null, pid: null, description: "not loaded" };
  const exitCode = job.lastExitCode;
  return {
    failed: job.state !== "running" && exitCode !== null && exitCode !== 0,
    exitCode,
    pid: job.pid,
    description: `${job.state || "unknown"}${
      exitCode !== null ? `, last exit code ${exitCode}` : ""
    }`,
  };
}
