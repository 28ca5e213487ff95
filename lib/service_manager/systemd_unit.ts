import { CourierError, ExitCode } from "../errors/mod.ts";
import { SUPERVISOR_ENV, supervisorEnvValue } from "./detect.ts";
import type { ServiceSpec } from "./spec.ts";

/**
 * Exit codes after which systemd does not restart courier, because another
 * start would fail the same way: already running (2), home unusable (3),
 * port in use (4), usage (64).
 */
export const NO_RESTART_EXIT_CODES: readonly number[] = [
  ExitCode.AlreadyRunning,
  ExitCode.Permission,
  ExitCode.PortInUse,
  ExitCode.Usage,
];

/** Seconds systemd waits before restarting a crashed courier. */
export const RESTART_SEC = 2;
/** systemd gives up after this many starts within {@link START_LIMIT_INTERVAL_SEC}. */
export const START_LIMIT_BURST = 5;
/** The window of {@link START_LIMIT_BURST}, in seconds. */
export const START_LIMIT_INTERVAL_SEC = 60;
/** Seconds a stop may take before SIGKILL: `courier stop`'s default timeout. */
export const STOP_TIMEOUT_SEC = 10;

const PLAIN = /^[A-Za-z0-9_@+=:,./-]+$/;

/**
 * Quotes one word of an `ExecStart=` command line for systemd: `%` is
 * doubled everywhere (specifiers are expanded in the whole line), `$` is
 * doubled in arguments (they undergo `$VAR` substitution; the executable
 * does not), and words with anything but plain characters are put in double
 * quotes with `\` and `"` escaped.
 */
export function systemdQuote(word: string, options: { executable?: boolean } = {}): string {
  let escaped = word.replaceAll("%", "%%");
  if (!options.executable) escaped = escaped.replaceAll("$", () => "$$");
  if (PLAIN.test(word)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * The `ExecStart=` value for a command line. systemd refuses an executable
 * whose path contains a quote or a backslash (any argument may), so such a
 * path is refused here, before anything is written.
 */
export function systemdCommandLine(command: string, args: readonly string[]): string {
  if (/["'\\]/.test(command)) {
    throw new CourierError(
      `systemd cannot run ${command}: its path contains a quote or a backslash`,
      {
        details: ["Install courier in a directory whose path has none, then run this again."],
      },
    );
  }
  return [systemdQuote(command, { executable: true }), ...args.map((a) => systemdQuote(a))]
    .join(" ");
}

/**
 * The systemd user unit that runs courier for `spec`: restarted on failure
 * (not after the exit codes in {@link NO_RESTART_EXIT_CODES}), started with
 * the user's manager (`WantedBy=default.target`), and marked through
 * {@link SUPERVISOR_ENV} so the daemon knows who runs it.
 */
export function systemdUnit(spec: ServiceSpec): string {
  const home = spec.home.replaceAll("%", "%%");
  return [
    `# courier's service for the home ${spec.home}.`,
    "# Written by 'courier service install', which rewrites it; 'courier service uninstall'",
    "# removes it.",
    "[Unit]",
    `Description=Courier service (home ${home})`,
    `StartLimitIntervalSec=${START_LIMIT_INTERVAL_SEC}`,
    `StartLimitBurst=${START_LIMIT_BURST}`,
    "",
    "[Service]",
    "Type=exec",
    `Environment=${SUPERVISOR_ENV}=${supervisorEnvValue(spec.supervisor)}`,
    `ExecStart=${systemdCommandLine(spec.command.command, spec.command.args)}`,
    "Restart=on-failure",
    `RestartSec=${RESTART_SEC}`,
    "# A restart cannot cure these: already running (2), home unusable (3), port in use (4),",
    "# usage (64).",
    `RestartPreventExitStatus=${NO_RESTART_EXIT_CODES.join(" ")}`,
    `TimeoutStopSec=${STOP_TIMEOUT_SEC}`,
    "",
    "[Install]",
    "WantedBy=default.target",
    "",
  ].join("\n");
}
