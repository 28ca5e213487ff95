/**
 * The chat providers of `config.json` inside the mail service: created
 * when the service starts, their long connections run with sinks that
 * acknowledge only journaled messages, their webhooks answered (see
 * `provider_webhook.ts`), their outbound mail sent through them (see
 * `provider_sender.ts`), and their state counted for `/health` and
 * `courier provider list`.
 *
 * @module
 */
import type { Logger } from "../log/mod.ts";
import type { ProviderContext } from "../providers/common.ts";
import type { ChatMessage, Provider, ProviderType } from "../providers/provider.ts";
import { createProvider, isLongConnection, type ProviderEntry } from "../providers/registry.ts";
import { MailUnavailableError } from "./errors.ts";
import type { OutboundRoute, OutboundSender } from "./outbound.ts";
import { providerSender } from "./provider_sender.ts";
import type { MailService } from "./service.ts";
import type { InboundInput } from "./validate.ts";

/** One provider as `/health` (`providers.<name>`) and `courier provider list` show it. */
export interface ProviderReport {
  /** The platform. */
  type: ProviderType;
  /** `webhook`, or the long connection (`socket`, `stream`, `polling`). */
  mode: string;
  /** Whether its long connection is up (`null` in webhook mode). */
  connected: boolean | null;
  /** The last error (a failed connection, store or send), never a secret. */
  last_error?: string;
  /** When it happened (ISO 8601). */
  last_error_at?: string;
  /** Messages stored since the daemon started. */
  received: number;
  /** Messages that repeated one already stored (platform retries, redeliveries). */
  duplicates: number;
  /** Messages `allow_from`/`require_mention` dropped. */
  dropped: number;
  /** Webhook requests refused (bad or stale signature, wrong token). */
  rejected: number;
  /** Outbound mails sent. */
  sent: number;
  /** Send attempts that failed. */
  failed: number;
}

interface Counters {
  received: number;
  duplicates: number;
  rejected: number;
  sent: number;
  failed: number;
  lastError?: { message: string; at: string };
  /** Refusals not logged yet, and when the last line about them was written. */
  unloggedRejections: number;
  rejectionLoggedAt: number;
}

/** How often the log tells of a provider's refused webhook requests (a flood is one line a minute). */
const REJECTION_LOG_MS = 60_000;

/** Options of {@link ChatProviders}. */
export interface ChatProvidersOptions {
  /** The daemon's log (never given a secret or a message's text). */
  log: Logger;
  /** The HTTP client of platform calls (default `fetch`). */
  fetch?: typeof fetch;
  /** The clock in ms (default `Date.now`). */
  now?: () => number;
  /** The delay before reconnect attempt `n` of a long connection (default: 1 s doubling to 60 s). */
  reconnectDelay?: (attempt: number) => number;
}

/** A chat message as the mail service's inbound input. */
export function inboundOf(message: ChatMessage): InboundInput {
  const { id, type, name, thread_key } = message.session;
  const input: InboundInput = {
    session: { id, type, ...(name ? { name } : {}), ...(thread_key ? { thread_key } : {}) },
    sender: { id: message.sender.id, name: message.sender.name || message.sender.id },
    text: message.text,
    message_id: message.message_id,
    extra: message.extra,
  };
  if (message.time !== undefined) input.time = message.time;
  return input;
}

/**
 * The configured chat providers of a mail service. {@link connect} starts
 * the long connections once the service takes messages; {@link disconnect}
 * (when shutdown begins) stops them, and {@link stop} waits for them, at
 * most a bound, before the service closes its journal.
 */
export class ChatProviders {
  readonly #providers = new Map<string, { provider: Provider; counters: Counters }>();
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #stopping = new AbortController();
  readonly #connections: Promise<void>[] = [];
  #service: MailService | null = null;

