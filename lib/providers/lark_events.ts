/**
 * Lark/Feishu event subscription: decrypting `{"encrypt": …}` bodies, the
 * `X-Lark-Signature` of a request, and `im.message.receive_v1` events as
 * courier's chat messages. Pure functions; the provider is in `lark.ts`.
 *
 * @module
 */
import { fromBase64, sha256, toHex } from "./common.ts";
import { jsonObject as asRecord } from "./common.ts";
import type { ChatMessage, ChatSessionType } from "./provider.ts";

const encoder = new TextEncoder();

/** A Lark payload that could not be decrypted (wrong encrypt key, or not Lark's). */
export class LarkDecryptError extends Error {
  /**
   * Creates a `LarkDecryptError`.
   *
   * @param message Why (never the key).
   */
  constructor(message: string) {
    super(message);
    this.name = "LarkDecryptError";
  }
}

/**
 * Decrypts the `encrypt` field of a Lark event: base64 of a 16-byte IV and
 * the AES-256-CBC ciphertext (PKCS#7 padding) keyed by the SHA-256 of the
 * app's Encrypt Key.
 *
 * @example
 * ```ts
 * await decryptLarkEvent("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="); // "hello world"
 * ```
 *
 * @throws {LarkDecryptError} when it is not base64, not whole blocks, or does not decrypt.
 */
export async function decryptLarkEvent(encryptKey: string, encrypted: string): Promise<string> {
  let data: Uint8Array;
  try {
    data = fromBase64(encrypted.trim());
  } catch {
    throw new LarkDecryptError("the encrypt field is not base64");
  }
  if (data.length < 32 || data.length % 16 !== 0) {
    throw new LarkDecryptError("the encrypt field is not an IV and whole AES blocks");
  }
  const key = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(await sha256(encryptKey)),
    { name: "AES-CBC" },
    false,
    ["decrypt"],
  );
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-CBC", iv: data.slice(0, 16) },
      key,
      data.slice(16),
    );
    return new TextDecoder("utf-8", { fatal: true }).decode(plain);
  } catch {
    throw new LarkDecryptError(
      "the encrypt field does not decrypt with the configured encrypt_key",
    );
  }
}

/**
 * `X-Lark-Signature` of a request: the lower-case hex SHA-256 of
 * `timestamp + nonce + encryptKey` (UTF-8) followed by the raw body bytes.
 */
export async function larkSignature(
  timestamp: string,
  nonce: string,
  encryptKey: string,
  body: Uint8Array,
): Promise<string> {
  const prefix = encoder.encode(timestamp + nonce + encryptKey);
  const all = new Uint8Array(prefix.length + body.length);
  all.set(prefix);
  all.set(body, prefix.length);
  return toHex(await sha256(all));
}

/** A mention in a Lark message (`@_user_1` in the text stands for it). */
export interface LarkMention {
  /** The placeholder in the text (`@_user_1`). */
  key: string;
  /** Who is mentioned. */
  id?: { open_id?: string; union_id?: string; user_id?: string };
  /** Their display name. */
  name?: string;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function mentionList(value: unknown): LarkMention[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((m) => {
    const r = asRecord(m);
    const key = str(r?.key);
    return key ? [{ key, id: asRecord(r?.id), name: str(r?.name) } as LarkMention] : [];
  });
}

/** How a mention reads in the text: `@Name`, or nothing for the bot itself. */
function mentionText(mention: LarkMention | undefined, botOpenId?: string): string | undefined {
  if (!mention) return undefined;
  if (botOpenId && mention.id?.open_id === botOpenId) return "";
  return `@${mention.name ?? mention.id?.open_id ?? mention.key.replace(/^@/, "")}`;
}

/** Replaces `@_user_N` placeholders by `@Name` (dropping the bot's own mention) and `@_all` by `@all`. */
export function resolveMentions(
  text: string,
  mentions: readonly LarkMention[],
  botOpenId?: string,
): string {
  // Longest keys first, so `@_user_1` does not eat into `@_user_10`.
  const sorted = [...mentions].sort((a, b) => b.key.length - a.key.length);
  let out = text;
  for (const mention of sorted) {
    out = out.split(mention.key).join(mentionText(mention, botOpenId) ?? mention.key);
  }
  return out.replaceAll("@_all", "@all").replace(/[ \t]{2,}/g, " ").trim();
}

const PLACEHOLDERS: Record<string, string> = {
  image: "[image]",
  audio: "[audio]",
  sticker: "[sticker]",
  interactive: "[card]",
  share_chat: "[shared chat]",
  share_user: "[shared contact]",
  merge_forward: "[forwarded messages]",
  location: "[location]",
  todo: "[task]",
};

function postElementText(
  element: Record<string, unknown>,
  mentions: readonly LarkMention[],
  botOpenId?: string,
): string {
  switch (element.tag) {
    case "text":
    case "md":
    case "code_block":
      return typeof element.text === "string" ? element.text : "";
    case "a":
      return str(element.text) ?? str(element.href) ?? "";
    case "at": {
      const id = str(element.user_id) ?? "";
      if (id === "all" || id === "@_all") return "@all";
      const byKey = mentionText(mentions.find((m) => m.key === id), botOpenId);
      return byKey ?? `@${str(element.user_name) ?? id}`;
    }
    case "img":
      return "[image]";
    case "media":
      return "[video]";
    case "emotion":
      return `:${str(element.emoji_type) ?? "emoji"}:`;
    case "hr":
      return "---";
    default:
      return "";
  }
}

/** Flattens a `post` (rich text) content to text: its title, then one line per paragraph. */
export function flattenPost(
  post: Record<string, unknown>,
  mentions: readonly LarkMention[] = [],
  botOpenId?: string,
): string {
  // A received post is `{title, content}`; a post as sent may be wrapped by locale.
  const body = Array.isArray(post.content)
    ? post
    : Object.values(post).map(asRecord).find((v) => Array.isArray(v?.content)) ?? post;
  const lines: string[] = [];
  if (str(body.title)) lines.push(body.title as string);
  for (const paragraph of Array.isArray(body.content) ? body.content : []) {
    if (!Array.isArray(paragraph)) continue;
    const line = paragraph
      .map((e) => asRecord(e))
      .filter((e): e is Record<string, unknown> => e !== undefined)
      .map((e) => postElementText(e, mentions, botOpenId))
      .join("");
    lines.push(line.replace(/[ \t]{2,}/g, " ").trim());
  }
  return lines.join("\n").replace(/\n{3,}/g, "\n\n").trim();
}

/** The text of a Lark message: text and post as text, other kinds as a `[kind]` placeholder. */
export function larkMessageText(
  messageType: string,
  content: string,
  mentions: readonly LarkMention[] = [],
  botOpenId?: string,
): string {
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = asRecord(JSON.parse(content));
  } catch {
    parsed = undefined;
  }
  if (messageType === "text") {
    const text = typeof parsed?.text === "string" ? parsed.text : content;
    return resolveMentions(text, mentions, botOpenId);
  }
  if (messageType === "post" && parsed) return flattenPost(parsed, mentions, botOpenId);
  if ((messageType === "file" || messageType === "media") && str(parsed?.file_name)) {
    return `[${messageType === "file" ? "file" : "video"}: ${parsed?.file_name}]`;
  }
  return PLACEHOLDERS[messageType] ?? `[${messageType}]`;
}

