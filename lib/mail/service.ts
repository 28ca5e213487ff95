import { homeLayout } from "../home/mod.ts";
import { type Logger, nullLogger } from "../log/mod.ts";
import type { ExtensionContext } from "../service/extension.ts";
import { type ClaimedMail, Claiming, type MailView, mailView } from "./claiming.ts";
import { type ClaimEntry, ClaimTable } from "./claims.ts";
import { dedupWindowMs, loadMailSettings, type MailSettings } from "./config.ts";
import {
  Faults,
  KeyedMutex,
  type MailContext,
  type MailCounters,
  readMail,
  requireEntry,
} from "./context.ts";
import { DedupTable } from "./dedup.ts";
import { MailUnavailableError } from "./errors.ts";
import { MailEvents } from "./events.ts";
import type { IndexProgress } from "./indexer.ts";
import { IndexKeeper } from "./index_keeper.ts";
import { Intake, type ReceiveResult } from "./intake.ts";
import type { JournalOptions } from "./journal.ts";
import { listMails, type MailListFilter, type MailListPage, statusesOf } from "./listing.ts";
import { MailIndex } from "./mail_index.ts";
import { ensureMailbox, type MailboxLayout, mailboxLayout, type MailLocation } from "./mailbox.ts";
import { mailJson } from "./mail_file.ts";
import { OutboundDispatcher, type OutboundRoute, webhookSender } from "./outbound.ts";
import { type AgentFailure, Outcomes } from "./outcomes.ts";
import { type PruneOptions, type PruneResult, Retention } from "./retention.ts";
import { MailStore } from "./store.ts";
import type { InboundInput, OutboundInput } from "./validate.ts";

export type { MailListFilter, MailListPage, MailSummary } from "./listing.ts";
export type { ReceiveResult } from "./intake.ts";

/** Counters and gauges the service adds to `/health`. */
export interface MailMetrics extends MailCounters {
  /** Acknowledged messages not yet in a mail (open buckets, mail writes under way or retried). */
  pending: number;
  /** Mails claimed right now. */
  claimed: number;
  /** Mails in `.deadletter/` now. */
  deadletter: number;
  /** Outbound mails waiting to be delivered now. */
  queued: number;
  /** Agents waiting in claim-next now. */
  waiting_agents: number;
  /** Clients following the event stream now. */
  event_clients: number;
}

/** Options of {@link MailService}. */
export interface MailServiceOptions {
  /** Settings that beat `<home>/config.json` (tests use short windows and backoffs). */
  settings?: Partial<MailSettings>;
  /** The clock in ms (default `Date.now`). */
  now?: () => number;
  /** The HTTP client of webhook delivery (default `fetch`). */
  fetch?: typeof fetch;
  /** Journal tuning (compaction threshold). */
  journal?: JournalOptions;
  /**
   * Senders of outbound mail by provider (chat platforms…); a provider they
   * do not cover falls back to its `config.json` `outbound` webhook.
   */
  senders?: OutboundRoute;
}

/** What `start` found; the mail counts are known once indexing is done. */
export interface MailStartStats {
  /** Mails indexed. */
  mails: number;
  /** Mails parsed from their files. */
  parsed: number;
  /** Mails taken from the index cache. */
  cached: number;
  /** Journal records of the last run carried over. */
  recovered: number;
}

/**
 * The Courier mail service: takes in webhook messages, folds each burst of
 * one conversation into a mail in `<home>/mailbox/`, lets agents claim
 * (or claim the next), release, complete or fail mails, delivers outbound
 * mail with retries, streams what happens as events, and prunes old mail.
 * The daemon hosts it behind its HTTP API (`MailExtension`); it is fully
 * usable on its own: `start` it with a context, then call the methods.
 *
 * A facade: intake and folding (`Intake`), claims and the claim-next
 * waiters (`Claiming`), what agents report (`Outcomes`), outbound delivery
 * (`OutboundDispatcher`), the index (`MailIndex`, built by `Indexer`),
 * events (`MailEvents`) and retention (`Retention`) do the work.
 *
 * Durability: a message is acknowledged only after the group-committed
 * fdatasync of the pending journal that holds it; a folded mail records the
 * pending keys and message ids it covers, so replaying the journal on start
 * neither loses nor duplicates a message, whenever the process died.
 * `start` returns at once, whatever the mailbox size: the index is built
 * in the background, and requests that need a folder not indexed yet wait
 * briefly for it, then get 503 with `Retry-After`.
 */
