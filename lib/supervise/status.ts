import { CourierError } from "../errors/mod.ts";
import { homeLayout } from "../home/mod.ts";
import { getStatus, type ServiceStatus } from "../service/mod.ts";
import {
  type EnvReader,
  Launchctl,
  locateService,
  type ManagerKind,
  requireManager,
  SystemdUser,
  type ToolRunner,
} from "../service_manager/mod.ts";

/** Options of {@link serviceStatus}. */
export interface ServiceStatusOptions {
  /** The courier home (made absolute). */
  home: string;
  /** The service manager (default: systemd on Linux, launchd on macOS). */
  manager?: ManagerKind;
  /** Runs `systemctl`, `loginctl`, `launchctl` (default: the real ones). */
  runner?: ToolRunner;
  /** Where `HOME` and `XDG_CONFIG_HOME` come from (default: `Deno.env`). */
  env?: EnvReader;
}

/** The service as its manager sees it, beside courier's own status. */
export interface ServiceReport {
  /** `systemd` or `launchd`. */
  manager: ManagerKind;
  /** The unit name or label. */
  name: string;
  /** The unit file or property list. */
  file: string;
  /** Whether the file exists. */
  installed: boolean;
  /** systemd: enabled (started with the user's manager); launchd: loaded. */
  enabled: boolean | null;
  /** The manager's word for its state: `active (running)`, `failed (exit-code)`, `running`. */
  state: string;
  /** Whether the manager runs it now. */
  active: boolean;
  /** Its main process, when one runs. */
  pid: number | null;
  /** How many times the manager started it again since it was first started. */
  restarts: number | null;
  /** The exit code of its last run, when it ended with one. */
  last_exit_code: number | null;
  /** systemd: whether the user manager outlives the user's sessions (`null`: unknown). */
  linger: boolean | null;
  /** Why the manager could not be asked, when it could not. */
  error?: string;
  /** courier's own status (`courier status`), without the raw state. */
  courier: Omit<ServiceStatus, "daemon">;
}

/**
 * Reports courier's service for a home: whether its file is installed,
 * what the manager says (`systemctl --user show`, `launchctl print`), and
 * courier's own status beside it. Never throws because the manager cannot
 * be reached; that is reported in `error`.
 */
export async function serviceStatus(options: ServiceStatusOptions): Promise<ServiceReport> {
  const manager = requireManager(options.manager);
  const layout = homeLayout(options.home);
  const location = await locateService(layout.root, { manager, env: options.env });
  const name = location.supervisor.name;
  const { daemon: _daemon, ...courier } = await getStatus(layout);
  const report: ServiceReport = {
    manager,
    name,
    file: location.file,
    installed: await Deno.stat(location.file).then(() => true, () => false),
    enabled: null,
    state: "unknown",
    active: false,
    pid: null,
    restarts: null,
    last_exit_code: null,
    linger: null,
    courier,
  };
  try {
    if (manager === "systemd") {
      const systemd = new SystemdUser(options.runner);
      const unit = await systemd.state(name);
      report.enabled = unit.unitFileState === "enabled";
      report.state = unit.loadState === "loaded"
        ? `${unit.activeState} (${unit.subState}${
          unit.result && unit.result !== "success" ? `, ${unit.result}` : ""
        })`
        : "not loaded";
      report.active = unit.activeState === "active";
      report.pid = unit.mainPid;
      report.restarts = unit.restarts;
      report.last_exit_code = unit.exitKind === "exited" ? unit.exitStatus : null;
      report.linger = await systemd.linger(options.env);
    } else {
      const job = await new Launchctl(options.runner).job(name);
      report.enabled = job !== null;
      report.state = job ? job.state || "unknown" : "not loaded";
      report.active = job?.state === "running";
      report.pid = job?.pid ?? null;
      report.restarts = job?.runs ? job.runs - 1 : null;
      report.last_exit_code = job?.lastExitCode ?? null;
    }
  } catch (error) {
    if (!(error instanceof CourierError)) throw error;
    report.error = error.message;
  }
  return report;
}
