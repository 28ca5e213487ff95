import type { OutboundTarget } from "./config.ts";
import { isoNow, type MailContext, readMail, storageWrite } from "./context.ts";
import { MailNotFoundError, MailValidationError } from "./errors.ts";
import { buildOutboundMail, type MailDocument } from "./mail_file.ts";
import type { OutboundInput } from "./validate.ts";
import { backoffDelay } from "./retry.ts";
import { TimerQueue } from "./timers.ts";

/**
 * Delivers the outbound mail of a provider: a webhook POST is one kind, a
 * chat platform's send API another. A failure is thrown: anything with
 * `retryable: false` is final (the mail is dead at once), anything else is
 * retried with backoff (`retryAfterMs`, when the receiver asked for a
 * pause, is honoured, beyond the backoff cap up to {@link MAX_RETRY_AFTER_MS}).
 */
export interface OutboundSender {
  /** What it delivers through, for logs (`webhook`, `slack`…); never a secret. */
  readonly kind: string;
  /**
   * Checks a new outbound mail before it is queued (e.g. that the mail it
   * answers can be answered through this sender); throws a `MailError`
   * (400) to refuse it.
   */
  check?(input: OutboundInput): Promise<void>;
  /** Delivers `mail` (its front matter and body); throws on failure. */
  send(mail: MailDocument, signal: AbortSignal): Promise<void>;
}

/** Finds the sender of a provider's outbound mail; `null` when none is configured. */
export type OutboundRoute = (provider: string) => OutboundSender | null;

/** A failed delivery, as a sender reports it. */
export class DeliveryError extends Error {
  /** Whether a later attempt may succeed. */
  readonly retryable: boolean;
  /** The receiver asked to wait this long before the next attempt. */
  readonly retryAfterMs?: number;

