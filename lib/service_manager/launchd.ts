import { commandRunner, ManagerClient, runOrThrow, type ToolRunner } from "./runner.ts";

/** What `launchctl print gui/<uid>/<label>` says about a loaded job. */
export interface LaunchdJob {
  /** `running`, `waiting`, `not running`, … */
  state: string;
  /** The job's process, when one runs. */
  pid: number | null;
  /** The last exit code (`null` before the first exit). */
  lastExitCode: number | null;
  /** How many times launchd has started it. */
  runs: number | null;
}

/**
 * Reads a {@link LaunchdJob} from `launchctl print` output: the job's own
 * `key = value` lines, indented by one tab (nested sections are deeper).
 */
export function parseLaunchctlPrint(text: string): LaunchdJob {
  const top: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^\t([a-z][a-z ]*?) = (.*)$/.exec(line);
    if (match && !(match[1] in top)) top[match[1]] = match[2].trim();
  }
  const int = (value: string | undefined) =>
    value !== undefined && /^-?\d+$/.test(value) ? Number(value) : null;
  return {
    state: top.state ?? "",
    pid: int(top.pid),
    lastExitCode: int(top["last exit code"]),
    runs: int(top.runs),
  };
}

/**
 * The user's launchd domain (`gui/<uid>`), through `launchctl`. Commands
 * that change something are recorded in `ran`.
 */
export class Launchctl extends ManagerClient {
  /** The domain, `gui/<uid>`. */
  readonly domain: string;

  /**
   * @param runner Runs `launchctl` (default: the real one on `PATH`).
   * @param uid The user whose GUI domain is meant (default: this process's).
   */
  constructor(runner: ToolRunner = commandRunner(), uid: number = Deno.uid() ?? 0) {
    super(runner);
    this.domain = `gui/${uid}`;
  }

  /** The service target of `label`: `gui/<uid>/<label>`. */
  target(label: string): string {
    return `${this.domain}/${label}`;
  }

  /** The loaded job `label`, or `null` when launchd does not have it loaded. */
  async job(label: string): Promise<LaunchdJob | null> {
    const run = await this.runner.run(["launchctl", "print", this.target(label)]);
    if (run.code === 127) await runOrThrow(this.runner, run.argv); // not installed: say so
    return run.code === 0 ? parseLaunchctlPrint(run.stdout) : null;
  }

  /** Runs `launchctl <args>`, records it, and throws if it fails. */
  launchctl(...args: string[]): Promise<void> {
    return this.change(["launchctl", ...args]);
  }

  /** Like {@link Launchctl.launchctl}, but a failure is only returned (for clean-ups). */
  tryLaunchctl(...args: string[]): Promise<boolean> {
    return this.tryChange(["launchctl", ...args]);
  }
}
