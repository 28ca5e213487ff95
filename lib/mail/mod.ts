/**
 * The Courier mail service: folds bursts of webhook messages into mails
 * (Markdown with YAML front matter) in `<home>/mailbox/`, lets agents claim,
 * complete or fail them over HTTP, and delivers outbound mail with retries.
 * Every acknowledged message is durable: in a group-committed pending
 * journal until a mail covering it is on disk.
 *
 * @example
 * ```ts
 * import { handleMailRequest, startMailService } from "./lib/mail/mod.ts";
 * const mail = await startMailService("/tmp/courier-home", {
 *   settings: { debounceWindowMs: 200 },
 * });
 * const url = new URL("http://x/api/v1/messages?status=new");
 * const response = await handleMailRequest(mail, new Request(url), url);
 * await mail.stop();
 * ```
 *
 * @module
 */
// The types this face's signatures name, from the modules below it.
export { CourierError, ExitCode, type ExitCodeValue } from "../errors/mod.ts";
export type { HomeLayout } from "../home/mod.ts";
export type { RequestContext } from "../http/mod.ts";
export type { Logger } from "../log/mod.ts";
export type {
  ChatMessage,
  ChatSessionType,
  CheckResult,
  MessageSink,
  OutboundChatMessage,
  Provider,
  ProviderStatus,
  ProviderType,
  SendResult,
  WebhookOutcome,
} from "../providers/provider.ts";
export type { DaemonExtension, ExtensionContext } from "../service/extension.ts";
export * from "./append_log.ts";
export * from "./claim_expiry.ts";
export * from "./claiming.ts";
export * from "./claims.ts";
export * from "./client.ts";
export * from "./config.ts";
export * from "./context.ts";
export * from "./debounce.ts";
export * from "./dedup.ts";
export * from "./errors.ts";
export * from "./events.ts";
export * from "./extension.ts";
export * from "./front_matter.ts";
export * from "./http_api.ts";
export * from "./http_events.ts";
export * from "./index_cache.ts";
export * from "./index_keeper.ts";
export * from "./indexer.ts";
export * from "./intake.ts";
export * from "./journal.ts";
export * from "./listing.ts";
export * from "./mail_index.ts";
export * from "./mailbox.ts";
export * from "./mail_file.ts";
export * from "./outbound.ts";
export * from "./outcomes.ts";
export * from "./provider_config.ts";
export * from "./provider_list.ts";
export * from "./provider_sender.ts";
export * from "./provider_webhook.ts";
export * from "./providers.ts";
export * from "./retention.ts";
export * from "./retry.ts";
export * from "./service.ts";
export * from "./sorted_list.ts";
export * from "./store.ts";
export * from "./timers.ts";
export * from "./validate.ts";
