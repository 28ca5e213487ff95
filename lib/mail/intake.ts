import { copyAside } from "../fs/mod.ts";
import type { MailContext } from "./context.ts";
import { Debouncer } from "./debounce.ts";
import { dedupKey } from "./dedup.ts";
import { isStorageFault, MailStorageError, MailUnavailableError } from "./errors.ts";
import { type JournalOptions, type JournalRecord, PendingJournal, readJournal } from "./journal.ts";
import {
  buildInboundMail,
  type MailDocument,
  type MailMessage,
  type MailSession,
  renderMail,
} from "./mail_file.ts";
import { isoOf } from "./mail_index.ts";
import type { InboundInput } from "./validate.ts";

/** What {@link Intake.receive} answers. */
export interface ReceiveResult {
  /** Always true: the message is durable (in the journal or a mail). */
  accepted: true;
  /** The key it was acknowledged with (a repeat gets the first one's key). */
  pending_key: string;
  /** Whether it repeated an earlier `message_id` (and was not stored again). */
  duplicate?: true;
}

/** What {@link Intake.open} found in the journal of the last run. */
export interface JournalRecovery {
  /** Records carried over (acknowledged, maybe not yet in a mail). */
  carried: number;
  /** Where a damaged journal was copied for inspection, else `null`. */
  copiedAside: string | null;
  /** Damaged lines in it. */
  corrupt: number;
}

/** Mails being written at once (renders take turns; the writes overlap on I/O). */
const FOLD_CONCURRENCY = 4;
/** How often the log summarises the messages received. */
const RECEIVED_LOG_MS = 10_000;

