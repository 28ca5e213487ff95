/**
 * A Telegram update as a chat message of courier's mail model: text or
 * caption, the conversation (private chat, group, supergroup, forum topic as
 * the thread), the sender, and whether the bot was mentioned.
 *
 * @module
 */
import { jsonObject } from "./common.ts";
import type { ChatMessage } from "./provider.ts";

type Json = Record<string, unknown>;

/** "Ann Lee", "@ann", or the id. */
function personName(user: Json | undefined): string | undefined {
  if (!user) return undefined;
  const full = [user.first_name, user.last_name].filter((p) => typeof p === "string" && p)
    .join(" ");
  if (full) return full;
  if (typeof user.username === "string") return `@${user.username}`;
  return typeof user.title === "string" ? user.title : undefined;
}

/** Who the bot is, for mention detection. */
export interface TelegramBot {
  /** The bot's user id. */
  botId: string;
  /** Its username (without `@`), when known. */
  username?: string;
}

/** Whether `message` mentions the bot or answers one of its messages. */
function mentionsBot(message: Json, text: string, bot: TelegramBot): boolean {
  const entities = Array.isArray(message.entities)
    ? message.entities
    : Array.isArray(message.caption_entities)
    ? message.caption_entities
    : [];
  const handle = bot.username ? `@${bot.username.toLowerCase()}` : undefined;
  for (const item of entities) {
    const entity = jsonObject(item);
    if (!entity) continue;
    const offset = Number(entity.offset), length = Number(entity.length);
    const said = text.slice(offset, offset + length).toLowerCase();
    if (entity.type === "mention" && handle && said === handle) return true;
    if (entity.type === "bot_command" && handle && said.endsWith(handle)) return true;
    if (entity.type === "text_mention" && String(jsonObject(entity.user)?.id) === bot.botId) {
      return true;
    }
  }
  const repliedTo = jsonObject(message.reply_to_message);
  // In a forum topic every message "replies" to the topic's creation: not a reply to the bot.
  return !!repliedTo && repliedTo.forum_topic_created === undefined &&
    String(jsonObject(repliedTo.from)?.id) === bot.botId;
}

/**
 * The chat message of a Telegram update, or why it is not taken (not a new
 * message, no text or caption, the bot's own).
 */
export function telegramMessage(update: Json, bot: TelegramBot): ChatMessage | string {
  const message = jsonObject(update.message);
  if (!message) {
    const kind = Object.keys(update).find((k) => k !== "update_id") ?? "empty";
    return `update kind ${kind} is not taken`;
  }
  const chat = jsonObject(message.chat);
  if (!chat || (typeof chat.id !== "number" && typeof chat.id !== "string")) {
    return "a message without a chat";
  }
  const text = typeof message.text === "string"
    ? message.text
    : typeof message.caption === "string"
    ? message.caption
    : "";
  if (text.trim() === "") return "a message without text or caption";
  const from = jsonObject(message.from);
  if (from && String(from.id) === bot.botId) return "the bot's own message";
  const senderChat = jsonObject(message.sender_chat);
  const chatId = String(chat.id);
  const topic = message.is_topic_message === true && message.message_thread_id !== undefined
    ? String(message.message_thread_id)
    : undefined;
  const session: ChatMessage["session"] = {
    id: chatId,
    type: chat.type === "private" ? "direct" : topic ? "thread" : "group",
  };
  const chatName = typeof chat.title === "string" ? chat.title : personName(chat);
  if (chatName) session.name = chatName;
  if (topic) session.thread_key = topic;
  const senderId = from ? String(from.id) : senderChat ? String(senderChat.id) : chatId;
  const reply: Json = { chat_id: chat.id, message_id: message.message_id };
  if (topic) reply.message_thread_id = message.message_thread_id;
  return {
    session,
    sender: { id: senderId, name: personName(from ?? senderChat) ?? senderId },
    text,
    time: typeof message.date === "number"
      ? new Date(message.date * 1000).toISOString()
      : undefined,
    // message_id is unique within its chat only.
    message_id: `${chatId}:${String(message.message_id)}`,
    extra: {
      raw: update,
      reply,
      mentioned: mentionsBot(message, text, bot),
      update_id: update.update_id,
      chat_type: chat.type,
    },
  };
}
