import type { MailLocation, MailStatus } from "./mailbox.ts";
import type { MailSender, MailSession } from "./mail_file.ts";
import { SortedList } from "./sorted_list.ts";
import { TimerQueue } from "./timers.ts";

/**
 * What the index keeps of each mail (the file holds the rest). Times are
 * ms since the epoch (a number costs less memory than its ISO text, and a
 * mailbox holds many thousands of these); every field is present, absent
 * optional ones `undefined`, so all records share one compact shape. Make
 * them with {@link makeRecord}.
 */
export interface MailRecord {
  /** `<provider>_<uid>`. */
  id: string;
  /** Its provider. */
  provider: string;
  /** `inbound` or `outbound`. */
  direction: "inbound" | "outbound";
  /** The folder it is in. */
  location: MailLocation;
  /** Its file name, when it is not the usual `<YYYYMMDDTHHMMSS>_<id>.md`. */
  file: string | undefined;
  /** When its first message was sent (ms). */
  timestamp_ms: number;
  /** When courier received its first message, or queued it (ms). */
  received_ms: number;
  /** The conversation. */
  session: MailSession;
  /** The first sender (inbound). */
  from: MailSender | undefined;
  /** The recipient (outbound). */
  to: string | undefined;
  /** The start of its text, one line, at most 81 characters (more than 80: cut). */
  preview: string;
  /** How many messages it folds. */
  message_count: number;
  /** Failed attempts so far. */
  attempts: number;
  /** Not claimable or not sent before this time (ms). */
  retry_ms: number | undefined;
  /** Why it was dead-lettered. */
  dead_reason: string | undefined;
  /** When it was completed, delivered or dead-lettered (ms; retention counts from then). */
  finished_ms: number | undefined;
  /** How often it was requeued from the dead letters. */
  requeues: number;
}

/** A {@link MailRecord} from its fields (the optional ones may be left out). */
export function makeRecord(
  fields:
    & Pick<
      MailRecord,
      | "id"
      | "provider"
      | "direction"
      | "location"
      | "timestamp_ms"
      | "received_ms"
      | "session"
      | "preview"
      | "message_count"
      | "attempts"
    >
    & Partial<MailRecord>,
): MailRecord {
  return {
    id: fields.id,
    provider: fields.provider,
    direction: fields.direction === "outbound" ? "outbound" : "inbound",
    location: fields.location,
    file: fields.file,
    timestamp_ms: fields.timestamp_ms,
    received_ms: fields.received_ms,
    session: fields.session,
    from: fields.from,
    to: fields.to,
    preview: fields.preview,
    message_count: fields.message_count,
    attempts: fields.attempts,
    retry_ms: fields.retry_ms,
    dead_reason: fields.dead_reason,
    finished_ms: fields.finished_ms,
    requeues: fields.requeues ?? 0,
  };
}

/** ms since the epoch of an ISO 8601 time (0 when it is not one). */
export function msOf(iso: string | undefined): number {
  const ms = iso === undefined ? NaN : Date.parse(iso);
  return Number.isFinite(ms) ? ms : 0;
}

/** The ISO 8601 text of a time in ms. */
export function isoOf(ms: number): string {
  return new Date(ms).toISOString();
}

/** The sort key of the index: when courier received the mail, then its id. */
export interface MailKey {
  /** When courier received it, in ms since the epoch. */
  readonly ms: number;
  /** The mail id (breaks ties). */
  readonly id: string;
}

/** One mail in the index. */
export interface IndexEntry extends MailKey {
  /** What is known of it. */
  record: MailRecord;
  /** Where it stands now. */
  status: MailStatus;
  /** An agent holds it (inbound only); set by the claims side. */
  claimed: boolean;
}

/** A query of {@link MailIndex.query}. */
export interface IndexQuery {
  /** Only these statuses (empty: every status). */
  statuses: readonly MailStatus[];
  /** Only this provider's mails. */
  provider?: string;
  /** Only inbound or only outbound mails. */
  direction?: "inbound" | "outbound";
  /** Only this conversation's mails. */
  session_id?: string;
  /** `oldest` first (default) or `newest` first. */
  order?: "oldest" | "newest";
  /** Start after this key (a cursor). */
  after?: MailKey;
  /** At most this many. */
  limit: number;
}

/** Every status, in the order listings merge them. */
const ALL_STATUSES: readonly MailStatus[] = [
  "new",
  "retrying",
  "claimed",
  "queued",
  "done",
  "dead",
];

/** The directions a mail in `status` can have. */
function directionsOf(status: MailStatus): ("inbound" | "outbound")[] {
  switch (status) {
    case "new":
    case "retrying":
    case "claimed":
      return ["inbound"];
    case "queued":
      return ["outbound"];
    default:
      return ["inbound", "outbound"];
  }
}