  /**
   * Creates the providers of `entries` (checked by `loadProviderEntries`);
   * {@link attach} the service next.
   *
   * @param entries The `config.json` `providers` entries.
   * @param options The log, HTTP client, clock and reconnect delay.
   * @throws {ConfigError} when an entry no longer holds.
   */
  constructor(entries: readonly ProviderEntry[], options: ChatProvidersOptions) {
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    const context: ProviderContext = {
      log: options.log,
      fetch: options.fetch,
      now: options.now,
      reconnectDelay: options.reconnectDelay,
    };
    for (const entry of entries) {
      this.#providers.set(entry.name, {
        provider: createProvider(entry, context),
        counters: {
          received: 0,
          duplicates: 0,
          rejected: 0,
          sent: 0,
          failed: 0,
          unloggedRejections: 0,
          rejectionLoggedAt: -Infinity,
        },
      });
    }
  }

  /** The provider of `name` when it takes webhooks (mode `webhook`). */
  webhook(name: string): Provider | undefined {
    const provider = this.#providers.get(name)?.provider;
    return provider?.mode === "webhook" ? provider : undefined;
  }

  /**
   * The senders of outbound mail: the provider of that name, after
   * `custom` (the service's own `senders` option) had its say.
   */
  route(custom?: OutboundRoute): OutboundRoute {
    const senders = new Map<string, OutboundSender>();
    for (const [name, { provider, counters }] of this.#providers) {
      senders.set(
        name,
        providerSender(provider, {
          lookup: (id) => this.#need().show(id),
          onResult: (error) => {
            if (error === null) counters.sent++;
            else {
              counters.failed++;
              this.#recordError(counters, error);
            }
          },
        }),
      );
    }
    return (name) => custom?.(name) ?? senders.get(name) ?? null;
  }

  /** The mail service messages are stored in and replies looked up from (before it starts). */
  attach(service: MailService): void {
    this.#service = service;
  }

  /**
   * Starts every long connection (Slack Socket Mode, DingTalk Stream mode,
   * Telegram polling), each with a sink that stores what it is handed
   * through the attached service (journaled) and resolves only then, so the
   * platform is acknowledged only for durable messages. Call it once the
   * service has started.
   */
  connect(): void {
    for (const [name, { provider, counters }] of this.#providers) {
      if (!provider.connect || !isLongConnection(provider.mode)) continue;
      this.#log.info(`mail: provider ${name}: ${provider.type} ${provider.mode}: connecting`);
      const sink = async (messages: ChatMessage[]) => {
        try {
          await this.store(name, messages);
        } catch (error) {
          this.#recordError(counters, error);
          throw error;
        }
      };
      const running = provider.connect(sink, this.#stopping.signal).catch((error) => {
        this.#log.error(
          `mail: provider ${name}: the connection ended: ${(error as Error).message}`,
        );
      });
      this.#connections.push(running);
    }
  }

  /** Stops the long connections (shutdown began): what is not acknowledged is sent again later. */
  disconnect(): void {
    this.#stopping.abort();
  }

  /**
   * Stops the long connections and waits for them to wind down, at most
   * `timeoutMs` (a platform that does not answer never holds up a stop).
   */
  async stop(timeoutMs = 3000): Promise<void> {
    this.disconnect();
    if (this.#connections.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(resolve, timeoutMs, "late")));
    const settled = Promise.allSettled(this.#connections).then(() => "done" as const);
    if (await Promise.race([settled, late]) === "late") {
      this.#log.warn(`mail: chat connections still closing after ${timeoutMs} ms; not waiting`);
    }
    clearTimeout(timer);
  }

  /**
   * Stores messages of provider `name` through the mail service, in order:
   * journaled when this resolves (a repeat of a stored message id is a
   * duplicate, stored once).
   *
   * @throws {MailUnavailableError} while stopping; `MailStorageError` when the journal failed.
   */
  async store(name: string, messages: readonly ChatMessage[]): Promise<void> {
    const service = this.#need();
    const counters = this.#providers.get(name)?.counters;
    const results = await Promise.all(messages.map((m) => service.receive(name, inboundOf(m))));
    if (!counters) return;
    for (const result of results) {
      if (result.duplicate) counters.duplicates++;
      else counters.received++;
    }
  }

  /**
   * Counts a refused webhook request of `name` and logs it: the first at
   * once, then at most one line a minute saying how many more (a flood of
   * forged requests does not flood the log).
   */
  rejected(name: string, reason: string, peer: string): void {
    const counters = this.#providers.get(name)?.counters;
    if (!counters) return;
    counters.rejected++;
    counters.unloggedRejections++;
    const now = this.#now();
    if (now - counters.rejectionLoggedAt < REJECTION_LOG_MS) return;
    const more = counters.unloggedRejections - 1;
    this.#log.warn(
      `mail: provider ${name}: refused a webhook request from ${peer}: ${reason}` +
        (more > 0 ? ` (and ${more} more since the last such line)` : ""),
    );
    counters.unloggedRejections = 0;
    counters.rejectionLoggedAt = now;
  }

  /** Each provider's type, mode, connection, last error and counters. */
  report(): Record<string, ProviderReport> {
    const report: Record<string, ProviderReport> = {};
    for (const [name, { provider, counters }] of this.#providers) {
      const status = provider.status();
      const own = counters.lastError;
      const newest = own && (!status.last_error_at || own.at >= status.last_error_at)
        ? { last_error: own.message, last_error_at: own.at }
        : status.last_error !== undefined
        ? { last_error: status.last_error, last_error_at: status.last_error_at }
        : {};
      report[name] = {
        type: provider.type,
        mode: provider.mode,
        connected: status.connected,
        ...newest,
        received: counters.received,
        duplicates: counters.duplicates,
        dropped: status.dropped ?? 0,
        rejected: counters.rejected,
        sent: counters.sent,
        failed: counters.failed,
      };
    }
    return report;
  }

  #recordError(counters: Counters, error: unknown): void {
    counters.lastError = {
      message: error instanceof Error ? error.message : String(error),
      at: new Date(this.#now()).toISOString(),
    };
  }

  #need(): MailService {
    if (!this.#service) throw new MailUnavailableError("the mail service is not started");
    return this.#service;
  }
}
