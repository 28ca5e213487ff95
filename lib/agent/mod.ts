/**
 * Agents at work: a worker loop that takes mail from the daemon's mail
 * service and runs a command for each ({@link MailWorker}), usable without
 * the CLI (`courier mail work` is a thin shell around it).
 *
 * @example
 * ```ts
 * import { MailWorker } from "./lib/agent/mod.ts";
 * import { MailClient } from "./lib/mail/client.ts";
 * import { homeLayout, resolveHome } from "./lib/home/mod.ts";
 *
 * const client = await MailClient.connect(homeLayout(resolveHome()));
 * const worker = new MailWorker(client, { agentId: "triage", command: ["./triage.sh"] });
 * Deno.addSignalListener("SIGINT", () => worker.stop());
 * await worker.run();
 * ```
 *
 * @module
 */
export { CourierError, ExitCode, type ExitCodeValue } from "../errors/mod.ts";
export * from "./mail_command.ts";
export * from "./outcome.ts";
export * from "./worker.ts";
export * from "./worker_events.ts";