/** Why an event carries no message for courier. */
export interface LarkSkip {
  /** For the log line (ids only). */
  skip: string;
}

function sessionType(chatType: string | undefined, threadId: string | undefined): ChatSessionType {
  if (threadId) return "thread";
  return chatType === "p2p" ? "direct" : "group";
}

/**
 * An `im.message.receive_v1` event (schema 2.0, decrypted) as a chat
 * message: session (`chat_id`; a message in a thread has type `thread` and
 * the `thread_id` as thread key), sender (`open_id`), text (mentions
 * resolved), `message_id`, and in `extra` the event without its
 * verification token (`raw`), what a reply needs (`reply`: `message_id`,
 * `chat_id`, `chat_type`, `thread_id`, `root_id`) and whether the bot was
 * mentioned. When the bot's `open_id` is unknown, any mention counts.
 */
export function larkEventToMessage(
  envelope: Record<string, unknown>,
  botOpenId?: string,
): ChatMessage | LarkSkip {
  const header = asRecord(envelope.header) ?? {};
  const event = asRecord(envelope.event) ?? {};
  const message = asRecord(event.message);
  const sender = asRecord(event.sender);
  const messageId = str(message?.message_id);
  const chatId = str(message?.chat_id);
  if (!message || !messageId || !chatId) {
    return { skip: "a message event without message_id or chat_id" };
  }
  const senderIds = asRecord(sender?.sender_id) ?? {};
  const senderId = str(senderIds.open_id) ?? str(senderIds.union_id) ?? str(senderIds.user_id);
  if (!senderId) return { skip: `message ${messageId} has no sender id` };
  if (botOpenId && senderId === botOpenId) return { skip: `message ${messageId} is the bot's own` };
  const mentions = mentionList(message.mentions);
  const mentioned = botOpenId
    ? mentions.some((m) => m.id?.open_id === botOpenId)
    : mentions.length > 0;
  const threadId = str(message.thread_id);
  const chatType = str(message.chat_type);
  const created = Number(message.create_time);
  const { token: _token, ...headerWithoutToken } = header;
  const reply: Record<string, unknown> = { message_id: messageId, chat_id: chatId };
  if (chatType) reply.chat_type = chatType;
  if (threadId) reply.thread_id = threadId;
  if (str(message.root_id)) reply.root_id = message.root_id;
  return {
    session: {
      id: chatId,
      type: sessionType(chatType, threadId),
      ...(threadId ? { thread_key: threadId } : {}),
    },
    sender: { id: senderId, name: senderId },
    text: larkMessageText(
      str(message.message_type) ?? "text",
      typeof message.content === "string" ? message.content : "",
      mentions,
      botOpenId,
    ),
    ...(Number.isFinite(created) && created > 0 ? { time: new Date(created).toISOString() } : {}),
    message_id: messageId,
    extra: {
      raw: { ...envelope, header: headerWithoutToken },
      reply,
      mentioned,
      event_id: header.event_id,
      message_type: message.message_type,
      sender_ids: senderIds,
    },
  };
}