function bucketKey(provider: string, session: MailSession): string {
  return JSON.stringify([provider, session.id, session.thread_key ?? ""]);
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
 * Inbound intake: acknowledges each message once it is durable in the
 * pending journal (group commit), debounces each conversation's burst and
 * folds it into one mail. Mail writes the disk refuses are retried with
 * capped backoff until they succeed (the messages stay in the journal and
 * count as `pending` meanwhile), except during a stop, which leaves them to
 * the journal. Folding waits until the mailbox is indexed, because only then
 * is it known which message ids and journal records are in mails already:
 * a second copy of a message (a replayed record a mail already covers, or a
 * sender's retry whose first copy was stored after all) is dropped there.
 */
export class Intake {
  readonly #ctx: MailContext;
  #journal: PendingJournal | null = null;
  #debouncer: Debouncer<JournalRecord> | null = null;
  readonly #folds = new Set<Promise<void>>();
  readonly #receives = new Set<Promise<unknown>>();
  #folding = 0;
  #foldsRunning = 0;
  readonly #foldWaiters: (() => void)[] = [];
  #renderChain: Promise<void> = Promise.resolve();
  #openGate: () => void = () => {};
  readonly #gate: Promise<void>;
  #covered: Set<string> | null = null;
  #carried: string[] = [];
  #recovered = 0;
  #indexed = false;
  #replaying = 0;
  readonly #stopping = new AbortController();
  /** Aborted when a stop's budget ran out: folds still waiting for the index give up. */
  readonly #giveUp = new AbortController();
  #received = {
    messages: 0,
    duplicates: 0,
    timer: undefined as ReturnType<typeof setTimeout> | undefined,
  };

  /**
   * Creates an `Intake`.
   *
   * @param ctx What the mail service's parts share.
   */
  constructor(ctx: MailContext) {
    this.#ctx = ctx;
    this.#gate = new Promise((resolve) => (this.#openGate = resolve));
  }

  /** Acknowledged messages not yet in a mail (open buckets, mails being written or retried). */
  get pending(): number {
    return (this.#debouncer?.pendingCount ?? 0) + this.#folding;
  }

  /** Carried journal records no mail covered (known once indexed): they become mail now. */
  get recovered(): number {
    return this.#recovered;
  }

  /** Records live in the journal. */
  get journalLive(): number {
    return this.#journal?.liveCount ?? 0;
  }

  /** Whether mails are being written now (the index cache may only be saved when not). */
  get busy(): boolean {
    return this.#folding > 0 || (this.#journal?.liveCount ?? 0) > 0;
  }

  /**
   * Reads the journal of the last run (a damaged one is copied aside first),
   * carries its records into a fresh journal and queues them for folding,
   * which starts once {@link Intake.indexed} is called.
   */
  async open(options: JournalOptions = {}): Promise<JournalRecovery> {
    const { layout, log, settings, dedup } = this.#ctx;
    const read = await readJournal(layout.journalFile);
    let copiedAside: string | null = null;
    if (read.corrupt > 0) {
      copiedAside = await copyAside(layout.journalFile, this.#ctx.now()).catch(() => null);
      log.warn(
        `mail: the pending journal ${layout.journalFile} has ${read.corrupt} damaged line(s); ` +
          `kept a copy at ${copiedAside ?? "(copy failed)"} and recovered ` +
          `${read.records.length} readable record(s)`,
      );
    }
    const records: JournalRecord[] = [];
    const keys = new Set<string>();
    for (const record of read.records) {
      if (keys.has(record.key)) continue;
      keys.add(record.key);
      records.push(record);
      this.#carried.push(record.key);
      if (record.message.message_id !== undefined) {
        dedup.addJournal(dedupKey(record.provider, record.message.message_id), record.key);
      }
    }
    this.#journal = await PendingJournal.open(layout.journalFile, { ...options, carry: records });
    this.#debouncer = new Debouncer<JournalRecord>((_key, items) => this.#fold(items), {
      windowMs: settings.debounceWindowMs,
      maxWaitMs: settings.debounceMaxWaitMs,
      maxItems: settings.maxMessagesPerMail,
      now: this.#ctx.now,
    });
    const buckets = new Map<string, JournalRecord[]>();
    for (const record of records) {
      const key = bucketKey(record.provider, record.session);
      buckets.set(key, [...buckets.get(key) ?? [], record]);
    }
    const max = settings.maxMessagesPerMail;
    for (const list of buckets.values()) {
      for (let i = 0; i < list.length; i += max) {
        this.#replaying++;
        this.#fold(list.slice(i, i + max), true);
      }
    }
    if (records.length > 0) {
      log.info(
        `mail: journal replay: ${records.length} acknowledged message(s) carried over; ` +
          `folding those no mail covers once the mailbox is indexed`,
      );
    }
    return { carried: records.length, copiedAside, corrupt: read.corrupt };
  }

  /**
   * The mailbox is indexed: `covered` holds the pending keys of the mails
   * parsed (every mail that can cover a carried record). Folding starts.
   */
  indexed(covered: Set<string>): void {
    this.#recovered = this.#carried.filter((key) => !covered.has(key)).length;
    this.#carried = [];
    this.#covered = this.#replaying > 0 ? covered : null; // only replayed records need it
    this.#indexed = true;
    this.#openGate();
  }

  /**
   * Takes in one inbound message: durable in the pending journal before
   * this resolves, then folded with the rest of its burst into a mail. A
   * repeated `message_id` of the same provider is acknowledged again with
   * the first one's pending key and not stored twice.
   *
   * @throws {MailUnavailableError} while stopping (503).
   * @throws {MailStorageError} when the journal write failed (503; nothing was stored).
   */
  receive(provider: string, input: InboundInput): Promise<ReceiveResult> {
    if (this.#stopping.signal.aborted) return Promise.reject(new MailUnavailableError());
    const work = this.#receive(provider, input);
    this.#receives.add(work);
    work.then(() => this.#receives.delete(work), () => this.#receives.delete(work));
    return work;
  }

  async #receive(provider: string, input: InboundInput): Promise<ReceiveResult> {
    const { dedup, counters, faults, log } = this.#ctx;
    const journal = this.#journal!;
    const dedupId = input.message_id === undefined ? null : dedupKey(provider, input.message_id);
    while (dedupId !== null) {
      const seen = dedup.lookup(dedupId);
      if (seen === undefined) break;
      try {
        const key = typeof seen === "string" ? seen : await seen;
        counters.duplicates++;
        this.#countReceived(true);
        return { accepted: true, pending_key: key, duplicate: true };
      } catch {
        // the first copy was not stored: store this one (unless another repeat got there first)
      }
    }
    const key = crypto.randomUUID();
    const receivedAt = new Date(this.#ctx.now()).toISOString();
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
    if (dedupId !== null) dedup.appending(dedupId, durable.then(() => key));
    try {
      await durable;
      faults.clear("journal");
    } catch (error) {
      if (!isStorageFault(error)) throw error;
      faults.report("journal", error);
      log.error(`mail: journal append failed: ${(error as Error).message}`);
      throw new MailStorageError("store the message durably", error, this.#ctx.layout.root);
    }
    this.#debouncer!.add(bucketKey(provider, input.session), record);
    counters.received++;
    this.#countReceived(false);
    return { accepted: true, pending_key: key };
  }

  /** Folds every open bucket into a mail now and resolves once those mails are written. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#receives]);
    this.#debouncer?.flushAll();
    await Promise.allSettled([...this.#folds]);
  }

  /**
   * Stops: new messages get 503, open buckets are folded, and mail writes
   * that fail are given up (their messages stay in the journal for the next
   * start), all within `budgetMs`. Resolves whether the journal was left
   * empty (every acknowledged message is in a mail).
   */
  async stop(budgetMs: number): Promise<boolean> {
    const journal = this.#journal;
    if (!journal) return false;
    this.#stopping.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finished = await Promise.race([
      this.flush().then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), budgetMs))),
    ]);
    clearTimeout(timer);
    this.#giveUp.abort();
    if (!finished) {
      this.#ctx.log.warn(
        `mail: stop: ${this.#folding} message(s) not written to mail within ${budgetMs} ms; ` +
          `they stay in the journal for the next start`,
      );
    }
    this.#logReceived();
    this.#journal = null;
    return await journal.close();
  }

  #fold(records: JournalRecord[], replay = false): void {
    this.#folding += records.length;
    const work = this.#writeBurst(records, replay).catch((error) => {
      this.#ctx.log.error(`mail: folding ${records.length} message(s) failed: ${error}`);
    }).finally(() => {
      this.#folding -= records.length;
      this.#folds.delete(work);
      if (replay && --this.#replaying === 0) this.#covered = null;
    });
    this.#folds.add(work);
  }

  async #writeBurst(records: JournalRecord[], replay: boolean): Promise<void> {
    if (!(await this.#waitForIndex())) return; // stopping first: the journal keeps them
    const keep = this.#secondCopiesDropped(records, replay);
    if (keep.length > 0) {
      const release = await this.#foldSlot();
      let written: boolean;
      try {
        written = await this.#write(keep);
      } finally {
        release();
      }
      if (!written) return; // given up at stop: the journal keeps them
    }
    this.#journal?.release(records.map((r) => r.key));
  }

  /** Waits until folding may start; false when a stop gave up first. */
  async #waitForIndex(): Promise<boolean> {
    if (this.#indexed) return true;
    const signal = this.#giveUp.signal;
    if (!signal.aborted) {
      await Promise.race([
        this.#gate,
        new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve())),
      ]);
    }
    return this.#indexed;
  }

  /**
   * Leaves out records already in a mail (replayed ones a mail covers) and
   * second copies of a message id (another copy is in a mail or the journal).
   */
  #secondCopiesDropped(records: JournalRecord[], replay: boolean): JournalRecord[] {
    const { dedup, log } = this.#ctx;
    const covered = replay ? this.#covered : null;
    const keep: JournalRecord[] = [];
    let dropped = 0;
    for (const record of records) {
      if (covered?.has(record.key)) continue;
      const id = record.message.message_id;
      if (id !== undefined) {
        const key = dedupKey(record.provider, id);
        const canonical = dedup.canonical(key);
        if (canonical !== undefined && canonical !== record.key) {
          dedup.dropped(key, record.key);
          dropped++;
          continue;
        }
      }
      keep.push(record);
    }
    if (dropped > 0) {
      log.info(`mail: dropped ${dropped} second copy(ies) of messages already stored`);
    }
    return keep;
  }

  /** Writes the mail, retrying until it is on disk; false when given up at a stop. */
  async #write(records: JournalRecord[]): Promise<boolean> {
    const { store, index, dedup, events, log, faults, counters, settings } = this.#ctx;
    const [doc, text] = await this.#renderTurn(() => {
      const doc = burstMail(records);
      return [doc, renderMail(doc)] as const;
    });
    const id = doc.frontMatter.id;
    for (let attempt = 1;; attempt++) {
      try {
        const record = await store.create(doc, "inbound", { text });
        if (faults.clear("mail writes")) log.info("mail: mail writes succeed again");
        index.put(record);
        for (const r of records) {
          const messageId = r.message.message_id;
          if (messageId !== undefined) {
            dedup.addMail(
              dedupKey(r.provider, messageId),
              r.key,
              Date.parse(r.message.received_at),
            );
          }
        }
        counters.mails_written++;
        const session = doc.frontMatter.session;
        log.info(
          `mail: wrote ${id} (${records.length} message(s) via ${record.provider}, ` +
            `session ${session.id})`,
        );
        events.emit("mail.new", {
          id,
          provider: record.provider,
          direction: "inbound",
          session,
          message_count: records.length,
          received_at: isoOf(record.received_ms),
        });
        return true;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        faults.report("mail writes", error);
        if (this.#stopping.signal.aborted) {
          log.warn(
            `mail: stop: giving up writing mail ${id} (${String(reason)}); its ` +
              `${records.length} message(s) stay in the journal for the next start`,
          );
          return false;
        }
        const delay = Math.min(settings.writeRetryCapMs, 100 * 2 ** attempt);
        if (attempt === 1 || attempt % 10 === 0) {
          log.error(
            `mail: writing mail ${id} failed (attempt ${attempt}): ${reason}; ` +
              `its messages are safe in the journal; retrying every ${delay} ms`,
          );
        }
        await this.#sleep(delay);
      }
    }
  }

  /** Sleeps, cut short by a stop. */
  #sleep(ms: number): Promise<void> {
    const signal = this.#stopping.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done);
    });
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

  #countReceived(duplicate: boolean): void {
    if (duplicate) this.#received.duplicates++;
    else this.#received.messages++;
    if (this.#received.timer === undefined) {
      this.#received.timer = setTimeout(() => this.#logReceived(), RECEIVED_LOG_MS);
    }
  }

  #logReceived(): void {
    const r = this.#received;
    clearTimeout(r.timer);
    r.timer = undefined;
    if (r.messages === 0 && r.duplicates === 0) return;
    this.#ctx.log.info(
      `mail: received ${r.messages} message(s)` +
        (r.duplicates ? ` and ${r.duplicates} repeated message id(s)` : "") +
        ` in the last ${RECEIVED_LOG_MS / 1000} s at most`,
    );
    r.messages = 0;
    r.duplicates = 0;
  }
}
