/**
 * The Courier service lifecycle: the daemon itself, and starting, stopping,
 * killing and inspecting it from another process. Usable without the CLI.
 *
 * @example
 * ```ts
 * import { getStatus, startService, stopService } from "./lib/service/mod.ts";
 * import { homeLayout } from "./lib/home/mod.ts";
 * const { state } = await startService("/tmp/courier-home", { port: 18644 });
 * console.log((await getStatus(homeLayout("/tmp/courier-home"))).state); // "running"
 * await stopService("/tmp/courier-home");
 * ```
 *
 * @module
 */
// The types this face's signatures name, from the modules below it.
export { CourierError, ExitCode, type ExitCodeValue } from "../errors/mod.ts";
export type { HomeLayout } from "../home/mod.ts";
export type {
  AuthRequirement,
  AuthThrottle,
  GuardOptions,
  PeerInfo,
  RequestContext,
} from "../http/mod.ts";
export type { Logger } from "../log/mod.ts";
export type { OpenFileLimit, ProcessIdentity, RunMode } from "../proc/mod.ts";
export type {
  ManagerKind,
  ServiceLocation,
  Supervisor,
  ToolRun,
  ToolRunner,
} from "../service_manager/mod.ts";
export * from "./api_guard.ts";
export * from "./control.ts";
export * from "./stop.ts";
export * from "./daemon.ts";
export * from "./defaults.ts";
export * from "./discover.ts";
export * from "./errors.ts";
export * from "./extension.ts";
export * from "./hosted_services.ts";
export * from "./http_app.ts";
export * from "./http_listen.ts";
export * from "./http_server.ts";
export * from "./instance_lock.ts";
export * from "./port_check.ts";
export * from "./readiness.ts";
export * from "./state_file.ts";
export * from "./status.ts";
export * from "./supervised.ts";
export * from "./port_lease.ts";
