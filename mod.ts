/**
 * courier as a library: run and manage the Courier daemon, take work from
 * its mail service, lease ports across processes, and probe who holds a port. Every request to a daemon
 * carries its home's API token (`readTokenFile(homeLayout(home).tokenFile)`);
 * `MailClient.connect` reads it itself.
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
 * import { installService } from "./mod.ts";
 * // A systemd user unit (Linux) or launchd agent (macOS) runs courier from now on.
 * const { name, state } = await installService({ home: "/home/me/.courier", port: 8644 });
 * ```
 *
 * @example
 * ```ts
 * import { homeLayout, MailClient, MailWorker } from "./mod.ts";
 * // An agent: a command per mail, its stdout sent back as the reply.
 * const client = await MailClient.connect(homeLayout("/home/me/.courier"));
 * const worker = new MailWorker(client, { agentId: "triage", command: ["./triage.sh"], reply: true });
 * Deno.addSignalListener("SIGTERM", () => worker.stop());
 * await worker.run();
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
  CommandNotRunnableError,
  MailWorker,
  type WorkerEvent,
  type WorkerOptions,
  type WorkerSummary,
} from "./lib/agent/mod.ts";
export {
  type AgentFailure,
  type ClaimedMail,
  type ClaimNextRequest,
  createMailExtension,
  DaemonNotRunningError,
  type EventListener,
  type EventsOptions,
  type EventsSince,
  handleMailRequest,
  type IndexProgress,
  MailClient,
  type MailCounters,
  type MailDelivery,
  type MailDocument,
  type MailEvent,
  MailEvents,
  type MailEventType,
  MailExtension,
  type MailFailure,
  type MailFrontMatter,
  type MailListPage,
  type MailLocation,
  type MailMessage,
  MailRequestError,
  type MailRequeue,
  type MailServiceOptions,
  type MailStartStats,
  type MailStreamEvent,
  type MailView,
  type OutboundRoute,
  type OutboundSender,
  type PrunableStatus,
  type PruneOptions,
  type PruneResult,
  type ResetEvent,
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
  type SignalOutcome,
} from "./lib/ports/mod.ts";
export {
  type InstallOptions,
  type InstallResult,
  installService,
  type ServiceReport,
  serviceStatus,
  type ServiceStatusOptions,
  type UninstallOptions,
  type UninstallResult,
  uninstallService,
} from "./lib/supervise/mod.ts";
export { homeLayout, resolveHome } from "./lib/home/mod.ts";
export {
  readTokenFile,
  type RequestContext,
  rotateTokenFile,
  TokenFileError,
  type TokenProblem,
} from "./lib/http/mod.ts";
export { VERSION } from "./lib/version/mod.ts";
// Types (and the error base class) that the API above names in its signatures.
export {
  type ClaimEntry,
  type InboundInput,
  type JournalOptions,
  type MailboxLayout,
  type MailListFilter,
  type MailMetrics,
  type MailSender,
  MailService,
  type MailSession,
  type MailSettings,
  type MailStatus,
  type MailSummary,
  type OutboundInput,
  type OutboundTarget,
  type ReceiveResult,
  type SessionType,
} from "./lib/mail/mod.ts";
export { CourierError, ExitCode, type ExitCodeValue } from "./lib/errors/mod.ts";
export {
  type ConnectionStatus,
  type DaemonExtension,
  type DaemonState,
  type ExtensionContext,
  type FindDaemonsOptions,
  type KillResult,
  type ReadinessReporter,
  type ServiceStateName,
  type StartResult,
  type StatusOptions,
  type StopAllOptions,
  type StopOptions,
  type StopResult,
} from "./lib/service/mod.ts";
export { type HomeLayout } from "./lib/home/mod.ts";
export { type Logger } from "./lib/log/mod.ts";
export { type RunMode } from "./lib/proc/mod.ts";
export { type SocketEntry } from "./lib/net/mod.ts";
export {
  type EnvReader,
  type ManagerKind,
  type Supervisor,
  type ToolRun,
  type ToolRunner,
} from "./lib/service_manager/mod.ts";
