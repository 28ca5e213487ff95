import type { RequestContext } from "../http/mod.ts";
import { importLazily } from "../lazy/mod.ts";
import type { DaemonExtension, ExtensionContext } from "../service/extension.ts";
import { loadMailSettings } from "./config.ts";
import { inboundProviderName, loadProviderEntries, type ProviderEntry } from "./provider_config.ts";
import type { ChatProviders } from "./providers.ts";
import type { MailService, MailServiceOptions } from "./service.ts";

/** The paths of the mail API (`/api/v1/inbound|outbound|messages…`), as `http_api.ts` serves them. */
const MAIL_ROUTES = /^\/api\/v1\/(inbound|outbound|messages|events)(\/|$)/;

/**
 * The mail service as the daemon hosts it: the HTTP API in front of a
 * {@link MailService}. The API calls the service; the service knows nothing
 * of HTTP.
 *
 * This module is light on purpose: the daemon loads it before it signals
 * ready, to check the mail settings and the chat providers of `config.json`
 * (`prepare`); the service, its API and the platform modules (and the YAML
 * library they need) are imported in `start`, after ready, which also opens
 * the providers' long connections.
 *
 * A `POST /api/v1/inbound/<name>` for a provider in webhook mode is the
 * platform's: verified by the provider, not by the API token
 * ({@link MailExtension.verifiesRequest}). With the API token it is the
 * generic JSON webhook of that mailbox instead, so scripts can add to it.
 */
export class MailExtension implements DaemonExtension {
  /** The extension's name in logs. */
  readonly name = "mail";
  readonly #options: MailServiceOptions;
  #service: MailService | null = null;
  #entries: ProviderEntry[] | null = null;
  #webhookNames = new Set<string>();
  #providers: ChatProviders | null = null;
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
   * Checks the mail settings (`config.json`, start options) and the chat
   * providers (`config.json` `providers`, their `env:` secrets set) without
   * starting anything: a bad value refuses the daemon's start.
   *
   * @throws {MailConfigError} naming the file or option and the value.
   * @throws {ConfigError} naming the provider key at fault (never a secret).
   */
  async prepare(context: ExtensionContext): Promise<void> {
    const settings = await loadMailSettings(context.layout.configFile, {
      startOptions: context.options,
      overrides: this.#options.settings,
    });
    this.#entries = await loadProviderEntries(context.layout.configFile, {
      outboundNames: Object.keys(settings.outbound),
    });
    this.#webhookNames = new Set(
      this.#entries.filter((e) => e.mode === "webhook").map((e) => e.name),
    );
  }

  /**
   * Loads the service and its API, and starts it (see
   * {@link MailService.start}); then creates the chat providers and opens
   * their long connections.
   */
  async start(context: ExtensionContext): Promise<void> {
    if (this.#entries === null) await this.prepare(context);
    const entries = this.#entries!;
    const [{ MailService }, { handleMailRequest }, chat, webhooks] = await Promise.all([
      importLazily<typeof import("./service.ts")>("./service.ts", import.meta.url),
      importLazily<typeof import("./http_api.ts")>("./http_api.ts", import.meta.url),
      entries.length > 0
        ? importLazily<typeof import("./providers.ts")>("./providers.ts", import.meta.url)
        : null,
      entries.length > 0
        ? importLazily<typeof import("./provider_webhook.ts")>(
          "./provider_webhook.ts",
          import.meta.url,
        )
        : null,
    ]);
    const options = this.#options;
    const providers = chat &&
      new chat.ChatProviders(entries, { log: context.log, fetch: options.fetch, now: options.now });
    const service = new MailService(
      providers ? { ...options, senders: providers.route(options.senders) } : options,
    );
    providers?.attach(service);
    await service.start(context);
    this.#service = service;
    this.#providers = providers;
    this.#handle = async (request, url, context) =>
      (providers && webhooks && !context.authenticated
        ? await webhooks.handlePlatformWebhook(providers, service, request, url, context.peer)
        : null) ?? await handleMailRequest(service, request, url, context);
    providers?.connect();
  }

  /** Whether `url` is a mail API path (those requests wait for `start`). */
  owns(url: URL): boolean {
    return MAIL_ROUTES.test(url.pathname);
  }

  /**
   * Whether `request` is a platform's webhook, verified by its provider:
   * `POST /api/v1/inbound/<name>` for a provider of `config.json` in
   * webhook mode (known from `prepare`).
   */
  verifiesRequest(request: Request, url: URL): boolean {
    if (this.#webhookNames.size === 0) return false;
    const name = inboundProviderName(request, url);
    return name !== null && this.#webhookNames.has(name);
  }

  /**
   * Answers `/api/v1/inbound|outbound|messages|events…`; `null` for anything
   * else (or before start). An event stream ends once the token it was
   * opened with is rotated.
   */
  handle(request: Request, url: URL, context: RequestContext): Promise<Response | null> {
    return this.#handle?.(request, url, context) ?? Promise.resolve(null);
  }

  /**
   * `/health` additions: the mailbox path and the metrics, and each chat
   * provider's state under `providers` (nothing before start).
   */
  health(): Record<string, unknown> {
    const fields = this.#service?.health() ?? {};
    return this.#providers ? { ...fields, providers: this.#providers.report() } : fields;
  }

  /** From now on new inbound and outbound requests get 503; long connections close. */
  draining(): void {
    this.#providers?.disconnect();
    this.#service?.draining();
  }

  /** Closes the long connections (waiting briefly), then flushes and stops the service. */
  async stop(): Promise<void> {
    await this.#providers?.stop();
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
