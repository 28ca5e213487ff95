import { CourierError } from "../errors/mod.ts";
import { readTextIfExists, writeFileAtomic } from "../fs/mod.ts";
import { ensureHome, type HomeLayout, homeLayout } from "../home/mod.ts";
import { currentRunMode, type RunMode } from "../proc/mod.ts";
import {
  assertPortAvailable,
  type DaemonState,
  DEFAULT_HOST,
  DEFAULT_PORT,
  getStatus,
  sameSupervisor,
  type ServiceStatus,
  type StopResult,
  stopService,
  waitForSupervisedDaemon,
} from "../service/mod.ts";
import {
  type EnvReader,
  Launchctl,
  launchdPlist,
  locateService,
  type ManagerKind,
  requireManager,
  serviceCommand,
  type ServiceLocation,
  type ServiceSpec,
  systemdUnit,
  SystemdUser,
  type ToolRunner,
} from "../service_manager/mod.ts";

/** Options of {@link installService}. */
export interface InstallOptions {
  /** The courier home (made absolute). */
  home: string;
  /** Host to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port (default 8644), or `auto` for a port lease at every start. */
  port?: number | "auto";
  /** The service manager (default: systemd on Linux, launchd on macOS). */
  manager?: ManagerKind;
  /** How the service runs courier (default: as this process runs). */
  mode?: RunMode;
  /** Runs `systemctl`, `loginctl`, `launchctl` (default: the real ones). */
  runner?: ToolRunner;
  /** Where `HOME` and `XDG_CONFIG_HOME` come from (default: `Deno.env`). */
  env?: EnvReader;
  /** How long to wait for the daemon to be ready (default 10 000 ms). */
  timeoutMs?: number;
}

/** What {@link installService} did. */
export interface InstallResult {
  /** `systemd` or `launchd`. */
  manager: ManagerKind;
  /** The unit name or label. */
  name: string;
  /** The unit file or property list. */
  file: string;
  /** Its content. */
  content: string;
  /** Whether the file was written (it was missing or different). */
  written: boolean;
  /** Whether it did not exist before. */
  created: boolean;
  /** The commands run that changed something (`systemctl --user enable --now …`). */
  commands: string[][];
  /** A daemon that ran outside the service in this home and was stopped to hand over. */
  stopped: StopResult | null;
  /** Whether anything changed at all. */
  changed: boolean;
  /** The daemon the service runs. */
  state: DaemonState;
  /** systemd: whether the user manager outlives the user's sessions (`null`: unknown). */
  linger: boolean | null;
}

/** The file a service for these options consists of. */
export function serviceFileContent(
  location: ServiceLocation,
  options: { layout: HomeLayout; host: string; port: number | "auto"; mode: RunMode },
): string {
  const spec: ServiceSpec = {
    supervisor: location.supervisor,
    command: serviceCommand({
      home: options.layout.root,
      host: options.host,
      port: options.port,
      mode: options.mode,
    }),
    home: options.layout.root,
    logFile: options.layout.logFile,
  };
  return location.supervisor.manager === "systemd" ? systemdUnit(spec) : launchdPlist(spec);
}

function runsUnder(status: ServiceStatus, location: ServiceLocation): boolean {
  return status.daemon !== null && sameSupervisor(status.daemon.supervisor, location.supervisor);
}

/**
 * Installs courier as a user service of the OS and leaves it running: a
 * systemd user unit on Linux, a launchd agent on macOS (see
 * `systemdUnit`/`launchdPlist` for what they contain).
 *
 * The file is written only when it differs (atomically). A daemon already
 * running in the home outside the service is stopped first (one daemon per
 * home), a port held by another program is refused before anything
 * changes, and the call returns once the daemon the service runs answers
 * `/health`. Installing again with the same options changes nothing; with
 * other options the file is rewritten and the daemon restarted.
 */
export async function installService(options: InstallOptions): Promise<InstallResult> {
  const manager = requireManager(options.manager);
  const layout = homeLayout(options.home);
  const location = await locateService(layout.root, { manager, env: options.env });
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  const content = serviceFileContent(location, {
    layout,
    host,
    port,
    mode: options.mode ?? currentRunMode(),
  });
  const systemd = new SystemdUser(options.runner);
  const launchd = new Launchctl(options.runner);
  if (manager === "systemd") await systemd.assertReachable();
  await ensureHome(layout);

  let status = await getStatus(layout, { health: false });
  if (typeof port === "number" && status.port !== port) await assertPortAvailable(port, { host });
  let stopped: StopResult | null = null;
  if (status.daemon && !runsUnder(status, location)) {
    stopped = await stopService(layout.root);
    status = await getStatus(layout, { health: false });
  }

  const before = await readTextIfExists(location.file);
  const written = before !== content;
  if (written) {
    await Deno.mkdir(location.file.slice(0, location.file.lastIndexOf("/")), { recursive: true });
    await writeFileAtomic(location.file, content, { mode: 0o644 });
  }
  const running = runsUnder(status, location);
  const name = location.supervisor.name;
  let start = !running || written;
  if (manager === "systemd") {
    if (written) await systemd.systemctl("daemon-reload");
    const unit = await systemd.state(name);
    if (running && written) {
      if (unit.unitFileState !== "enabled") await systemd.systemctl("enable", name);
      await systemd.systemctl("restart", name);
    } else if (!running) {
      if (unit.activeState === "failed") await systemd.trySystemctl("reset-failed", name);
      await systemd.systemctl("enable", "--now", name);
    } else if (unit.unitFileState !== "enabled") {
      await systemd.systemctl("enable", name);
    }
  } else {
    let loaded = await launchd.job(name) !== null;
    if (loaded && written) {
      await launchd.launchctl("bootout", launchd.target(name));
      await unloaded(launchd, name);
      loaded = false;
    }
    if (!loaded) {
      await launchd.tryLaunchctl("enable", launchd.target(name));
      await launchd.launchctl("bootstrap", launchd.domain, location.file);
    } else if (!running) {
      await launchd.launchctl("kickstart", launchd.target(name));
    } else {
      start = false;
    }
  }

  let state = status.daemon;
  if (start || !state) {
    try {
      state = await waitForSupervisedDaemon(layout, location.supervisor, {
        timeoutMs: options.timeoutMs,
        runner: options.runner,
        notPid: running && written ? status.pid ?? undefined : undefined,
      });
    } catch (error) {
      if (!(error instanceof CourierError)) throw error;
      throw new CourierError(error.message, {
        exitCode: error.exitCode,
        details: [
          ...error.details,
          `The service is installed (${location.file}); fix the cause, then run ` +
          `'courier start', or remove it with 'courier service uninstall'.`,
        ],
      });
    }
  }
  const commands = manager === "systemd" ? systemd.ran : launchd.ran;
  return {
    manager,
    name,
    file: location.file,
    content,
    written,
    created: before === null,
    commands,
    stopped,
    changed: written || commands.length > 0 || stopped !== null,
    state,
    linger: manager === "systemd" ? await systemd.linger(options.env) : null,
  };
}

/** Waits (up to 5 s) until launchd no longer has `label` loaded: a bootout may lag. */
async function unloaded(launchd: Launchctl, label: string): Promise<void> {
  for (
    let delay = 20, waited = 0;
    waited < 5000;
    waited += delay, delay = Math.min(delay * 2, 500)
  ) {
    if (await launchd.job(label) === null) return;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  throw new CourierError(`launchd still has ${label} loaded 5 s after 'launchctl bootout'`, {
    details: ["Run 'courier service install' again in a moment."],
  });
}