export class MailService {
  /** The extension's name in logs. */
  readonly name = "mail";
  readonly #options: MailServiceOptions;
  readonly #now: () => number;
  #ctx: MailContext | null = null;
  #intake: Intake | null = null;
  #claiming: Claiming | null = null;
  #outcomes: Outcomes | null = null;
  #outbound: OutboundDispatcher | null = null;
  #retention: Retention | null = null;
  #keeper: IndexKeeper | null = null;
  #indexing: Promise<void> = Promise.resolve();
  readonly #stopIndexing = new AbortController();
  #startStats: MailStartStats = { mails: 0, parsed: 0, cached: 0, recovered: 0 };
  #draining = false;
  #stopped = false;

  /**
   * Creates a `MailService`.
   *
   * @param options Settings overrides, clock, HTTP client, outbound senders.
   */
  constructor(options: MailServiceOptions = {}) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The mailbox's paths (after `start`). */
  get mailbox(): MailboxLayout {
    return this.#need().layout;
  }

  /** What `start` found (the mail counts once indexing is done: see {@link MailService.indexed}). */
  get startStats(): MailStartStats {
    return { ...this.#startStats };
  }

  /** The resolved settings (after `start`). */
  get settings(): MailSettings {
    return this.#need().settings;
  }

  /** The event stream (after `start`). */
  get events(): MailEvents {
    return this.#need().events;
  }

  /** Whether new work is refused (shutdown began). */
  get isDraining(): boolean {
    return this.#draining;
  }

  /**
   * Prepares the mailbox and returns at once: loads the settings and the
   * claims (moving a damaged claims file aside), carries the journal of the
   * last run into a new one, and starts indexing the mails in the
   * background (see {@link MailService.indexed}). Inbound messages are taken
   * from now on; they are folded into mails once the index is complete.
   */
  async start(context: ExtensionContext): Promise<void> {
    const log = context.log;
    const layout = mailboxLayout(context.layout.root);
    const settings = await loadMailSettings(context.layout.configFile, {
      startOptions: context.options,
      overrides: this.#options.settings,
    });
    await ensureMailbox(layout);
    const now = this.#now;
    const index = new MailIndex({ now });
    const ctx: MailContext = {
      layout,
      settings,
      store: new MailStore(layout),
      index,
      claims: new ClaimTable(layout.locksFile, { logPath: layout.claimsLogFile, now }),
      dedup: new DedupTable({ windowMs: dedupWindowMs(settings), now }),
      events: new MailEvents({ now }),
      locks: new KeyedMutex(),
      faults: new Faults(now),
      log,
      now,
      counters: { received: 0, duplicates: 0, mails_written: 0, completed: 0, sent: 0, failed: 0 },
    };
    this.#ctx = ctx;
    const claims = await ctx.claims.load();
    if (claims.movedAside) {
      log.warn(
        `mail: the claims file ${layout.locksFile} was damaged (${claims.damage}); moved it to ` +
          `${claims.movedAside} and kept the claims still readable (${claims.claims} in all)`,
      );
    }
    if (claims.logDamagedLines) {
      log.warn(
        `mail: the claims log ${layout.claimsLogFile} has ${claims.logDamagedLines} damaged ` +
          `line(s); kept a copy at ${claims.logCopiedAside ?? "(copy failed)"} and every ` +
          `readable change`,
      );
    }
    this.#claiming = new Claiming(ctx);
    this.#intake = new Intake(ctx);
    await this.#intake.open(this.#options.journal);
    const fetcher = this.#options.fetch;
    this.#outbound = new OutboundDispatcher(ctx, (provider) => {
      const custom = this.#options.senders?.(provider);
      if (custom) return custom;
      const target = settings.outbound[provider];
      return target ? webhookSender(target, { fetch: fetcher }) : null;
    });
    this.#outcomes = new Outcomes(ctx, this.#claiming, (id) => this.#outbound!.schedule(id));
    this.#retention = new Retention(ctx);
    this.#keeper = new IndexKeeper(ctx, {
      onLocation: (location) => this.#locationIndexed(location),
      signal: this.#stopIndexing.signal,
    });
    this.#indexing = this.#index();
    log.info(
      `mail: mailbox ${layout.root} takes messages (debounce ${settings.debounceWindowMs} ms, ` +
        `max ${settings.debounceMaxWaitMs} ms); indexing it in the background`,
    );
  }

  /** Resolves once every mail is indexed (at once when that is done; also when stopped). */
  indexed(): Promise<void> {
    return this.#indexing;
  }

  /** How far indexing got, or `null` when it is done. */
  indexingProgress(): IndexProgress | null {
    return this.#keeper?.progress() ?? null;
  }

  /** `/health` additions: the mailbox path, the metrics, indexing progress and disk faults. */
  health(): Record<string, unknown> {
    const faults = this.#ctx?.faults.list() ?? [];
    const progress = this.indexingProgress();
    return {
      mailbox: this.#ctx?.layout.root ?? null,
      metrics: this.metrics(),
      ...(progress ? { indexing: progress } : {}),
      ...(faults.length > 0 ? { status: "degraded", degraded: faults } : {}),
    };
  }

  /** The counters and gauges of `/health`. */
  metrics(): MailMetrics {
    const ctx = this.#ctx;
    return {
      ...(ctx?.counters ??
        { received: 0, duplicates: 0, mails_written: 0, completed: 0, sent: 0, failed: 0 }),
      pending: this.#intake?.pending ?? 0,
      claimed: ctx?.index.count("claimed") ?? 0,
      deadletter: ctx?.index.count("dead") ?? 0,
      queued: ctx?.index.count("queued") ?? 0,
      waiting_agents: this.#claiming?.waiting ?? 0,
      event_clients: ctx?.events.listeners ?? 0,
    };
  }

  /**
   * From now on new inbound and outbound requests get 503; agents waiting in
   * claim-next get 503 and event streams end, so the server can shut down.
   */
  draining(): void {
    this.#draining = true;
    this.#claiming?.stop();
    this.#ctx?.events.close();
  }

  /**
   * Stops: refuses new work, folds every open debounce bucket into a mail
   * (giving up writes the disk refuses: the journal keeps those messages),
   * stops delivery, and saves the index cache when every acknowledged
   * message is in a mail. Bounded by the `stopBudgetMs` setting.
   */
  async stop(): Promise<void> {
    const ctx = this.#ctx;
    if (this.#stopped || !ctx) return;
    this.#stopped = true;
    this.draining();
    this.#retention?.stop();
    // Indexing may go on within the stop's budget: open buckets can be folded only once it is done.
    const budget = setTimeout(() => this.#stopIndexing.abort(), ctx.settings.stopBudgetMs);
    const emptyJournal = await this.#intake!.stop(ctx.settings.stopBudgetMs);
    clearTimeout(budget);
    this.#stopIndexing.abort();
    await this.#outbound?.stop();
    await Promise.race([ctx.locks.idle(), new Promise((r) => setTimeout(r, 1000))]);
    await this.#indexing;
    if (emptyJournal && this.#keeper?.stats) await this.#keeper.saveCache();
    await ctx.claims.close().catch((error) => {
      ctx.log.error(`mail: saving claims failed: ${error}`);
    });
    ctx.index.stop();
    ctx.log.info(
      emptyJournal
        ? "mail: stopped; every acknowledged message is in a mail"
        : "mail: stopped; messages not yet in a mail stay in the journal for the next start",
    );
  }

  /** Folds every open debounce bucket into a mail now and resolves once those mails are on disk. */
  flushPending(): Promise<void> {
    return this.#intake?.flush() ?? Promise.resolve();
  }

  /**
   * Takes in one inbound message (see {@link Intake.receive}).
   *
   * @throws {MailUnavailableError} while stopping (503).
   * @throws {MailStorageError} when the journal write failed (503; nothing was stored).
   */
  receive(provider: string, input: InboundInput): Promise<ReceiveResult> {
    if (this.#draining) return Promise.reject(new MailUnavailableError());
    return this.#need(this.#intake).receive(provider, input);
  }

  /**
   * Lists mails: filters, `oldest` or `newest` first, at most `limit`, and
   * a cursor for the next page (stable while mails arrive).
   *
   * @throws {MailValidationError} a bad cursor (400).
   * @throws {MailIndexingError} a folder it needs is still being indexed (503).
   */
  async list(filter: MailListFilter = {}): Promise<MailListPage> {
    const ctx = this.#need();
    await this.#keeper!.waitFor(ctx.index.missing(statusesOf(filter)));
    await this.#need(this.#claiming).expiry.settle();
    return listMails(ctx, filter);
  }

  /**
   * A mail: its front matter as JSON plus `body`, `status`, `claim` and `path`.
   *
   * @throws {MailNotFoundError} for an unknown id, or an unreadable mail (quarantined).
   */
  show(id: string): Promise<MailView> {
    return this.#keeper!.retry(async () => {
      const ctx = this.#need();
      await this.#need(this.#claiming).expiry.settle();
      const doc = await readMail(ctx, requireEntry(ctx, id));
      return mailView(ctx, ctx.index.get(id) ?? requireEntry(ctx, id), mailJson(doc));
    });
  }

  /**
   * Claims an inbound mail for `agentId` for `timeoutS` seconds (default the
   * `claim_timeout_s` setting); the same agent may renew its claim.
   *
   * @throws {MailNotFoundError} unknown id (404).
   * @throws {MailConflictError} held by another agent, waiting for a retry, done or dead (409).
   * @throws {MailStorageError} the claim could not be recorded (503, nothing changed).
   */
  claim(id: string, agentId: string, options: { timeoutS?: number } = {}): Promise<ClaimEntry> {
    const timeout = options.timeoutS ?? this.settings.claimTimeoutS;
    return this.#keeper!.retry(() => this.#need(this.#claiming).claim(id, agentId, timeout));
  }

  /**
   * Claims the oldest claimable inbound mail for `agentId`, waiting up to
   * `waitS` seconds (0 to 60) for one; `null` when none became claimable.
   *
   * @throws {MailStorageError} the claim could not be recorded (503, nothing changed).
   * @throws {MailUnavailableError} while stopping (503).
   */
  claimNext(options: {
    agentId: string;
    provider?: string;
    sessionId?: string;
    timeoutS?: number;
    waitS?: number;
    signal?: AbortSignal;
  }): Promise<ClaimedMail | null> {
    if (this.#draining) return Promise.reject(new MailUnavailableError());
    return this.#need(this.#claiming).claimNext({
      ...options,
      timeoutS: options.timeoutS ?? this.settings.claimTimeoutS,
      waitS: Math.min(60, Math.max(0, options.waitS ?? 0)),
    });
  }

  /**
   * Gives a claimed mail back at once (claimable again, no failure recorded).
   *
   * @throws {MailForbiddenError} another agent holds the claim (403).
   * @throws {MailConflictError} not claimed (409).
   * @throws {MailStorageError} the release could not be recorded (503, nothing changed).
   */
  release(id: string, agentId: string): Promise<Record<string, unknown>> {
    return this.#keeper!.retry(() => this.#need(this.#claiming).release(id, agentId));
  }

  /**
   * Completes a claimed mail: moves it to `archive/`.
   *
   * @throws {MailForbiddenError} another agent holds the claim (403).
   * @throws {MailConflictError} not claimed, done or dead (409).
   * @throws {MailStorageError} the disk refused (503, nothing changed).
   */
  complete(id: string, agentId: string): Promise<Record<string, unknown>> {
    return this.#keeper!.retry(() => this.#need(this.#outcomes).complete(id, agentId));
  }

  /**
   * Records a failed attempt by the claiming agent (retry after a backoff,
   * or dead after the maximum of attempts or when not retryable).
   *
   * @throws {MailForbiddenError} another agent holds the claim (403).
   * @throws {MailConflictError} not claimed, done or dead (409).
   * @throws {MailStorageError} the disk refused (503, nothing changed).
   */
  fail(id: string, agentId: string, failure: AgentFailure): Promise<Record<string, unknown>> {
    return this.#keeper!.retry(() => this.#need(this.#outcomes).fail(id, agentId, failure));
  }

  /**
   * Puts a dead mail back (inbound: new; outbound: queued), attempts reset,
   * history kept.
   *
   * @throws {MailConflictError} the mail is not dead (409).
   * @throws {MailStorageError} the disk refused (503, nothing changed).
   */
  requeue(id: string): Promise<Record<string, unknown>> {
    return this.#keeper!.retry(() => this.#need(this.#outcomes).requeue(id));
  }

  /**
   * Removes done and/or dead mails finished longer ago than `olderThanMs`.
   *
   * @throws {MailIndexingError} while those folders are still being indexed (503).
   */
  async prune(options: PruneOptions): Promise<PruneResult> {
    const ctx = this.#need();
    await this.#keeper!.waitFor(ctx.index.missing(options.statuses ?? ["done", "dead"]));
    return await this.#need(this.#retention).prune(options);
  }

  /**
   * Queues an outbound mail for `provider`; courier delivers it through the
   * provider's sender (its configured webhook, or a chat platform).
   *
   * @throws {MailValidationError} nothing delivers this provider's mail (400).
   * @throws {MailUnavailableError} while stopping (503).
   * @throws {MailStorageError} the disk refused (503, nothing stored).
   */
  async send(provider: string, input: OutboundInput): Promise<Record<string, unknown>> {
    if (this.#draining) throw new MailUnavailableError();
    return await this.#need(this.#outbound).queue(provider, input);
  }

  async #index(): Promise<void> {
    const ctx = this.#need();
    const stats = await this.#keeper!.run();
    if (!stats || this.#stopIndexing.signal.aborted) return;
    this.#intake!.indexed(this.#keeper!.takeCovered());
    this.#startStats = {
      mails: stats.mails,
      parsed: stats.parsed,
      cached: stats.cached,
      recovered: this.#intake!.recovered,
    };
    this.#retention!.start();
    ctx.log.info(
      `mail: indexed ${stats.mails} mail(s) in ${stats.ms} ms (${stats.parsed} parsed, ` +
        `${stats.cached} from the index cache` +
        (stats.quarantined ? `, ${stats.quarantined} unreadable moved to .corrupt/` : "") +
        (stats.duplicatesRemoved ? `, ${stats.duplicatesRemoved} stale copies removed` : "") +
        ")",
    );
    if (stats.parsed > 0 || !stats.cacheUsed || stats.quarantined || stats.duplicatesRemoved) {
      await this.#intake!.flush();
      if (!this.#intake!.busy && !this.#stopped) await this.#keeper!.saveCache();
    }
  }

  #locationIndexed(location: MailLocation): void {
    if (location === "inbound") this.#claiming!.inboundIndexed();
    if (location === "outbound") {
      for (const entry of this.#ctx!.index.each("queued")) {
        this.#outbound!.schedule(entry.id, entry.record.retry_ms ?? 0);
      }
    }
  }

  #need<T = MailContext>(value: T | null = this.#ctx as T | null): T {
    if (value === null) throw new MailUnavailableError("the mail service is not started");
    return value;
  }
}

/**
 * Starts a mail service on a home directory without a daemon (tests,
 * embedding): `start` with a null logger and no `start` options.
 */
export async function startMailService(
  home: string,
  options: MailServiceOptions & { log?: Logger } = {},
): Promise<MailService> {
  const service = new MailService(options);
  await service.start({ layout: homeLayout(home), log: options.log ?? nullLogger(), options: {} });
  return service;
}
