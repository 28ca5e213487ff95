import { CourierError, ExitCode } from "../errors/mod.ts";

/** The service managers courier can hand itself to. */
export type ManagerKind = "systemd" | "launchd";

/**
 * A service manager and the name of courier's job in it: a systemd user
 * unit (`courier.service`) or a launchd agent's label (`dev.courier.courier`).
 */
export interface Supervisor {
  /** `systemd` (the user manager, `systemctl --user`) or `launchd` (`gui/<uid>`). */
  manager: ManagerKind;
  /** The unit name or the label. */
  name: string;
}

/** Where courier's service for one home lives. */
export interface ServiceLocation {
  /** The manager and the unit name or label. */
  supervisor: Supervisor;
  /** The unit file or property list. */
  file: string;
}

/** The label prefix of courier's launchd agents. */
export const LAUNCHD_LABEL_PREFIX = "dev.courier.";

/** Reads environment variables (`Deno.env` by default; tests pass their own). */
export interface EnvReader {
  /** The value of `name`, or `undefined`. */
  get(name: string): string | undefined;
}

/** The service manager of the platform courier runs on, or `null` where there is none. */
export function platformManager(os: string = Deno.build.os): ManagerKind | null {
  if (os === "linux") return "systemd";
  if (os === "darwin") return "launchd";
  return null;
}

/** The manager to use: `explicit`, else the platform's; throws where there is none. */
export function requireManager(explicit?: ManagerKind): ManagerKind {
  const manager = explicit ?? platformManager();
  if (manager) return manager;
  throw new CourierError(
    `courier service is available on Linux (systemd) and macOS (launchd), not on ${Deno.build.os}`,
    {
      exitCode: ExitCode.Failure,
      details: ["Start courier from your shell's login file instead: see the README's Install."],
    },
  );
}

function userHome(env: EnvReader): string {
  const home = env.get("HOME");
  if (home?.startsWith("/")) return home.replace(/\/+$/, "") || "/";
  throw new CourierError(
    "HOME is not set to an absolute path: cannot find the user's service files",
  );
}

/**
 * The name courier's service has for `courierHome` (absolute): `courier` for
 * the default home `~/.courier`, and `courier-<8 hex digits of the SHA-256 of
 * the home's path>` for any other, so several homes get services of their own.
 */
export async function serviceBaseName(
  courierHome: string,
  options: { env?: EnvReader } = {},
): Promise<string> {
  const home = courierHome.replace(/\/+$/, "");
  if (home === `${userHome(options.env ?? Deno.env)}/.courier`) return "courier";
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(home));
  const hex = Array.from(
    new Uint8Array(digest).subarray(0, 4),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  return `courier-${hex}`;
}

/**
 * The systemd user unit directory: `$XDG_CONFIG_HOME/systemd/user`, else
 * `~/.config/systemd/user` (a relative `XDG_CONFIG_HOME` is ignored, as the
 * XDG specification says).
 */
export function systemdUserUnitDir(env: EnvReader = Deno.env): string {
  const config = env.get("XDG_CONFIG_HOME");
  const base = config?.startsWith("/") ? config.replace(/\/+$/, "") : `${userHome(env)}/.config`;
  return `${base}/systemd/user`;
}

/** The launchd agent directory, `~/Library/LaunchAgents`. */
export function launchAgentsDir(env: EnvReader = Deno.env): string {
  return `${userHome(env)}/Library/LaunchAgents`;
}

/**
 * Where courier's service for `courierHome` lives under `manager`: the unit
 * `~/.config/systemd/user/courier.service` or the agent
 * `~/Library/LaunchAgents/dev.courier.courier.plist` for the default home.
 */
export async function locateService(
  courierHome: string,
  options: { manager: ManagerKind; env?: EnvReader },
): Promise<ServiceLocation> {
  const env = options.env ?? Deno.env;
  const base = await serviceBaseName(courierHome, { env });
  if (options.manager === "systemd") {
    const name = `${base}.service`;
    return { supervisor: { manager: "systemd", name }, file: `${systemdUserUnitDir(env)}/${name}` };
  }
  const name = `${LAUNCHD_LABEL_PREFIX}${base}`;
  return {
    supervisor: { manager: "launchd", name },
    file: `${launchAgentsDir(env)}/${name}.plist`,
  };
}

/**
 * courier's service for `courierHome` on this platform when its file exists,
 * else `null` (also where the platform has no service manager, or `HOME` is
 * unset).
 */
export async function installedService(
  courierHome: string,
  options: { manager?: ManagerKind; env?: EnvReader } = {},
): Promise<ServiceLocation | null> {
  const manager = options.manager ?? platformManager();
  if (!manager) return null;
  let location: ServiceLocation;
  try {
    location = await locateService(courierHome, { manager, env: options.env });
  } catch {
    return null;
  }
  try {
    return (await Deno.stat(location.file)).isFile ? location : null;
  } catch {
    return null;
  }
}

/** `systemd (courier.service)` or `launchd (dev.courier.courier)`. */
export function describeSupervisor(supervisor: Supervisor): string {
  return `${supervisor.manager} (${supervisor.name})`;
}
