import { SUPERVISOR_ENV, supervisorEnvValue } from "./detect.ts";
import type { ServiceSpec } from "./spec.ts";
import { STOP_TIMEOUT_SEC } from "./systemd_unit.ts";

/** Seconds launchd waits between two starts of a job that keeps exiting. */
export const THROTTLE_INTERVAL_SEC = 10;

/** Escapes text for an XML element. */
export function xmlEscape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&apos;");
}

const string = (value: string) => `<string>${xmlEscape(value)}</string>`;

/**
 * The launchd agent that runs courier for `spec`: started when loaded (at
 * login, and by `launchctl bootstrap`), started again when it exits with a
 * failure or is killed (`KeepAlive` with `SuccessfulExit` false, and
 * `Crashed`) but not after a clean stop, its output appended to the home's
 * log file, and marked through {@link SUPERVISOR_ENV}.
 */
export function launchdPlist(spec: ServiceSpec): string {
  const args = [spec.command.command, ...spec.command.args];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" ' +
    '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    "<!-- courier's service, written by 'courier service install', which rewrites it;",
    "     'courier service uninstall' removes it. -->",
    '<plist version="1.0">',
    "<dict>",
    "\t<key>Label</key>",
    `\t${string(spec.supervisor.name)}`,
    "\t<key>ProgramArguments</key>",
    "\t<array>",
    ...args.map((arg) => `\t\t${string(arg)}`),
    "\t</array>",
    "\t<key>EnvironmentVariables</key>",
    "\t<dict>",
    `\t\t<key>${SUPERVISOR_ENV}</key>`,
    `\t\t${string(supervisorEnvValue(spec.supervisor))}`,
    "\t</dict>",
    "\t<key>WorkingDirectory</key>",
    "\t<string>/</string>",
    "\t<key>RunAtLoad</key>",
    "\t<true/>",
    "\t<key>KeepAlive</key>",
    "\t<dict>",
    "\t\t<key>SuccessfulExit</key>",
    "\t\t<false/>",
    "\t\t<key>Crashed</key>",
    "\t\t<true/>",
    "\t</dict>",
    "\t<key>ThrottleInterval</key>",
    `\t<integer>${THROTTLE_INTERVAL_SEC}</integer>`,
    "\t<key>ExitTimeOut</key>",
    `\t<integer>${STOP_TIMEOUT_SEC}</integer>`,
    "\t<key>StandardOutPath</key>",
    `\t${string(spec.logFile)}`,
    "\t<key>StandardErrorPath</key>",
    `\t${string(spec.logFile)}`,
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
}
