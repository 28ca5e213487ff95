import { removeIfExists } from "../fs/mod.ts";
import { homeLayout } from "../home/mod.ts";
import { getStatus, sameSupervisor } from "../service/mod.ts";
import {
  type EnvReader,
  Launchctl,
  locateService,
  type ManagerKind,
  requireManager,
  SystemdUser,
  type ToolRunner,
} from "../service_manager/mod.ts";

/** Options of {@link uninstallService}. */
export interface UninstallOptions {
  /** The courier home (made absolute). */
  home: string;
  /** The service manager (default: systemd on Linux, launchd on macOS). */
  manager?: ManagerKind;
  /** Runs `systemctl`, `launchctl` (default: the real ones). */
  runner?: ToolRunner;
  /** Where `HOME` and `XDG_CONFIG_HOME` come from (default: `Deno.env`). */
  env?: EnvReader;
}

/** What {@link uninstallService} did. */
export interface UninstallResult {
  /** `systemd` or `launchd`. */
  manager: ManagerKind;
  /** The unit name or label. */
  name: string;
  /** The unit file or property list. */
  file: string;
  /** Whether a service was installed (and is now removed). */
  removed: boolean;
  /** The commands run that changed something. */
  commands: string[][];
  /** The PID of the daemon the service ran and that was stopped, if one ran. */
  stopped: number | null;
}

/**
 * Removes courier's service for a home: systemd `disable --now` (which
 * stops the daemon), the unit file, `daemon-reload`; launchd `bootout`
 * (which stops it) and the property list. When nothing is installed it
 * changes nothing and says so (`removed: false`).
 */
export async function uninstallService(options: UninstallOptions): Promise<UninstallResult> {
  const manager = requireManager(options.manager);
  const layout = homeLayout(options.home);
  const location = await locateService(layout.root, { manager, env: options.env });
  const name = location.supervisor.name;
  const before = await getStatus(layout, { health: false });
  const ran = sameSupervisor(before.daemon?.supervisor, location.supervisor) ? before.pid : null;
  const exists = await Deno.stat(location.file).then(() => true, () => false);
  let removed = exists;
  let commands: string[][];
  if (manager === "systemd") {
    const systemd = new SystemdUser(options.runner);
    if (exists) {
      await systemd.assertReachable();
      await systemd.systemctl("disable", "--now", name);
      await removeIfExists(location.file);
      await systemd.systemctl("daemon-reload");
      await systemd.trySystemctl("reset-failed", name);
    }
    commands = systemd.ran;
  } else {
    const launchd = new Launchctl(options.runner);
    // An agent stays loaded until logout even when its file is gone: unload it too.
    if (await launchd.job(name)) {
      await launchd.launchctl("bootout", launchd.target(name));
      removed = true;
    }
    await removeIfExists(location.file);
    commands = launchd.ran;
  }
  return { manager, name, file: location.file, removed, commands, stopped: removed ? ran : null };
}
