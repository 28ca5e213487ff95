import { parse, stringify } from "yaml";
import { parseFrontMatterFast } from "./front_matter.ts";

/** Who sent a message. */
export interface MailSender {
  /** The sender's id on the provider. */
  id: string;
  /** Display name (the id when none was given). */
  name: string;
}

/** The kind of conversation a mail comes from. */
export type SessionType = "direct" | "group" | "thread";

/** The conversation a mail belongs to. */
export interface MailSession {
  /** The conversation's id on the provider (for outbound: the recipient). */
  id: string;
  /** `direct`, `group` or `thread`. */
  type: SessionType;
  /** Display name of the conversation, when known. */
  name?: string;
  /** The thread inside the conversation, when any. */
  thread_key?: string;
}

/** One message folded into a mail. */
export interface MailMessage {
  /** The provider's message id, when the webhook sent one (deduplicated). */
  message_id?: string;
  /** The key courier acknowledged the message with (`pending_key`). */
  pending_key: string;
  /** Who sent it. */
  sender: MailSender;
  /** When it was sent (the webhook's `timestamp`, else when courier received it). ISO 8601. */
  time: string;
  /** When courier received it. ISO 8601. */
  received_at: string;
  /** Its text. */
  text: string;
  /** Anything else the webhook sent with this message. */
  extra?: Record<string, unknown>;
}

/** One failed attempt (an agent's `fail`, or a failed outbound delivery). */
export interface MailFailure {
  /** When it failed. ISO 8601. */
  at: string;
  /** Why, as given by the agent or the HTTP error. */
  reason: string;
  /** The agent that reported it (inbound only). */
  agent_id?: string;
  /** Whether the agent allowed a retry. */
  retryable?: boolean;
}

/** Processing state kept in the mail itself. */
export interface MailDelivery {
  /** Failed attempts so far. */
  attempts: number;
  /** Not claimable (inbound) or not sent (outbound) before this time. ISO 8601. */
  retry_at?: string;
  /** Every failed attempt, oldest first. */
  failures: MailFailure[];
  /** When an agent completed it (inbound). */
  completed_at?: string;
  /** The agent that completed it (inbound). */
  completed_by?: string;
  /** When it was delivered (outbound). */
  delivered_at?: string;
  /** When it was dead-lettered. */
  dead_at?: string;
  /** Why it was dead-lettered. */
  dead_reason?: string;
  /** Each time it was requeued from the dead letters: when, and what it had been through. */
  requeued?: MailRequeue[];
}

/** A requeue of a dead mail (`POST /api/v1/messages/<id>/requeue`). */
export interface MailRequeue {
  /** When it was requeued. ISO 8601. */
  at: string;
  /** Its failed attempts before (they start again from 0). */
  attempts: number;
  /** Why it had been dead-lettered. */
  dead_reason?: string;
  /** When it had been dead-lettered. */
  dead_at?: string;
}

/** A mail's YAML front matter. */
export interface MailFrontMatter {
  /** `<provider>_<uid>`. */
  id: string;
  /** The provider name (`lark`, `dingtalk`, `webhook`…). */
  provider: string;
  /** `inbound` (from a chat) or `outbound` (to be sent). */
  direction: "inbound" | "outbound";
  /** The conversation. */
  session: MailSession;
  /** Who wrote (`from`: the first sender; `senders`: everyone) or whom it is for (`to`). */
  participants: { from?: MailSender; senders?: MailSender[]; to?: { id: string } };
  /** When the first message was sent. ISO 8601. */
  timestamp: string;
  /** When courier received the first message (outbound: when it was queued). ISO 8601. */
  received_at: string;
  /** The content type (`text`). */
  type: string;
  /** The whole burst as plain text and as Markdown. */
  content: { text: string; markdown: string };
  /** The individual messages folded in, oldest first. */
  messages: MailMessage[];
  /** The mail this one answers (outbound). */
  reply_to?: string;
  /** Anything else the webhook sent. */
  metadata: { extra: Record<string, unknown> };
  /** Processing state: attempts, retries, completion, dead-lettering. */
  delivery: MailDelivery;
}

/** A mail: front matter plus the readable Markdown body. */
export interface MailDocument {
  /** The YAML front matter. */
  frontMatter: MailFrontMatter;
  /** The readable conversation. */
  body: string;
}

/** A mail file could not be parsed. */
export class MailFormatError extends Error {
  /**
   * Creates a `MailFormatError`.
   *
   * @param message What is wrong with the file.
   * @param options The underlying parse error.
   */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "MailFormatError";
  }
}

/**
 * Serialises a mail as a Markdown file with a YAML front matter (written
 * by the `yaml` library: no folding, no anchors, every string quoted where
 * YAML needs it).
 */
export function renderMail(doc: MailDocument): string {
  const yaml = stringify(doc.frontMatter, {
    lineWidth: 0,
    aliasDuplicateObjects: false,
  });
  const body = doc.body.endsWith("\n") ? doc.body : doc.body + "\n";
  return `---\n${yaml}---\n\n${body}`;
}

/**
 * Parses a mail file written by {@link renderMail}.
 *
 * @throws {MailFormatError} when the front matter is missing or not a mail.
 */