  /**
   * Creates a `DeliveryError`.
   *
   * @param message What failed (never a secret).
   * @param options Whether to retry, and after how long the receiver asked.
   */
  constructor(message: string, options: { retryable: boolean; retryAfterMs?: number }) {
    super(message);
    this.name = "DeliveryError";
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Retry of a state write the disk refused. */
const STATE_RETRY_MS = 5000;

/**
 * The longest pause a receiver may ask for (`Retry-After`, a platform's
 * `retry_after`) that is honoured as asked: longer ones are cut to this,
 * so a bad header cannot park a mail for days. Beyond the backoff cap on
 * purpose: sending earlier than a platform allows only fails again.
 */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * Delivers outbound mail through each provider's {@link OutboundSender}:
 * archives a mail once delivered; otherwise records the failure and retries
 * with exponential backoff (minutes by default, so a receiver that restarts
 * gets its mail), and dead-letters it after the maximum of attempts or a
 * final failure. Delivery is at-least-once: a mail whose delivery could not
 * be recorded, or that was cut off by a stop, is sent again.
 */
export class OutboundDispatcher {
  readonly #ctx: MailContext;
  readonly #route: OutboundRoute;
  readonly #concurrency: number;
  readonly #timers: TimerQueue<string>;
  readonly #ready = new Set<string>();
  readonly #inflight = new Map<string, Promise<void>>();
  readonly #stopping = new AbortController();

  /**
   * Creates an `OutboundDispatcher`.
   *
   * @param ctx What the mail service's parts share.
   * @param route The sender of each provider.
   * @param options `concurrency`: deliveries at once (default 4).
   */
  constructor(ctx: MailContext, route: OutboundRoute, options: { concurrency?: number } = {}) {
    this.#ctx = ctx;
    this.#route = route;
    this.#concurrency = options.concurrency ?? 4;
    this.#timers = new TimerQueue((id) => this.#due(id), { now: ctx.now });
  }

  /** Mails being delivered or due now. */
  get busy(): number {
    return this.#ready.size + this.#inflight.size;
  }

  /**
   * Queues a new outbound mail for `provider` (written to `outbound/`
   * before this resolves) and delivers it soon.
   *
   * @throws {MailValidationError} nothing delivers this provider's mail (400).
   * @throws {MailStorageError} the disk refused (503, nothing stored).
   */
  async queue(provider: string, input: OutboundInput): Promise<Record<string, unknown>> {
    const ctx = this.#ctx;
    const sender = this.#route(provider);
    if (!sender) {
      throw new MailValidationError(
        "provider",
        `no outbound URL configured for provider "${provider}": add ` +
          `{"outbound": {"${provider}": {"url": "https://..."}}} to config.json and restart`,
      );
    }
    await sender.check?.(input);
    const doc = buildOutboundMail(provider, input, {
      replyTo: input.reply_to,
      extra: input.extra,
      now: new Date(ctx.now()),
    });
    const id = doc.frontMatter.id;
    const record = await storageWrite(
      ctx,
      `queue outbound mail ${id}`,
      () => ctx.store.create(doc, "outbound"),
    );
    ctx.index.put(record);
    this.schedule(id);
    ctx.events.emit("outbound.queued", {
      id,
      provider,
      to: input.to,
      ...(input.reply_to ? { reply_to: input.reply_to } : {}),
    });
    ctx.log.info(`mail: queued outbound ${id} via ${provider}`);
    return { queued: true, id, status: "queued", path: ctx.store.pathOf(record) };
  }

  /** Queues mail `id` for an attempt at `atMs` (default now). */
  schedule(id: string, atMs: number = this.#ctx.now()): void {
    if (this.#stopping.signal.aborted) return;
    if (atMs <= this.#ctx.now()) this.#due(id);
    else this.#timers.schedule(id, atMs);
  }

  /** Stops: no new attempts, requests in flight are aborted (the mails stay queued on disk). */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#timers.stop();
    this.#ready.clear();
    await Promise.allSettled([...this.#inflight.values()]);
  }

  #due(id: string): void {
    this.#ready.add(id);
    this.#pump();
  }

  #pump(): void {
    for (const id of this.#ready) {
      if (this.#stopping.signal.aborted || this.#inflight.size >= this.#concurrency) return;
      if (this.#inflight.has(id)) continue;
      this.#ready.delete(id);
      const attempt = this.#attempt(id).catch((error) => {
        this.#ctx.log.error(`mail: delivering ${id} failed unexpectedly: ${error}`);
      }).finally(() => {
        this.#inflight.delete(id);
        this.#pump();
      });
      this.#inflight.set(id, attempt);
    }
  }

  async #attempt(id: string): Promise<void> {
    const ctx = this.#ctx;
    const entry = ctx.index.get(id);
    if (!entry || entry.record.location !== "outbound") return;
    const retryAt = entry.record.retry_ms ?? 0;
    if (retryAt > ctx.now()) return this.schedule(id, retryAt);
    let doc: MailDocument;
    try {
      doc = await readMail(ctx, entry);
    } catch (error) {
      if (!(error instanceof MailNotFoundError)) this.schedule(id, ctx.now() + STATE_RETRY_MS);
      return;
    }
    const provider = doc.frontMatter.provider;
    const sender = this.#route(provider);
    let failure: { reason: string; retryable: boolean; retryAfterMs?: number } | null = null;
    if (!sender) {
      failure = {
        reason: `no outbound route for provider "${provider}" (config.json: ` +
          `{"outbound": {"${provider}": {"url": ...}}})`,
        retryable: true,
      };
    } else {
      const timeout = AbortSignal.timeout(ctx.settings.deliveryTimeoutMs);
      try {
        await sender.send(doc, AbortSignal.any([timeout, this.#stopping.signal]));
      } catch (error) {
        if (this.#stopping.signal.aborted) return; // not the receiver's fault: next start
        const e = error as { retryable?: unknown; retryAfterMs?: unknown; message?: string };
        failure = {
          reason: timeout.aborted
            ? `timed out after ${ctx.settings.deliveryTimeoutMs} ms`
            : String(e?.message ?? error),
          retryable: e?.retryable !== false,
          ...(typeof e?.retryAfterMs === "number" ? { retryAfterMs: e.retryAfterMs } : {}),
        };
      }
    }
    await ctx.locks.run(id, () => this.#record(id, doc, sender?.kind ?? "nothing", failure));
  }

  /** Records the outcome of an attempt in the mail (under its lock). */
  async #record(
    id: string,
    doc: MailDocument,
    kind: string,
    failure: { reason: string; retryable: boolean; retryAfterMs?: number } | null,
  ): Promise<void> {
    const ctx = this.#ctx;
    const { store, index, events, log, settings, counters, faults } = ctx;
    const entry = index.get(id);
    if (!entry || entry.record.location !== "outbound") return;
    const fm = doc.frontMatter;
    const at = isoNow(ctx);
    try {
      if (failure === null) {
        fm.delivery.delivered_at = at;
        delete fm.delivery.retry_at;
        index.put(await store.move(entry.record, doc, "archive"));
        counters.sent++;
        events.emit("outbound.sent", { id, provider: fm.provider });
        log.info(`mail: delivered ${id} via ${kind} (provider ${fm.provider})`);
      } else {
        counters.failed++;
        fm.delivery.attempts += 1;
        fm.delivery.failures.push({ at, reason: failure.reason });
        const attempts = fm.delivery.attempts;
        if (!failure.retryable || attempts >= settings.outboundMaxAttempts) {
          delete fm.delivery.retry_at;
          fm.delivery.dead_at = at;
          fm.delivery.dead_reason = failure.reason;
          index.put(await store.move(entry.record, doc, "deadletter"));
          events.emit("outbound.dead", {
            id,
            provider: fm.provider,
            attempts,
            reason: failure.reason,
          });
          log.warn(
            `mail: dead-lettered outbound ${id} after ${attempts} attempt(s): ` +
              forLog(failure.reason),
          );
        } else {
          const backoff = backoffDelay(attempts, {
            baseMs: settings.outboundBackoffBaseMs,
            capMs: settings.outboundBackoffCapMs,
          });
          const asked = Math.min(failure.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
          const delay = Math.max(backoff, asked);
          const retryAt = ctx.now() + delay;
          fm.delivery.retry_at = new Date(retryAt).toISOString();
          index.put(await store.update(entry.record, doc));
          events.emit("outbound.retrying", {
            id,
            provider: fm.provider,
            attempts,
            retry_at: fm.delivery.retry_at,
            reason: failure.reason,
          });
          log.warn(
            `mail: delivering ${id} failed (attempt ${attempts} of ` +
              `${settings.outboundMaxAttempts}: ${forLog(failure.reason)}); retry in ${delay} ms`,
          );
          this.schedule(id, retryAt);
        }
      }
      faults.clear("outbound");
    } catch (error) {
      faults.report("outbound", error);
      log.error(`mail: could not record the delivery attempt of ${id}: ${error}; retrying`);
      this.schedule(id, ctx.now() + STATE_RETRY_MS);
    }
  }
}

/** A status after which the same request may succeed later. */
function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 425 || status === 429;
}

/** `Retry-After` in ms (seconds or an HTTP date); `undefined` when absent or bad. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/**
 * The webhook {@link OutboundSender}: POSTs the mail's JSON (front matter
 * plus `body`, as `GET /api/v1/messages/<id>` returns it) with an
 * `Idempotency-Key` of the mail id. 2xx is delivered; 5xx, 408, 425 and 429
 * are retried (honouring `Retry-After`); any other answer is final.
 */
export function webhookSender(
  target: OutboundTarget,
  options: { fetch?: typeof fetch } = {},
): OutboundSender {
  const fetcher = options.fetch ?? fetch;
  return {
    kind: "webhook",
    async send(mail: MailDocument, signal: AbortSignal): Promise<void> {
      let response: Response;
      try {
        response = await fetcher(target.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "idempotency-key": mail.frontMatter.id,
            ...target.headers,
          },
          body: JSON.stringify({ ...mail.frontMatter, body: mail.body }),
          signal,
        });
      } catch (error) {
        throw new DeliveryError(`request failed: ${(error as Error).message}`, {
          retryable: true,
        });
      }
      const snippet = (await response.text().catch(() => "")).slice(0, 200).trim();
      if (response.ok) return;
      throw new DeliveryError(`HTTP ${response.status}${snippet ? `: ${snippet}` : ""}`, {
        retryable: retryableStatus(response.status),
        retryAfterMs: retryAfterMs(response.headers.get("retry-after")),
      });
    },
  };
}

/**
 * A delivery failure as the log shows it: without the receiver's answer
 * (it may echo the mail) or any URL (a webhook URL may hold a secret).
 */
function forLog(failure: string): string {
  return failure.replace(/^(HTTP \d+): [^]*$/, "$1").replace(/\bhttps?:\/\/\S+/g, "<url>");
}
