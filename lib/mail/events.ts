/** The kinds of event on `GET /api/v1/events`. */
export type MailEventType =
  | "mail.new"
  | "mail.claimed"
  | "mail.released"
  | "mail.done"
  | "mail.retrying"
  | "mail.dead"
  | "outbound.queued"
  | "outbound.retrying"
  | "outbound.sent"
  | "outbound.dead";

/** Every {@link MailEventType}. */
export const MAIL_EVENT_TYPES: readonly MailEventType[] = [
  "mail.new",
  "mail.claimed",
  "mail.released",
  "mail.done",
  "mail.retrying",
  "mail.dead",
  "outbound.queued",
  "outbound.retrying",
  "outbound.sent",
  "outbound.dead",
];

/** One event. */
export interface MailEvent {
  /** Increasing, also across daemon restarts (it starts from the start time in µs). */
  id: number;
  /** What happened. */
  type: MailEventType;
  /** When. ISO 8601. */
  at: string;
  /** The mail's id and what changed (never a mail's text). */
  data: Record<string, unknown>;
}

/** Events a client may have missed and still get (`Last-Event-ID`). */
export const EVENT_BUFFER_SIZE = 1024;

/** What {@link MailEvents.since} returns. */
export interface EventsSince {
  /** The events after the given id that are still buffered. */
  events: MailEvent[];
  /** False when some were already dropped from the buffer (the client must resync). */
  complete: boolean;
}

/** Receives events as they happen; `close` when the stream ends (shutdown). */
export interface EventListener {
  /** Called with each event. */
  event(event: MailEvent): void;
  /** Called once when no more events will come. */
  close(): void;
}

/**
 * The mail service's event stream: ids, a bounded replay buffer, and
 * subscribers (the `GET /api/v1/events` streams). Emitting never blocks:
 * slow subscribers are the HTTP layer's business.
 */
export class MailEvents {
  readonly #now: () => number;
  readonly #size: number;
  readonly #listeners = new Set<EventListener>();
  #buffer: MailEvent[] = [];
  #lastId: number;
  #closed = false;

  /**
   * Creates a `MailEvents`.
   *
   * @param options `now`: the clock in ms; `bufferSize`: events kept for replay.
   */
  constructor(options: { now?: () => number; bufferSize?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#size = options.bufferSize ?? EVENT_BUFFER_SIZE;
    this.#lastId = Math.floor(Date.now()) * 1000;
  }

  /** The id of the last event (the start id before any). */
  get lastId(): number {
    return this.#lastId;
  }

  /** Subscribers now. */
  get listeners(): number {
    return this.#listeners.size;
  }

  /** Whether the stream has ended (the service stopped). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Records and broadcasts an event. */
  emit(type: MailEventType, data: Record<string, unknown>): MailEvent {
    const event: MailEvent = {
      id: ++this.#lastId,
      type,
      at: new Date(this.#now()).toISOString(),
      data,
    };
    this.#buffer.push(event);
    if (this.#buffer.length >= 2 * this.#size) this.#buffer = this.#buffer.slice(-this.#size);
    for (const listener of this.#listeners) listener.event(event);
    return event;
  }

  /** The buffered events after `lastId`. */
  since(lastId: number): EventsSince {
    const buffer = this.#buffer.length > this.#size
      ? this.#buffer.slice(-this.#size)
      : this.#buffer;
    if (lastId > this.#lastId) return { events: [], complete: false };
    if (lastId === this.#lastId) return { events: [], complete: true };
    const oldest = buffer[0]?.id ?? this.#lastId + 1;
    const events = buffer.filter((e) => e.id > lastId);
    return { events, complete: lastId >= oldest - 1 };
  }

  /** Adds a subscriber; returns the function that removes it. */
  subscribe(listener: EventListener): () => void {
    if (this.#closed) {
      listener.close();
      return () => {};
    }
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Ends every stream (shutdown). */
  close(): void {
    this.#closed = true;
    for (const listener of this.#listeners) listener.close();
    this.#listeners.clear();
  }
}