export function parseMail(text: string): MailDocument {
  if (!text.startsWith("---\n")) throw new MailFormatError("missing front matter");
  const end = text.indexOf("\n---\n", 3);
  if (end < 0) throw new MailFormatError("unterminated front matter");
  const yamlText = text.slice(4, end + 1);
  let value: unknown;
  try {
    value = parseFrontMatterFast(yamlText); // what the renderer writes, ten times faster
  } catch {
    value = undefined;
  }
  try {
    value ??= parse(yamlText);
  } catch (error) {
    throw new MailFormatError(`invalid YAML front matter: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const fm = value as MailFrontMatter;
  if (
    typeof fm !== "object" || fm === null || typeof fm.id !== "string" ||
    typeof fm.provider !== "string" || (fm.direction !== "inbound" && fm.direction !== "outbound")
  ) {
    throw new MailFormatError("front matter lacks id, provider or direction");
  }
  fm.messages ??= [];
  fm.metadata ??= { extra: {} };
  fm.delivery ??= { attempts: 0, failures: [] };
  fm.delivery.failures ??= [];
  fm.delivery.attempts ??= 0;
  let body = text.slice(end + 5);
  if (body.startsWith("\n")) body = body.slice(1);
  return { frontMatter: fm, body };
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** `YYYYMMDDTHHMMSS` in UTC. */
export function compactUtc(date: Date): string {
  return `${date.getUTCFullYear()}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}T` +
    `${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}`;
}

/** The file name of a mail: `<YYYYMMDDTHHMMSS>_<provider>_<uid>.md`, time in UTC. */
export function mailFileName(fm: Pick<MailFrontMatter, "id" | "received_at">): string {
  return `${compactUtc(new Date(fm.received_at))}_${fm.id}.md`;
}

const UID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** A new random mail uid: 16 lowercase base-32 characters (80 bits). */
export function newUid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let uid = "";
  for (const b of bytes) uid += UID_ALPHABET[b & 31];
  return uid;
}

function readableTime(iso: string): string {
  return iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}

/** The conversation as Markdown: one paragraph per message, headed by sender and time. */
export function conversationMarkdown(messages: MailMessage[]): string {
  return messages.map((m) =>
    `**${escapeMarkdown(m.sender.name)}** · ${readableTime(m.time)}\n\n${m.text}`
  ).join("\n\n");
}

function escapeMarkdown(text: string): string {
  return text.replace(/([\\*_`[\]])/g, "\\$1");
}

/** Options of {@link buildInboundMail}. */
export interface BuildInboundOptions {
  /** The mail's uid (default: a new random one). */
  uid?: string;
}

/**
 * Folds a burst of messages of one conversation into an inbound mail: the
 * first message gives `timestamp`, `received_at` and `participants.from`;
 * the extras of all messages are merged into `metadata.extra`.
 */
export function buildInboundMail(
  head: { provider: string; session: MailSession },
  messages: MailMessage[],
  options: BuildInboundOptions = {},
): MailDocument {
  const first = messages[0];
  const senders: MailSender[] = [];
  for (const m of messages) {
    if (!senders.some((s) => s.id === m.sender.id)) senders.push(m.sender);
  }
  const extra: Record<string, unknown> = {};
  for (const m of messages) Object.assign(extra, m.extra ?? {});
  const markdown = conversationMarkdown(messages);
  const session: MailSession = { id: head.session.id, type: head.session.type };
  if (head.session.name !== undefined) session.name = head.session.name;
  if (head.session.thread_key !== undefined) session.thread_key = head.session.thread_key;
  const frontMatter: MailFrontMatter = {
    id: `${head.provider}_${options.uid ?? newUid()}`,
    provider: head.provider,
    direction: "inbound",
    session,
    participants: senders.length > 1 ? { from: first.sender, senders } : { from: first.sender },
    timestamp: first.time,
    received_at: first.received_at,
    type: "text",
    content: { text: messages.map((m) => m.text).join("\n"), markdown },
    messages,
    metadata: { extra },
    delivery: { attempts: 0, failures: [] },
  };
  const title = session.name ?? session.id;
  const where = session.thread_key ? ` (thread ${session.thread_key})` : "";
  const body = `# ${escapeMarkdown(title)}${escapeMarkdown(where)}\n\n` +
    `${messages.length} message${messages.length === 1 ? "" : "s"} via ${head.provider}, ` +
    `${session.type} conversation.\n\n${markdown}\n`;
  return { frontMatter, body };
}

/** Options of {@link buildOutboundMail}. */
export interface BuildOutboundOptions {
  /** The mail this one answers. */
  replyTo?: string;
  /** When it was queued (default: now). */
  now?: Date;
  /** The mail's uid (default: a new random one). */
  uid?: string;
  /** Anything else to send along. */
  extra?: Record<string, unknown>;
}

/** An outbound mail: `text` to `to` through `provider`. */
export function buildOutboundMail(
  provider: string,
  message: { to: string; text: string },
  options: BuildOutboundOptions = {},
): MailDocument {
  const now = (options.now ?? new Date()).toISOString();
  const frontMatter: MailFrontMatter = {
    id: `${provider}_${options.uid ?? newUid()}`,
    provider,
    direction: "outbound",
    session: { id: message.to, type: "direct" },
    participants: { to: { id: message.to } },
    timestamp: now,
    received_at: now,
    type: "text",
    content: { text: message.text, markdown: message.text },
    messages: [],
    metadata: { extra: options.extra ?? {} },
    delivery: { attempts: 0, failures: [] },
  };
  if (options.replyTo !== undefined) frontMatter.reply_to = options.replyTo;
  const reply = options.replyTo ? ` (reply to ${options.replyTo})` : "";
  const body = `# To ${escapeMarkdown(message.to)} via ${provider}${escapeMarkdown(reply)}\n\n` +
    `${message.text}\n`;
  return { frontMatter, body };
}

/** A mail as the API returns it: the front matter as JSON plus `body`. */
export function mailJson(doc: MailDocument): Record<string, unknown> {
  return { ...doc.frontMatter, body: doc.body };
}