/** The folder holding mails in `status`. */
export function locationOf(status: MailStatus): MailLocation {
  switch (status) {
    case "done":
      return "archive";
    case "dead":
      return "deadletter";
    case "queued":
      return "outbound";
    default:
      return "inbound";
  }
}

/** Orders index keys: oldest first, then by id. */
export function compareKeys(a: MailKey, b: MailKey): number {
  return a.ms - b.ms || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

type List = SortedList<MailKey, IndexEntry>;

/**
 * The in-memory index of the mailbox: every mail by id, and sorted lists
 * by status and age (also per direction, per provider and per
 * conversation), so a listing or a claim of the oldest claimable mail
 * costs O(limit + log N) whatever the mailbox size. An inbound mail's
 * status follows its claim flag and retry time; a timer moves a retrying
 * mail back to `new` when its time comes, and every entry into `new` is
 * reported to `onClaimable`.
 */
export class MailIndex {
  readonly #now: () => number;
  readonly #byId = new Map<string, IndexEntry>();
  readonly #lists = new Map<string, List>();
  readonly #retries: TimerQueue<string>;
  readonly #sessions = new Map<string, MailSession>();
  readonly #senders = new Map<string, MailSender>();
  readonly #providers = new Map<string, string>();
  readonly #indexed = new Set<MailLocation>();
  #onClaimable: (entry: IndexEntry) => void = () => {};

  /**
   * Creates a `MailIndex`.
   *
   * @param options `now`: the clock in ms (default `Date.now`).
   */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#retries = new TimerQueue((id) => this.#retryDue(id), { now: this.#now });
  }

  /** Called (synchronously) whenever a mail becomes claimable. */
  set onClaimable(fn: (entry: IndexEntry) => void) {
    this.#onClaimable = fn;
  }

  /** Mails indexed. */
  get size(): number {
    return this.#byId.size;
  }

  /** The entry of `id`. */
  get(id: string): IndexEntry | undefined {
    return this.#byId.get(id);
  }

  /** Every entry (no order). */
  entries(): IterableIterator<IndexEntry> {
    return this.#byId.values();
  }

  /** The mails in `status`, oldest first (do not change the index while walking). */
  *each(status: MailStatus): Generator<IndexEntry> {
    this.refresh();
    const list = this.#lists.get(status);
    if (list) yield* list.walk();
  }

  /** Mails in `status` now. */
  count(status: MailStatus): number {
    this.refresh();
    return this.#lists.get(status)?.size ?? 0;
  }

  /** Applies retry times that have passed (the timer may be late on a busy loop). */
  refresh(): void {
    this.#retries.runDue();
  }

  /** Records that every mail of `location` is indexed. */
  markIndexed(location: MailLocation): void {
    this.#indexed.add(location);
  }

  /** Whether every mail of `location` is indexed. */
  isIndexed(location: MailLocation): boolean {
    return this.#indexed.has(location);
  }

  /** The folders a query over `statuses` needs that are not indexed yet. */
  missing(statuses: readonly MailStatus[]): MailLocation[] {
    const wanted = new Set((statuses.length ? statuses : ALL_STATUSES).map(locationOf));
    return [...wanted].filter((location) => !this.#indexed.has(location));
  }

  /**
   * Adds or replaces the entry of `record.id`. `claimed` sets the claim
   * flag (kept as it was when not given; always false outside `inbound/`).
   */
  put(record: MailRecord, options: { claimed?: boolean } = {}): IndexEntry {
    record.session = this.#internSession(record.session);
    if (record.from) record.from = this.#internSender(record.from);
    record.provider = this.#internProvider(record.provider);
    const old = this.#byId.get(record.id);
    const claimed = record.location === "inbound" && (options.claimed ?? old?.claimed ?? false);
    const entry: IndexEntry = {
      ms: record.received_ms,
      id: record.id,
      record,
      status: "new",
      claimed,
    };
    entry.status = this.#statusOf(entry);
    if (old) this.#unlist(old);
    this.#byId.set(entry.id, entry);
    this.#list(entry);
    if (entry.status === "retrying") this.#retries.schedule(entry.id, record.retry_ms!);
    if (entry.status === "new" && old?.status !== "new") this.#onClaimable(entry);
    return entry;
  }

  /** Sets the claim flag of an inbound mail; returns its entry. */
  setClaimed(id: string, claimed: boolean): IndexEntry | undefined {
    const entry = this.#byId.get(id);
    if (!entry) return undefined;
    if (entry.claimed === claimed) return entry;
    return this.put(entry.record, { claimed });
  }

  /** Removes the entry of `id`; returns it. */
  remove(id: string): IndexEntry | undefined {
    const entry = this.#byId.get(id);
    if (!entry) return undefined;
    this.#unlist(entry);
    this.#byId.delete(id);
    return entry;
  }

  /** The oldest claimable inbound mail matching the filter. */
  firstClaimable(filter: { provider?: string; session_id?: string } = {}): IndexEntry | undefined {
    return this.query({ statuses: ["new"], direction: "inbound", limit: 1, ...filter }).entries[0];
  }

  /**
   * The mails matching `query`, in its order, after its cursor, at most
   * `limit` of them; `more` says whether another page follows.
   */
  query(query: IndexQuery): { entries: IndexEntry[]; more: boolean } {
    this.refresh();
    const descending = query.order === "newest";
    const walkers: Generator<IndexEntry>[] = [];
    for (const status of query.statuses.length ? query.statuses : ALL_STATUSES) {
      for (const name of this.#listsFor(status, query)) {
        const list = this.#lists.get(name);
        if (list) walkers.push(list.walk({ from: query.after, exclusive: true, descending }));
      }
    }
    const heads = walkers.map((w) => w.next().value as IndexEntry | undefined);
    const entries: IndexEntry[] = [];
    while (entries.length <= query.limit) {
      let best = -1;
      for (let i = 0; i < heads.length; i++) {
        const head = heads[i];
        if (head === undefined) continue;
        if (best < 0) best = i;
        else {
          const order = compareKeys(head, heads[best]!);
          if (descending ? order > 0 : order < 0) best = i;
        }
      }
      if (best < 0) break;
      const entry = heads[best]!;
      heads[best] = walkers[best].next().value as IndexEntry | undefined;
      if (this.#matches(entry, query)) entries.push(entry);
    }
    const more = entries.length > query.limit;
    if (more) entries.length = query.limit;
    return { entries, more };
  }

  /** Forgets retry timers (at stop). */
  stop(): void {
    this.#retries.stop();
  }

  #matches(entry: IndexEntry, query: IndexQuery): boolean {
    const r = entry.record;
    return (query.provider === undefined || r.provider === query.provider) &&
      (query.direction === undefined || r.direction === query.direction) &&
      (query.session_id === undefined || r.session.id === query.session_id);
  }

  /** The lists to merge for `status` under `query`'s filters (the narrowest ones). */
  #listsFor(status: MailStatus, query: IndexQuery): string[] {
    if (query.session_id !== undefined) return [`${status}|c|${query.session_id}`];
    const directions = directionsOf(status).filter((d) =>
      query.direction === undefined || d === query.direction
    );
    if (query.provider !== undefined) {
      return directions.map((d) => `${status}|${d}|p|${query.provider}`);
    }
    if (query.direction !== undefined) return directions.map((d) => `${status}|${d}`);
    return [status];
  }

  #names(entry: IndexEntry): string[] {
    const { status, record } = entry;
    return [
      status,
      `${status}|${record.direction}`,
      `${status}|${record.direction}|p|${record.provider}`,
      `${status}|c|${record.session.id}`,
    ];
  }

  #list(entry: IndexEntry): void {
    for (const name of this.#names(entry)) {
      let list = this.#lists.get(name);
      if (!list) {
        list = new SortedList<MailKey, IndexEntry>(compareKeys);
        this.#lists.set(name, list);
      }
      list.add(entry);
    }
  }

  #unlist(entry: IndexEntry): void {
    for (const name of this.#names(entry)) {
      const list = this.#lists.get(name);
      if (!list) continue;
      list.delete(entry);
      if (list.size === 0) this.#lists.delete(name);
    }
  }

  #statusOf(entry: IndexEntry): MailStatus {
    const record = entry.record;
    switch (record.location) {
      case "archive":
        return "done";
      case "deadletter":
        return "dead";
      case "outbound":
        return "queued";
      case "inbound":
        if (entry.claimed) return "claimed";
        if (record.retry_ms !== undefined && record.retry_ms > this.#now()) return "retrying";
        return "new";
    }
  }

  #retryDue(id: string): void {
    const entry = this.#byId.get(id);
    if (!entry || entry.status !== "retrying") return;
    if (this.#statusOf(entry) !== "retrying") this.put(entry.record);
  }

  #internSession(session: MailSession): MailSession {
    const key = `${session.id}\0${session.type}\0${session.name ?? ""}\0${
      session.thread_key ?? ""
    }`;
    const known = this.#sessions.get(key);
    if (known) return known;
    this.#sessions.set(key, session);
    return session;
  }

  #internProvider(provider: string): string {
    const known = this.#providers.get(provider);
    if (known !== undefined) return known;
    this.#providers.set(provider, provider);
    return provider;
  }

  #internSender(sender: MailSender): MailSender {
    const key = `${sender.id}\0${sender.name}`;
    const known = this.#senders.get(key);
    if (known) return known;
    this.#senders.set(key, sender);
    return sender;
  }
}
