import { ManagerClient, runOrThrow } from "./runner.ts";
import type { EnvReader } from "./names.ts";

/** What `systemctl --user show` says about a unit. */
export interface UnitState {
  /** `loaded`, `not-found`, … */
  loadState: string;
  /** `active`, `activating`, `deactivating`, `inactive` or `failed`. */
  activeState: string;
  /** `running`, `dead`, `auto-restart`, `failed`, … */
  subState: string;
  /** `enabled`, `disabled`, … (empty when there is no unit file). */
  unitFileState: string;
  /** The main process, when one runs. */
  mainPid: number | null;
  /** How many times systemd restarted it since it was started. */
  restarts: number | null;
  /** How the last run ended: `success`, `exit-code`, `signal`, `start-limit-hit`, … */
  result: string;
  /** The last main process's exit status (or signal number). */
  exitStatus: number | null;
  /** How it ended: `exited`, `killed` or `dumped` (null before any run ended). */
  exitKind: string | null;
}

const PROPERTIES = [
  "LoadState",
  "ActiveState",
  "SubState",
  "UnitFileState",
  "MainPID",
  "NRestarts",
  "Result",
  "ExecMainStatus",
  "ExecMainCode",
];

/** Parses `KEY=value` lines (the output of `systemctl show`, `loginctl show-user`). */
export function parseProperties(text: string): Record<string, string> {
  const properties: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) properties[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return properties;
}

function count(value: string | undefined): number | null {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : null;
}

/** Reads a {@link UnitState} from `systemctl show` properties. */
export function unitStateFrom(properties: Record<string, string>): UnitState {
  const pid = count(properties.MainPID);
  const code = properties.ExecMainCode;
  return {
    loadState: properties.LoadState ?? "",
    activeState: properties.ActiveState ?? "",
    subState: properties.SubState ?? "",
    unitFileState: properties.UnitFileState ?? "",
    mainPid: pid ? pid : null,
    restarts: count(properties.NRestarts),
    result: properties.Result ?? "",
    exitStatus: count(properties.ExecMainStatus),
    exitKind: ({ "1": "exited", "2": "killed", "3": "dumped" } as Record<string, string>)[
      code ?? ""
    ] ?? null,
  };
}

const UNREACHABLE_HINT = [
  "No systemd user manager answers 'systemctl --user' in this session (a system without",
  "systemd, or a session without XDG_RUNTIME_DIR such as su/sudo). Log in as the user, or start",
  "courier from your shell's login file instead (see the README's Install).",
];

/**
 * The systemd user manager, through `systemctl --user`, `loginctl` and
 * `journalctl --user`. Commands that change something are recorded in `ran`.
 */
export class SystemdUser extends ManagerClient {
  /** Throws a `ServiceManagerError` with a hint unless a user manager answers. */
  async assertReachable(): Promise<void> {
    await runOrThrow(this.runner, ["systemctl", "--user", "show", "--property=Version"], {
      details: UNREACHABLE_HINT,
    });
  }

  /** The state of `unit` (for a unit systemd does not know: `loadState` `not-found`). */
  async state(unit: string): Promise<UnitState> {
    const run = await runOrThrow(this.runner, [
      "systemctl",
      "--user",
      "show",
      unit,
      `--property=${PROPERTIES.join(",")}`,
    ], { details: UNREACHABLE_HINT });
    return unitStateFrom(parseProperties(run.stdout));
  }

  /** Runs `systemctl --user <args>`, records it, and throws if it fails. */
  systemctl(...args: string[]): Promise<void> {
    return this.change(["systemctl", "--user", ...args]);
  }

  /** Like {@link SystemdUser.systemctl}, but a failure is only returned (for clean-ups). */
  trySystemctl(...args: string[]): Promise<boolean> {
    return this.tryChange(["systemctl", "--user", ...args]);
  }

  /**
   * Whether the user's manager outlives their sessions (lingering): asks
   * `loginctl`, else looks for `/var/lib/systemd/linger/<user>`; `null` when
   * neither can tell.
   */
  async linger(env: EnvReader = Deno.env): Promise<boolean | null> {
    const run = await this.runner.run([
      "loginctl",
      "show-user",
      String(Deno.uid()),
      "--property=Linger",
    ]);
    const answer = run.code === 0 ? parseProperties(run.stdout).Linger : undefined;
    if (answer === "yes" || answer === "no") return answer === "yes";
    const user = lingerUser(env);
    if (!user) return null;
    try {
      await Deno.stat(`/var/lib/systemd/linger/${user}`);
      return true;
    } catch {
      return null;
    }
  }

  /** The last `lines` lines `unit` wrote to the journal, or `null` when it cannot be read. */
  async journal(unit: string, lines: number): Promise<string[] | null> {
    const run = await this.runner.run(journalArgs(unit, { lines }));
    if (run.code !== 0) return null;
    const out = run.stdout.split("\n");
    if (out.at(-1) === "") out.pop();
    return out;
  }
}

/** The user name for the linger file: `$USER`, else `$LOGNAME`. */
export function lingerUser(env: EnvReader = Deno.env): string | null {
  const user = env.get("USER") ?? env.get("LOGNAME");
  return user && /^[A-Za-z0-9._-]+$/.test(user) ? user : null;
}

/**
 * The `journalctl` command line that prints what `unit` wrote, as it wrote
 * it (`-o cat`: courier's lines carry their own time, level and PID).
 */
export function journalArgs(unit: string, options: { lines: number; follow?: boolean }): string[] {
  return [
    "journalctl",
    "--user",
    "--unit",
    unit,
    "--output",
    "cat",
    "--lines",
    String(options.lines),
    "--quiet",
    "--no-pager",
    ...(options.follow ? ["--follow"] : []),
  ];
}
