/**
 * courier as a library: run and manage the Courier daemon, lease ports
 * across processes, and probe who holds a port.
 *
 * @example
 * ```ts
 * import { getStatus, homeLayout, startService, stopService } from "./mod.ts";
 * await startService("/tmp/courier-home", { port: 18644 });
 * console.log((await getStatus(homeLayout("/tmp/courier-home"))).state); // "running"
 * await stopService("/tmp/courier-home");
 * ```
 *
 * @example
 * ```ts
 * import { allocatePort, releasePort } from "./mod.ts";
 * const port = await allocatePort({ preferred: 8080, range: { start: 20000, end: 20999 } });
 * // …serve on `port`: no other process gets it while this one lives…
 * await releasePort(port);
 * ```
 *
 * @example
 * ```ts
 * import { findPortHolder, isPortFree } from "./mod.ts";
 * if (!(await isPortFree(8644))) console.log(await findPortHolder(8644));
 * ```
 *
 * @module
 */
export {
  findPortHolder,
  isPortFree,
  type PortFreeOptions,
  type PortHolder,
} from "./lib/net/mod.ts";
export {
  createMailExtension,
  MailClient,
  type MailServiceOptions,
  startMailService,
} from "./lib/mail/mod.ts";
export {
  type DaemonOptions,
  type DaemonProcess,
  findDaemons,
  getStatus,
  killService,
  runDaemon,
  type ServiceStatus,
  type StartOptions,
  startService,
  stopAllDaemons,
  stopService,
} from "./lib/service/mod.ts";
export {
  type AllocateOptions,
  allocatePort,
  type AllocatePortOptions,
  DEFAULT_PORT_RANGE,
  type ExecResult,
  execWithPort,
  type ExecWithPortOptions,
  type Lease,
  type LeaseInfo,
  NoFreePortError,
  PortAllocator,
  type PortAllocatorOptions,
  type PortRange,
  type PortRangeUsage,
  PortRegistryLockTimeoutError,
  type ProcessIdentity,
  type RegistryPaths,
  type ReleaseOptions,
  releasePort,
  type ReleasePortOptions,
} from "./lib/ports/mod.ts";
export { homeLayout, resolveHome } from "./lib/home/mod.ts";
export { VERSION } from "./lib/version/mod.ts";
