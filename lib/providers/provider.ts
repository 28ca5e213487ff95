/**
 * The one small interface every chat platform implements. The mail service
 * uses it; a platform module knows nothing of mails, journals or HTTP
 * routing, only its platform's protocol.
 *
 * @module
 */

/** The platforms courier speaks. */
export type ProviderType = "slack" | "lark" | "dingtalk" | "telegram";

/** The kind of conversation a message came from (as courier's mail model has it). */
export type ChatSessionType = "direct" | "group" | "thread";

/**
 * One chat message in courier's mail model. Structurally the mail service's
 * inbound message: it becomes a message of a mail as it is.
 */
export interface ChatMessage {
  /** The conversation (channel, chat, group) and, for threads, the thread key. */
  session: { id: string; type: ChatSessionType; name?: string; thread_key?: string };
  /** Who sent it (platform user id and display name; the id when no name is known). */
  sender: { id: string; name: string };
  /** Its text (rich text flattened to text). */
  text: string;
  /** When it was sent, ISO 8601, if the platform said. */
  time?: string;
  /** The platform's id of the message: the dedup key (a platform retry repeats it). */
  message_id: string;
  /**
   * `raw`: the platform's event as received; `reply`: what a reply to this
   * message needs (platform-specific, e.g. Slack `{channel, thread_ts}`,
   * DingTalk `{session_webhook, expires_at}`); `mentioned`: whether the bot
   * was mentioned; anything else the platform module wants to keep.
   */
  extra:
    & { raw: unknown; reply: Record<string, unknown>; mentioned?: boolean }
    & Record<
      string,
      unknown
    >;
}

/** What a webhook request turned out to be, after verification. */
export type WebhookOutcome =
  /** Verification failed (bad or stale signature, wrong token): answer `status`, store nothing. */
  | { kind: "rejected"; status: 400 | 401 | 403; reason: string }
  /** A handshake or an event courier does not take (challenge, bot's own message): answer it, store nothing. */
  | { kind: "answer"; response: Response; note?: string }
  /** Messages to store; answer with `respond()` once they are durable. */
  | { kind: "messages"; messages: ChatMessage[]; respond: () => Response };

/** What a long connection hands over; resolves once the messages are durable (then it acks). */
export type MessageSink = (messages: ChatMessage[]) => Promise<void>;

/** A message to send, as the mail service's outbound mail has it. */
export interface OutboundChatMessage {
  /** The conversation (or user) to send to. */
  to: string;
  /** The text. */
  text: string;
  /**
   * When it answers a mail: the `extra.reply` of the message it answers
   * (the same conversation and thread), and its `message_id`.
   */
  replyTo?: { message_id: string; reply: Record<string, unknown>; session_id: string };
  /** Platform options passed through from the outbound request's `extra`. */
  extra?: Record<string, unknown>;
  /**
   * A key that stays the same when the same message is sent again (the
   * outbound mail's id): platforms that deduplicate sends (Lark's `uuid`)
   * then deliver a retried send once.
   */
  idempotencyKey?: string;
}

/** What a send returned. */
export interface SendResult {
  /** The platform's id of the message sent, when it says. */
  message_id?: string;
}

/** A failed platform call (send, check, connection open). */
export class ProviderError extends Error {
  /** Whether trying again later may succeed (network, 429, 5xx). */
  readonly retryable: boolean;
  /** The platform asked to wait this long before the next try (429 `Retry-After`, `retry_after`). */
  readonly retryAfterMs?: number;
  /** The platform's own error code/message (`ok: false` error, `errcode`, `code`), kept as it said. */
  readonly platformError?: string;

  /**
   * Creates a `ProviderError`.
   *
   * @param message What failed and what to do about it (never a secret).
   * @param options Whether to retry, after how long, the platform's error.
   */
  constructor(
    message: string,
    options: {
      retryable: boolean;
      retryAfterMs?: number;
      platformError?: string;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "ProviderError";
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.platformError = options.platformError;
  }
}

/** What `courier provider check` reports. */
export interface CheckResult {
  /** Whether the credentials work. */
  ok: boolean;
  /** Who the platform says we are (bot name/id), or what is wrong with the credentials. */
  detail: string;
}

/** A provider's live state, for `courier provider list`, `status` and `/health`. */
export interface ProviderStatus {
  /** Connected over its long connection (always `null` in webhook mode). */
  connected: boolean | null;
  /** The last error, if any (never a secret). */
  last_error?: string;
  /** When the last error happened. */
  last_error_at?: string;
  /** Messages dropped by `allow_from`/`require_mention` since the provider was created. */
  dropped?: number;
}

/** One configured platform connection (`config.json` `providers.<name>`). */
export interface Provider {
  /** The provider name: the mailbox provider (`inbound/<name>/`). */
  readonly name: string;
  /** The platform. */
  readonly type: ProviderType;
  /** `webhook`, or the platform's long connection (`socket`, `stream`, `polling`). */
  readonly mode: string;
  /**
   * Verifies a webhook request from its raw bytes (before any parsing), then
   * parses it. Never throws for bad input: that is a `rejected` outcome.
   */
  handleWebhook(request: Request, body: Uint8Array): Promise<WebhookOutcome>;
  /**
   * Runs the long connection until `signal` aborts: opens it, hands each
   * batch of messages to `sink` and acknowledges them to the platform only
   * after `sink` resolved, reconnects with backoff on errors and
   * disconnects. Absent in webhook mode and in webhook-only providers.
   */
  connect?(sink: MessageSink, signal: AbortSignal): Promise<void>;
  /**
   * Sends a message (a reply goes to the conversation and thread of the
   * message it answers).
   *
   * @throws {ProviderError} with `retryable`/`retryAfterMs` set as the platform answered.
   */
  send(message: OutboundChatMessage, signal?: AbortSignal): Promise<SendResult>;
  /** Calls the platform's identity endpoint with the configured credentials. */
  check(signal?: AbortSignal): Promise<CheckResult>;
  /** Its live state. */
  status(): ProviderStatus;
}
