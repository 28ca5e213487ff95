import { removeIfExists, writeFileAtomic } from "../fs/mod.ts";
import { homeLayout } from "../home/mod.ts";
import { type Logger, nullLogger } from "../log/mod.ts";
import type { ExtensionContext } from "../service/extension.ts";
import { type ClaimEntry, ClaimTable } from "./claims.ts";
import { loadMailSettings, type MailSettings } from "./config.ts";
import { Debouncer } from "./debounce.ts";
import {
  MailConflictError,
  MailError,
  MailForbiddenError,
  MailNotFoundError,
  MailUnavailableError,
  MailValidationError,
} from "./errors.ts";
import { type JournalOptions, type JournalRecord, PendingJournal, readJournal } from "./journal.ts";
import { ensureMailbox, type MailboxLayout, mailboxLayout, type MailStatus } from "./mailbox.ts";
import {
  buildInboundMail,
  buildOutboundMail,
  type MailDocument,
  mailJson,
  type MailMessage,
  type MailSession,
  renderMail,
} from "./mail_file.ts";
import { type DeliveryOutcome, OutboundDispatcher } from "./outbound.ts";
import { backoffDelay, MAX_ATTEMPTS } from "./retry.ts";
import { dedupKey, type MailRecord, MailStore, readIndexSnapshot } from "./store.ts";
import type { InboundInput, OutboundInput } from "./validate.ts";

/** Counters and gauges the service adds to `/health`. */
export interface MailMetrics {
  /** Inbound messages acknowledged since start (duplicates not counted). */
  received: number;
  /** Repeated `message_id`s acknowledged without storing them again, since start. */
  duplicates: number;
  /** Inbound mails written since start (bursts folded, including journal recovery). */
  mails_written: number;
  /** Acknowledged messages not yet in a mail (open debounce buckets). */
  pending: number;
  /** Mails claimed right now. */
  claimed: number;
  /** Mails completed by agents since start. */
  completed: number;
  /** Outbound mails delivered since start. */
  sent: number;
  /** Failed attempts since start (agent `fail`s and outbound delivery errors). */
  failed: number;
  /** Mails in `.deadletter/` now. */
  deadletter: number;
  /** Outbound mails waiting to be delivered now. */
  queued: number;
}

/** One mail in a listing. */
export interface MailSummary {
  /** `<provider>_<uid>`. */
  id: string;
  /** Its provider. */
  provider: string;
  /** `inbound` or `outbound`. */
  direction: "inbound" | "outbound";
  /** Where it stands. */
  status: MailStatus;
  /** When its first message was sent. */
  timestamp: string;
  /** When courier received it. */
  received_at: string;
  /** The conversation. */
  session: MailSession;
  /** The first sender (inbound). */
  from?: { id: string; name: string };
  /** The recipient (outbound). */
  to?: string;
  /** The start of its text. */
  preview: string;
  /** Messages folded in. */
  message_count: number;
  /** Failed attempts so far. */
  attempts: number;
  /** Waiting for a retry until then. */
  retry_at?: string;
  /** The current claim. */
  claim?: ClaimEntry;
  /** Why it was dead-lettered. */
  dead_reason?: string;
  /** Its file. */
  path: string;
}

/** Filters of {@link MailService.list}. */
export interface MailListFilter {
  /** Only mails in this status. */
  status?: MailStatus;
  /** Only this provider's mails. */
  provider?: string;
  /** Only inbound or only outbound mails. */
  direction?: "inbound" | "outbound";
  /** At most this many (oldest first; default 1000). */
  limit?: number;
}

/** What {@link MailService.receive} answers. */
export interface ReceiveResult {
  /** Always true: the message is durable (in the journal or a mail). */
  accepted: true;
  /** The key it was acknowledged with (a repeat gets the first one's key). */
  pending_key: string;
  /** Whether it repeated an earlier `message_id` (and was not stored again). */
  duplicate?: true;
}

