/**
 * The operating system's service managers as courier uses them: the
 * systemd user manager on Linux and launchd on macOS. Unit files and
 * property lists as text, names and paths, the `systemctl`/`launchctl`
 * calls (through a runner that tests can replace), and whether this
 * process runs under one of them. Knows nothing of the daemon itself.
 *
 * @module
 */
export * from "./detect.ts";
export * from "./launchd.ts";
export * from "./launchd_plist.ts";
export * from "./names.ts";
export * from "./operations.ts";
export * from "./runner.ts";
export * from "./spec.ts";
export * from "./systemd.ts";
export * from "./systemd_unit.ts";
