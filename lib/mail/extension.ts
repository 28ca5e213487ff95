import type { DaemonExtension, ExtensionContext } from "../service/extension.ts";
import { handleMailRequest } from "./http_api.ts";
import { MailService, type MailServiceOptions } from "./service.ts";

/**
 * The mail service as the daemon hosts it: the HTTP API in front of a
 * {@link MailService}. The API calls the service; the service knows nothing
 * of HTTP.
 */
export class MailExtension implements DaemonExtension {
  /** The extension's name in logs. */
  readonly name = "mail";
  /** The service behind the API. */
  readonly service: MailService;

  /**
   * Creates a `MailExtension`.
   *
   * @param options Settings overrides, clock, HTTP client.
   */
  constructor(options: MailServiceOptions = {}) {
    this.service = new MailService(options);
  }

  /** Starts the service (see {@link MailService.start}). */
  start(context: ExtensionContext): Promise<void> {
    return this.service.start(context);
  }

  /** Answers `/api/v1/inbound|outbound|messages…`; `null` for anything else. */
  handle(request: Request, url: URL): Promise<Response | null> {
    return handleMailRequest(this.service, request, url);
  }

  /** `/health` additions: the mailbox path and the metrics. */
  health(): Record<string, unknown> {
    return this.service.health();
  }

  /** From now on new inbound and outbound requests get 503. */
  draining(): void {
    this.service.draining();
  }

  /** Flushes and stops the service. */
  stop(): Promise<void> {
    return this.service.stop();
  }
}

/**
 * Creates the mail service as a daemon extension, ready to be returned from
 * `defaultExtensions()` or started on its own with a context.
 *
 * @example
 * ```ts
 * const mail = createMailExtension({ settings: { debounceWindowMs: 100 } });
 * await mail.start({ layout: homeLayout("/tmp/h"), log: nullLogger(), options: {} });
 * ```
 */
export function createMailExtension(options: MailServiceOptions = {}): MailExtension {
  return new MailExtension(options);
}