/** Options of {@link MailService}. */
export interface MailServiceOptions {
  /** Settings that beat `<home>/config.json` (tests use short windows and backoffs). */
  settings?: Partial<MailSettings>;
  /** The clock in ms (default `Date.now`). */
  now?: () => number;
  /** The HTTP client for outbound delivery (default `fetch`). */
  fetch?: typeof fetch;
  /** Journal tuning (compaction threshold). */
  journal?: JournalOptions;
}

/** Mails being written at once (renders take turns; the writes overlap on I/O). */
const FOLD_CONCURRENCY = 4;

function bucketKey(provider: string, session: MailSession): string {
  return JSON.stringify([provider, session.id, session.thread_key ?? ""]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The Courier mail service: takes in webhook messages, folds each burst of
 * one conversation into a mail in `<home>/mailbox/`, lets agents claim,
 * complete or fail mails, and delivers outbound mail with retries. The
 * daemon hosts it behind its HTTP API (`MailExtension`); it is fully usable
 * on its own: `start` it with a context, then call the methods.
 *
 * Durability: a message is acknowledged only after the group-committed
 * fdatasync of the pending journal that holds it; a folded mail records the
 * pending keys and message ids it covers, so replaying the journal on start
 * neither loses nor duplicates a message, whenever the process died.
 */
export class MailService {
  /** The extension's name in logs. */
  readonly name = "mail";
  readonly #options: MailServiceOptions;
  readonly #now: () => number;
  #log: Logger = nullLogger();
  #layout: MailboxLayout | null = null;
  #settings: MailSettings | null = null;
  #store: MailStore | null = null;
  #claims: ClaimTable | null = null;
  #journal: PendingJournal | null = null;
  #debouncer: Debouncer<JournalRecord> | null = null;
  #outbound: OutboundDispatcher | null = null;
  readonly #seen = new Map<string, string | Promise<string>>();
  readonly #mailLocks = new Map<string, Promise<void>>();
  readonly #folds = new Set<Promise<void>>();
  readonly #receives = new Set<Promise<unknown>>();
  #folding = 0;
  #startStats = { mails: 0, parsed: 0, cached: 0, recovered: 0 };
  #foldsRunning = 0;
  #renderChain: Promise<void> = Promise.resolve();
  readonly #foldWaiters: (() => void)[] = [];
  #draining = false;
  #stopped = false;
  readonly #counters = {
    received: 0,
    duplicates: 0,
    mails_written: 0,
    completed: 0,
    sent: 0,
    failed: 0,
  };

  /**
   * Creates a `MailService`.
   *
   * @param options Settings overrides, clock, HTTP client.
   */
  constructor(options: MailServiceOptions = {}) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The mailbox's paths (after `start`). */
  get mailbox(): MailboxLayout {
    return this.#need(this.#layout);
  }

  /** What `start` found: mails indexed, parsed, taken from the index snapshot; records replayed. */
  get startStats(): { mails: number; parsed: number; cached: number; recovered: number } {
    return { ...this.#startStats };
  }

  /** The resolved settings (after `start`). */
  get settings(): MailSettings {
    return this.#need(this.#settings);
  }

  /**
   * Creates the mailbox, indexes its mails (parsing only those the index
   * snapshot does not know), carries the journal records of the last run
   * that no mail covers into the new journal and folds them into mails in
   * the background, loads claims and queues outbound mail.
   */
  async start(context: ExtensionContext): Promise<void> {
    this.#log = context.log;
    const layout = mailboxLayout(context.layout.root);
    this.#layout = layout;
    this.#settings = await loadMailSettings(context.layout.configFile, {
      startOptions: context.options,
      overrides: this.#options.settings,
    });
    await ensureMailbox(layout);
    const store = new MailStore(layout);
    this.#store = store;
    const snapshot = await readIndexSnapshot(layout.indexFile);
    const scan = await store.scan({ snapshot });
    for (const path of scan.unreadable) {
      this.#log.warn(`mail: not a mail file, left alone: ${path}`);
    }
    for (const path of scan.duplicatesRemoved) {
      this.#log.info(`mail: removed stale copy left by an interrupted move: ${path}`);
    }
    for (const [key, pending] of scan.messageIds) this.#seen.set(key, pending);
    const replay = await this.#readJournal(layout, scan.pendingKeys);
    const carried = replay.flat();
    this.#startStats = {
      mails: store.size,
      parsed: scan.parsed,
      cached: scan.cached,
      recovered: carried.length,
    };
    this.#journal = await PendingJournal.open(layout.journalFile, {
      ...this.#options.journal,
      carry: carried,
    });
    if (
      !snapshot || scan.parsed > 0 || carried.length > 0 ||
      scan.cached !== Object.keys(snapshot.mails).length
    ) {
      // The journal now holds only records no mail covers, and the mails that
      // will cover them are written after this: the snapshot's invariant holds.
      await this.#saveSnapshot();
    }
    const claims = new ClaimTable(layout.locksFile, { now: this.#now });
    await claims.load((id) => store.get(id)?.location === "inbound");
    this.#claims = claims;
    const settings = this.settings;
    this.#debouncer = new Debouncer<JournalRecord>((_key, records) => this.#fold(records), {
      windowMs: settings.debounceWindowMs,
      maxWaitMs: settings.debounceMaxWaitMs,
      maxItems: settings.maxMessagesPerMail,
      now: this.#now,
    });
    this.#outbound = new OutboundDispatcher({
      store,
      settings,
      log: this.#log,
      now: this.#now,
      withMail: (id, fn) => this.#withMail(id, fn),
      onOutcome: (outcome) => this.#countDelivery(outcome),
      fetch: this.#options.fetch,
    });
    // Replayed records fold in the background: a long journal does not delay readiness.
    for (const chunk of replay) this.#fold(chunk);
    for (const record of store.records()) {
      if (record.location === "outbound") {
        this.#outbound.schedule(record.id, record.retry_at ? Date.parse(record.retry_at) : 0);
      }
    }
    this.#log.info(
      `mail: mailbox ${layout.root} ready: ${scan.mails} mails ` +
        `(${scan.parsed} parsed, ${scan.cached} from the index), ` +
        `debounce ${settings.debounceWindowMs} ms (max ${settings.debounceMaxWaitMs} ms)`,
    );
  }

  /** `/health` additions: the mailbox path and the metrics. */
  health(): Record<string, unknown> {
    return { mailbox: this.#layout?.root ?? null, metrics: this.metrics() };
  }

  /** From now on new inbound and outbound requests get 503. */
  draining(): void {
    this.#draining = true;
  }

  /**
   * Stops: refuses new work, folds every open debounce bucket into a mail,
   * closes the journal (empty once everything is folded) and stops delivery.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#draining = true;
    await this.flushPending();
    this.#stopped = true;
    await this.#outbound?.stop();
    await Promise.allSettled([...this.#mailLocks.values()]);
    const emptyJournal = await this.#journal?.close();
    if (emptyJournal) await this.#saveSnapshot();
    await this.#claims?.persist().catch((error) => {
      this.#log.error(`mail: saving claims failed: ${error}`);
    });
    this.#log.info(
      emptyJournal
        ? "mail: stopped; every acknowledged message is in a mail"
        : "mail: stopped; messages not yet in a mail stay in the journal for the next start",
    );
  }

  /**
   * Folds every open debounce bucket into a mail now and resolves once
   * those mails are on disk.
   */
  async flushPending(): Promise<void> {
    await Promise.allSettled([...this.#receives]);
    this.#debouncer?.flushAll();
    await Promise.allSettled([...this.#folds]);
  }

  /** The counters and gauges of `/health`. */
  metrics(): MailMetrics {
    return {
      ...this.#counters,
      pending: (this.#debouncer?.pendingCount ?? 0) + this.#folding,
      claimed: this.#claims?.activeCount() ?? 0,
      deadletter: this.#store?.count("deadletter") ?? 0,
      queued: this.#store?.count("outbound") ?? 0,
    };
  }

  /** Whether new work is refused (shutdown began). */
  get isDraining(): boolean {
    return this.#draining;
  }

  /**
   * Takes in one inbound message: durable in the pending journal before
   * this resolves, then folded with the rest of its burst into a mail. A
   * repeated `message_id` of the same provider is acknowledged again with
   * the first one's pending key and not stored twice.
   *
   * @throws {MailUnavailableError} while stopping.
   */
  receive(provider: string, input: InboundInput): Promise<ReceiveResult> {
    if (this.#draining) return Promise.reject(new MailUnavailableError());
    const work = this.#receive(provider, input);
    this.#receives.add(work);
    work.then(() => this.#receives.delete(work), () => this.#receives.delete(work));
    return work;
  }

  async #receive(provider: string, input: InboundInput): Promise<ReceiveResult> {
    const journal = this.#need(this.#journal);
    const dedup = input.message_id === undefined ? null : dedupKey(provider, input.message_id);
    while (dedup !== null && this.#seen.has(dedup)) {
      const seen = this.#seen.get(dedup)!;
      try {
        const key = typeof seen === "string" ? seen : await seen;
        this.#counters.duplicates++;
        return { accepted: true, pending_key: key, duplicate: true };
      } catch {
        // the first copy was not stored: store this one (unless another repeat got there first)
      }
    }
    const key = crypto.randomUUID();
    const receivedAt = new Date(this.#now()).toISOString();
    const message: MailMessage = {
      ...(input.message_id === undefined ? {} : { message_id: input.message_id }),
      sender: input.sender,
      time: input.time ?? receivedAt,
      received_at: receivedAt,
      text: input.text,
      ...(input.extra ? { extra: input.extra } : {}),
      pending_key: key,
    };
    const record: JournalRecord = { key, provider, session: input.session, message };
    const durable = journal.append(record);
    if (dedup !== null) {
      const claim = durable.then(() => key);
      claim.catch(() => {});
      this.#seen.set(dedup, claim);
      durable.then(
        () => this.#seen.set(dedup, key),
        () => {
          if (this.#seen.get(dedup) === claim) this.#seen.delete(dedup);
        },
      );
    }
    try {
      await durable;
    } catch (error) {
      this.#log.error(`mail: journal append failed: ${error}`);
      throw new MailError(`could not store the message durably: ${(error as Error).message}`, {
        status: 500,
      });
    }
    this.#need(this.#debouncer).add(bucketKey(provider, input.session), record);
    this.#counters.received++;
    return { accepted: true, pending_key: key };
  }

  /** Lists mails, oldest first. */
  list(filter: MailListFilter = {}): MailSummary[] {
    const store = this.#need(this.#store);
    const rows: MailSummary[] = [];
    for (const record of store.records()) {
      if (filter.provider !== undefined && record.provider !== filter.provider) continue;
      if (filter.direction !== undefined && record.direction !== filter.direction) continue;
      const status = this.#status(record);
      if (filter.status !== undefined && status !== filter.status) continue;
      rows.push(this.#summary(record, status));
    }
    rows.sort((a, b) =>
      a.received_at < b.received_at ? -1 : a.received_at > b.received_at ? 1 : a.id < b.id ? -1 : 1
    );
    return rows.slice(0, filter.limit ?? 1000);
  }

  /**
   * A mail: its front matter as JSON plus `body`, `status`, `claim` and `path`.
   *
   * @throws {MailNotFoundError} for an unknown id.
   */
  async show(id: string): Promise<Record<string, unknown>> {
    const record = this.#record(id);
    const doc = await this.#need(this.#store).read(id);
    const status = this.#status(record);
    const claim = this.#claims?.active(id);
    return { ...mailJson(doc), status, ...(claim ? { claim } : {}), path: record.path };
  }

  /**
   * Claims an inbound mail for `agentId` for `timeoutS` seconds (default 300);
   * the same agent may renew its claim.
   *
   * @throws {MailNotFoundError} unknown id (404).
   * @throws {MailConflictError} held by another agent, waiting for a retry, done or dead (409).
   */
  claim(id: string, agentId: string, options: { timeoutS?: number } = {}): Promise<ClaimEntry> {
    return this.#withMail(id, async () => {
      const record = this.#record(id);
      this.#assertOpenInbound(record, "claimed");
      const claims = this.#need(this.#claims);
      const holder = claims.active(id);
      if (holder && holder.agent_id !== agentId) {
        throw new MailConflictError(
          `mail ${id} is claimed by "${holder.agent_id}" until ${holder.expires_at}`,
          { holder: holder.agent_id, expires_at: holder.expires_at },
        );
      }
      if (record.retry_at && Date.parse(record.retry_at) > this.#now()) {
        throw new MailConflictError(
          `mail ${id} failed ${record.attempts} time(s) and waits for a retry until ${record.retry_at}`,
          { status: "retrying", retry_at: record.retry_at },
        );
      }
      const entry = claims.claim(id, agentId, options.timeoutS ?? this.settings.claimTimeoutS);
      await claims.persist();
      return entry;
    });
  }

  /**
   * Completes a claimed mail: moves it to `archive/`. Only the agent that
   * claimed it may (even if its claim lapsed, as long as nobody claimed it since).
   *
   * @throws {MailForbiddenError} another agent holds the claim (403).
   * @throws {MailConflictError} not claimed, done or dead (409).
   */
  complete(id: string, agentId: string): Promise<Record<string, unknown>> {
    return this.#withMail(id, async () => {
      const record = this.#record(id);
      this.#assertOpenInbound(record, "completed");
      this.#assertHolder(id, agentId, "complete");
      const store = this.#need(this.#store);
      const doc = await store.read(id);
      const at = new Date(this.#now()).toISOString();
      doc.frontMatter.delivery.completed_at = at;
      doc.frontMatter.delivery.completed_by = agentId;
      delete doc.frontMatter.delivery.retry_at;
      const moved = await store.move(doc, "archive");
      const claims = this.#need(this.#claims);
      claims.release(id);
      await claims.persist();
      this.#counters.completed++;
      return { id, status: "done", completed_at: at, completed_by: agentId, path: moved.path };
    });
  }

  /**
   * Records a failed attempt by the claiming agent. Retryable and under
   * {@link MAX_ATTEMPTS} attempts: the mail is new again after an exponential
   * backoff; otherwise it moves to `.deadletter/` with the reason.
   *
   * @throws {MailForbiddenError} another agent holds the claim (403).
   * @throws {MailConflictError} not claimed, done or dead (409).
   */
  fail(
    id: string,
    agentId: string,
    failure: { reason: string; retryable: boolean },
  ): Promise<Record<string, unknown>> {
    return this.#withMail(id, async () => {
      const record = this.#record(id);
      this.#assertOpenInbound(record, "failed");
      this.#assertHolder(id, agentId, "fail");
      const store = this.#need(this.#store);
      const doc = await store.read(id);
      const now = this.#now();
      const at = new Date(now).toISOString();
      const delivery = doc.frontMatter.delivery;
      delivery.attempts += 1;
      delivery.failures.push({
        at,
        agent_id: agentId,
        reason: failure.reason,
        retryable: failure.retryable,
      });
      let result: Record<string, unknown>;
      if (failure.retryable && delivery.attempts < MAX_ATTEMPTS) {
        const delay = backoffDelay(delivery.attempts, {
          baseMs: this.settings.backoffBaseMs,
          capMs: this.settings.backoffCapMs,
        });
        delivery.retry_at = new Date(now + delay).toISOString();
        await store.update(doc);
        result = {
          id,
          status: "retrying",
          attempts: delivery.attempts,
          retry_at: delivery.retry_at,
        };
      } else {
        delete delivery.retry_at;
        delivery.dead_at = at;
        delivery.dead_reason = failure.reason;
        const moved = await store.move(doc, "deadletter");
        result = {
          id,
          status: "dead",
          attempts: delivery.attempts,
          reason: failure.reason,
          path: moved.path,
        };
        this.#log.warn(`mail: dead-lettered ${id} after ${delivery.attempts}: ${failure.reason}`);
      }
      const claims = this.#need(this.#claims);
      claims.release(id);
      await claims.persist();
      this.#counters.failed++;
      return result;
    });
  }

  /**
   * Queues an outbound mail for `provider`; the daemon delivers it to the
   * provider's configured URL.
   *
   * @throws {MailValidationError} no URL is configured for the provider (400).
   * @throws {MailUnavailableError} while stopping (503).
   */
  async send(provider: string, input: OutboundInput): Promise<Record<string, unknown>> {
    if (this.#draining) throw new MailUnavailableError();
    if (!this.settings.outbound[provider]) {
      throw new MailValidationError(
        "provider",
        `no outbound URL configured for provider "${provider}": add ` +
          `{"outbound": {"${provider}": {"url": "https://..."}}} to config.json and restart`,
      );
    }
    const doc = buildOutboundMail(provider, input, {
      replyTo: input.reply_to,
      extra: input.extra,
      now: new Date(this.#now()),
    });
    const record = await this.#need(this.#store).create(doc, "outbound");
    this.#need(this.#outbound).schedule(record.id);
    return { queued: true, id: record.id, status: "queued", path: record.path };
  }

  #fold(records: JournalRecord[]): void {
    this.#folding += records.length;
    const work = this.#writeBurst(records).finally(() => {
      this.#folding -= records.length;
      this.#folds.delete(work);
    });
    this.#folds.add(work);
  }

  /**
   * Runs `fn` (rendering a mail: CPU work on the event loop) after every
   * earlier render and a macrotask yield, so when many buckets close at once
   * the renders take turns and requests are served between any two.
   */
  #renderTurn<T>(fn: () => T): Promise<T> {
    const run = this.#renderChain.then(() => new Promise((resolve) => setTimeout(resolve, 0)))
      .then(fn);
    this.#renderChain = run.then(() => {}, () => {});
    return run;
  }

  /** Takes one of {@link FOLD_CONCURRENCY} fold slots (mails being written at once). */
  async #foldSlot(): Promise<() => void> {
    while (this.#foldsRunning >= FOLD_CONCURRENCY) {
      await new Promise<void>((resolve) => this.#foldWaiters.push(resolve));
    }
    this.#foldsRunning++;
    return () => {
      this.#foldsRunning--;
      this.#foldWaiters.shift()?.();
    };
  }

  async #writeBurst(records: JournalRecord[]): Promise<void> {
    const release = await this.#foldSlot();
    try {
      await this.#writeBurstNow(records);
    } finally {
      release();
    }
  }

  async #writeBurstNow(records: JournalRecord[]): Promise<void> {
    const store = this.#need(this.#store);
    const [doc, text] = await this.#renderTurn(() => {
      const doc = burstMail(records);
      return [doc, renderMail(doc)] as const;
    });
    for (let attempt = 1;; attempt++) {
      try {
        await store.create(doc, "inbound", { text });
        break;
      } catch (error) {
        this.#log.error(`mail: writing mail ${doc.frontMatter.id} failed: ${error}`);
        // The messages stay in the journal: the next start folds them if we cannot.
        if (this.#stopped || attempt >= 5) return;
        await sleep(Math.min(5000, 200 * 2 ** attempt));
      }
    }
    this.#journal?.release(records.map((r) => r.key));
    this.#counters.mails_written++;
  }

  /** Writes the index snapshot; call only while the journal is empty. Never throws. */
  async #saveSnapshot(): Promise<void> {
    const store = this.#store, layout = this.#layout;
    if (!store || !layout) return;
    try {
      const dedup: Record<string, string> = {};
      for (const [key, value] of this.#seen) if (typeof value === "string") dedup[key] = value;
      await writeFileAtomic(layout.indexFile, JSON.stringify(store.snapshot(dedup)), {
        mode: 0o600,
      });
    } catch (error) {
      this.#log.warn(
        `mail: could not save the index snapshot (next start parses every mail): ${error}`,
      );
      await removeIfExists(layout.indexFile).catch(() => {});
    }
  }

  /**
   * Reads the journal left by the last run and returns its records that no
   * mail covers yet, grouped into mail-sized chunks per conversation.
   */
  async #readJournal(layout: MailboxLayout, covered: Set<string>): Promise<JournalRecord[][]> {
    const records = await readJournal(layout.journalFile);
    if (records.length === 0) return [];
    const buckets = new Map<string, JournalRecord[]>();
    const keys = new Set<string>();
    for (const record of records) {
      if (covered.has(record.key) || keys.has(record.key)) continue;
      keys.add(record.key);
      if (record.message.message_id !== undefined) {
        this.#seen.set(dedupKey(record.provider, record.message.message_id), record.key);
      }
      const key = bucketKey(record.provider, record.session);
      const list = buckets.get(key) ?? [];
      list.push(record);
      buckets.set(key, list);
    }
    const max = this.settings.maxMessagesPerMail;
    const chunks: JournalRecord[][] = [];
    for (const list of buckets.values()) {
      for (let i = 0; i < list.length; i += max) chunks.push(list.slice(i, i + max));
    }
    this.#log.info(
      `mail: journal replay: ${records.length} records, ${keys.size} not yet in a mail, ` +
        `folding them into ${chunks.length} mail(s)`,
    );
    return chunks;
  }

  #countDelivery(outcome: DeliveryOutcome): void {
    if (outcome === "sent") this.#counters.sent++;
    else if (outcome === "retry" || outcome === "dead") this.#counters.failed++;
  }

  #status(record: MailRecord): MailStatus {
    switch (record.location) {
      case "archive":
        return "done";
      case "deadletter":
        return "dead";
      case "outbound":
        return "queued";
      case "inbound":
        if (this.#claims?.active(record.id)) return "claimed";
        if (record.retry_at && Date.parse(record.retry_at) > this.#now()) return "retrying";
        return "new";
    }
  }

  #summary(record: MailRecord, status: MailStatus): MailSummary {
    const summary: MailSummary = {
      id: record.id,
      provider: record.provider,
      direction: record.direction,
      status,
      timestamp: record.timestamp,
      received_at: record.received_at,
      session: record.session,
      preview: record.preview,
      message_count: record.message_count,
      attempts: record.attempts,
      path: record.path,
    };
    if (record.from) summary.from = record.from;
    if (record.to) summary.to = record.to;
    if (status === "retrying" && record.retry_at) summary.retry_at = record.retry_at;
    if (status === "claimed") summary.claim = this.#claims?.active(record.id);
    if (record.dead_reason) summary.dead_reason = record.dead_reason;
    return summary;
  }

  #record(id: string): MailRecord {
    const record = this.#need(this.#store).get(id);
    if (!record) throw new MailNotFoundError(id);
    return record;
  }

  #assertOpenInbound(record: MailRecord, verb: string): void {
    if (record.direction === "outbound") {
      throw new MailConflictError(
        `mail ${record.id} is outbound: courier delivers it, it cannot be ${verb}`,
        { status: this.#status(record) },
      );
    }
    if (record.location === "archive") {
      throw new MailConflictError(`mail ${record.id} is already done`, { status: "done" });
    }
    if (record.location === "deadletter") {
      throw new MailConflictError(`mail ${record.id} is dead-lettered: ${record.dead_reason}`, {
        status: "dead",
      });
    }
  }

  #assertHolder(id: string, agentId: string, verb: string): void {
    const claims = this.#need(this.#claims);
    const entry = claims.get(id);
    if (!entry) {
      throw new MailConflictError(
        `mail ${id} is not claimed: claim it first (POST /api/v1/messages/${id}/claim)`,
        { status: this.#status(this.#record(id)) },
      );
    }
    if (entry.agent_id !== agentId) {
      throw new MailForbiddenError(
        `mail ${id} is claimed by "${entry.agent_id}" until ${entry.expires_at}; ` +
          `only that agent may ${verb} it`,
        { holder: entry.agent_id, expires_at: entry.expires_at },
      );
    }
  }

  #withMail<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#mailLocks.get(id) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(() => {}, () => {});
    this.#mailLocks.set(id, tail);
    tail.then(() => {
      if (this.#mailLocks.get(id) === tail) this.#mailLocks.delete(id);
    });
    return run;
  }

  #need<T>(value: T | null): T {
    if (value === null) {
      throw new MailUnavailableError("the mail service is not started");
    }
    return value;
  }
}

/** Folds journal records of one conversation into an inbound mail document. */
export function burstMail(records: JournalRecord[]): MailDocument {
  const first = records[0];
  const session: MailSession = { ...first.session };
  for (const r of records) if (r.session.name) session.name = r.session.name;
  return buildInboundMail(
    { provider: first.provider, session },
    records.map((r) => r.message),
  );
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
