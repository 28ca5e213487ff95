import type { RequestContext } from "../http/mod.ts";
import { importLazily } from "../lazy/mod.ts";
import type { DaemonExtension, ExtensionContext } from "../service/extension.ts";
import { loadMailSettings } from "./config.ts";
import type { MailService, MailServiceOptions } from "./service.ts";

/** The paths of the mail API (`/api/v1/inbound|outbound|messages…`), as `http_api.ts` serves them. */
const MAIL_ROUTES = /^\/api\/v1\/(inbound|outbound|messages|events)(\/|$)/;

/**
 * The mail service as the daemon hosts it: the HTTP API in front of a
 * {@link MailService}. The API calls the service; the service knows nothing
 * of HTTP.
 *
 * This module is light on purpose: the daemon loads it before it signals
 * ready, to check the mail settings (`prepare`); the service and its API
 * (and the YAML library they need) are imported in `start`, after ready.
 */
export class MailExtension implements DaemonExtension {
  /** The extension's name in logs. */
  readonly name = "mail";
  readonly #options: MailServiceOptions;
  #service: MailService | null = null;
  #handle:
    | ((request: Request, url: URL, context: RequestContext) => Promise<Response | null>)
    | null = null;

  /**
   * Creates a `MailExtension`.
   *
   * @param options Settings overrides, clock, HTTP client.
   */
  constructor(options: MailServiceOptions = {}) {
    this.#options = options;
  }

  /**
   * The service behind the API.
   *
   * @throws {Error} before {@link start} has created it.
   */
  get service(): MailService {
    if (!this.#service) throw new Error("the mail service has not been started");
    return this.#service;
  }

  /**
   * Checks the mail settings (`config.json`, start options) without
   * starting anything: a bad value refuses the daemon's start.
   *
   * @throws {MailConfigError} naming the file or option and the value.
   */
  async prepare(context: ExtensionContext): Promise<void> {
    await loadMailSettings(context.layout.configFile, {
      startOptions: context.options,
      overrides: this.#options.settings,
    });
  }

  /** Loads the service and its API, and starts it (see {@link MailService.start}). */
  async start(context: ExtensionContext): Promise<void> {
    const [{ MailService }, { handleMailRequest }] = await Promise.all([
      importLazily<typeof import("./service.ts")>("./service.ts", import.meta.url),
      importLazily<typeof import("./http_api.ts")>("./http_api.ts", import.meta.url),
    ]);
    const service = new MailService(this.#options);
    await service.start(context);
    this.#service = service;
    this.#handle = (request, url, context) => handleMailRequest(service, request, url, context);
  }

  /** Whether `url` is a mail API path (those requests wait for `start`). */
  owns(url: URL): boolean {
    return MAIL_ROUTES.test(url.pathname);
  }

  /**
   * Answers `/api/v1/inbound|outbound|messages|events…`; `null` for anything
   * else (or before start). An event stream ends once the token it was
   * opened with is rotated.
   */
  handle(request: Request, url: URL, context: RequestContext): Promise<Response | null> {
    return this.#handle?.(request, url, context) ?? Promise.resolve(null);
  }

  /** `/health` additions: the mailbox path and the metrics (nothing before start). */
  health(): Record<string, unknown> {
    return this.#service?.health() ?? {};
  }

  /** From now on new inbound and outbound requests get 503. */
  draining(): void {
    this.#service?.draining();
  }

  /** Flushes and stops the service. */
  async stop(): Promise<void> {
    await this.#service?.stop();
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
