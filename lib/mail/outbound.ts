import type { Logger } from "../log/mod.ts";
import type { MailSettings } from "./config.ts";
import { type MailDocument, mailJson } from "./mail_file.ts";
import { backoffDelay, MAX_ATTEMPTS } from "./retry.ts";
import type { MailStore } from "./store.ts";

/** What an outbound delivery attempt ended in. */
export type DeliveryOutcome = "sent" | "retry" | "dead" | "skipped";

/** What the dispatcher needs from the service. */
export interface OutboundDependencies {
  /** The mail files. */
  store: MailStore;
  /** Targets, backoff and timeouts. */
  settings: MailSettings;
  /** The daemon's log. */
  log: Logger;
  /** The clock (ms). */
  now: () => number;
  /** Runs `fn` while holding the mail's mutex (shared with the API). */
  withMail: <T>(id: string, fn: () => Promise<T>) => Promise<T>;
  /** Told the outcome of each attempt (for metrics). */
  onOutcome: (outcome: DeliveryOutcome) => void;
  /** The HTTP client (default `fetch`). */
  fetch?: typeof fetch;
  /** Deliveries at once (default 4). */
  concurrency?: number;
}

/**
 * Delivers outbound mail: POSTs each mail's JSON (front matter plus `body`)
 * to its provider's configured URL with an `Idempotency-Key` of the mail id,
 * archives it on 2xx, otherwise retries with exponential backoff and
 * dead-letters it after {@link MAX_ATTEMPTS} failures. Delivery is
 * at-least-once: a daemon killed mid-request sends the mail again on restart.
 */
export class OutboundDispatcher {
  readonly #deps: OutboundDependencies;
  readonly #fetch: typeof fetch;
  readonly #concurrency: number;
  readonly #due = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<void>>();
  readonly #stopping = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Number.POSITIVE_INFINITY;

  /**
   * Creates a `OutboundDispatcher`.
   *
   * @param deps The store, settings, clock and hooks.
   */
  constructor(deps: OutboundDependencies) {
    this.#deps = deps;
    this.#fetch = deps.fetch ?? fetch;
    this.#concurrency = deps.concurrency ?? 4;
  }

  /** Mails waiting to be sent (due now or later). */
  get queued(): number {
    return this.#due.size + this.#inflight.size;
  }

  /** Queues mail `id` for an attempt at `atMs` (default now). */
  schedule(id: string, atMs: number = this.#deps.now()): void {
    if (this.#stopping.signal.aborted) return;
    this.#due.set(id, atMs);
    this.#pump();
  }

  /** Stops: no new attempts, in-flight requests are aborted (the mails stay queued on disk). */
  async stop(): Promise<void> {
    this.#stopping.abort();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled([...this.#inflight.values()]);
  }

  #pump(): void {
    if (this.#stopping.signal.aborted) return;
    const now = this.#deps.now();
    const ready = [...this.#due].filter(([id, at]) => at <= now && !this.#inflight.has(id))
      .sort((a, b) => a[1] - b[1]);
    for (const [id] of ready) {
      if (this.#inflight.size >= this.#concurrency) break;
      this.#due.delete(id);
      const attempt = this.#attempt(id).catch((error) => {
        this.#deps.log.error(`mail: delivering ${id} failed unexpectedly: ${error}`);
      }).finally(() => {
        this.#inflight.delete(id);
        this.#pump();
      });
      this.#inflight.set(id, attempt);
    }
    let next = Number.POSITIVE_INFINITY;
    for (const [id, at] of this.#due) if (!this.#inflight.has(id)) next = Math.min(next, at);
    if (this.#inflight.size >= this.#concurrency) return; // a finishing attempt pumps again
    if (next === Number.POSITIVE_INFINITY || next >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = next;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      this.#pump();
    }, Math.max(0, next - now));
  }

  async #attempt(id: string): Promise<void> {
    const { store, settings, log, now } = this.#deps;
    const record = store.get(id);
    if (!record || record.location !== "outbound") return;
    let doc: MailDocument;
    try {
      doc = await store.read(id);
    } catch (error) {
      log.error(`mail: cannot read outbound mail ${id}: ${error}`);
      return;
    }
    const target = settings.outbound[doc.frontMatter.provider];
    let failure: string | null = null;
    if (!target) {
      failure = `no outbound URL configured for provider "${doc.frontMatter.provider}" ` +
        `(config.json: {"outbound": {"${doc.frontMatter.provider}": {"url": ...}}})`;
    } else {
      const timeout = AbortSignal.timeout(settings.deliveryTimeoutMs);
      try {
        const response = await this.#fetch(target.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "idempotency-key": id,
            ...target.headers,
          },
          body: JSON.stringify(mailJson(doc)),
          signal: AbortSignal.any([timeout, this.#stopping.signal]),
        });
        const snippet = (await response.text().catch(() => "")).slice(0, 200).trim();
        if (!response.ok) failure = `HTTP ${response.status}${snippet ? `: ${snippet}` : ""}`;
      } catch (error) {
        if (this.#stopping.signal.aborted) {
          this.#deps.onOutcome("skipped");
          return; // not the receiver's fault: try again on the next start
        }
        failure = timeout.aborted
          ? `timed out after ${settings.deliveryTimeoutMs} ms`
          : `request failed: ${(error as Error).message}`;
      }
    }
    const at = new Date(now()).toISOString();
    await this.#deps.withMail(id, async () => {
      const fm = doc.frontMatter;
      if (failure === null) {
        fm.delivery.delivered_at = at;
        delete fm.delivery.retry_at;
        await store.move(doc, "archive");
        log.info(`mail: delivered ${id} to ${new URL(target!.url).origin}`);
        this.#deps.onOutcome("sent");
        return;
      }
      fm.delivery.attempts += 1;
      fm.delivery.failures.push({ at, reason: failure });
      if (fm.delivery.attempts >= MAX_ATTEMPTS) {
        delete fm.delivery.retry_at;
        fm.delivery.dead_at = at;
        fm.delivery.dead_reason = failure;
        await store.move(doc, "deadletter");
        log.warn(
          `mail: dead-lettered outbound ${id} after ${fm.delivery.attempts}: ${forLog(failure)}`,
        );
        this.#deps.onOutcome("dead");
        return;
      }
      const delay = backoffDelay(fm.delivery.attempts, {
        baseMs: settings.backoffBaseMs,
        capMs: settings.backoffCapMs,
      });
      fm.delivery.retry_at = new Date(now() + delay).toISOString();
      await store.update(doc);
      log.warn(`mail: delivering ${id} failed (${forLog(failure)}); retry in ${delay} ms`);
      this.#deps.onOutcome("retry");
      this.schedule(id, now() + delay);
    });
  }
}

/**
 * A delivery failure as the log shows it: without the receiver's answer
 * (it may echo the mail) or any URL (a webhook URL may hold a secret).
 */
function forLog(failure: string): string {
  return failure.replace(/^(HTTP \d+): [^]*$/, "$1").replace(/\bhttps?:\/\/\S+/g, "<url>");
}
