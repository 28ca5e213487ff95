/**
 * courier run by the operating system: `courier service install`,
 * `uninstall` and `status` (a systemd user unit on Linux, a launchd agent
 * on macOS), and where a supervised daemon's log is. The unit files, the
 * managers' tools and the detection of a supervisor are in
 * `lib/service_manager`.
 *
 * @example
 * ```ts
 * import { installService, uninstallService } from "./lib/supervise/mod.ts";
 * const result = await installService({ home: "/home/me/.courier", port: 8644 });
 * console.log(result.name, result.state.pid); // "courier.service" 12345
 * await uninstallService({ home: "/home/me/.courier" });
 * ```
 *
 * @module
 */
export * from "./install.ts";
export * from "./logs.ts";
export * from "./status.ts";
export * from "./uninstall.ts";
