/**
 * DingTalk robot messages: the `sign` of a callback (and of a custom robot
 * webhook), a robot message as courier's chat message, and DingTalk's own
 * errors in an answer. Pure functions; the provider is in `dingtalk.ts`.
 *
 * @module
 */
import { hmacSha256, type PlatformFault, toBase64 } from "./common.ts";
import { jsonObject as asRecord } from "./common.ts";
import type { ChatMessage } from "./provider.ts";

/** The stream topic (and callback) of messages sent to a robot. */
export const DINGTALK_BOT_TOPIC = "/v1.0/im/bot/messages/get";

/** How far a callback's `timestamp` header may be from now (DingTalk's rule: 1 hour). */
export const DINGTALK_TIMESTAMP_WINDOW_MS = 3600_000;

/**
 * DingTalk's `sign`: base64 of the HMAC-SHA256 of `"{timestamp}\n{secret}"`
 * keyed by `secret` (the app secret for callbacks, the `SEC…` secret for a
 * custom robot webhook, where it is URL-encoded into the query).
 */
export async function dingTalkSign(timestamp: string, secret: string): Promise<string> {
  return toBase64(await hmacSha256(secret, `${timestamp}\n${secret}`));
}

function str(value: unknown): string | undefined {
  if (typeof value === "number") return String(value);
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** The text of a robot message: text and rich text as text, other kinds as a `[kind]` placeholder. */
export function dingTalkMessageText(message: Record<string, unknown>): string {
  const type = str(message.msgtype) ?? "text";
  const content = asRecord(message.content) ?? {};
  switch (type) {
    case "text":
      return String(asRecord(message.text)?.content ?? "").trim();
    case "richText": {
      const parts = Array.isArray(content.richText) ? content.richText : [];
      return parts
        .map((part) => {
          const p = asRecord(part) ?? {};
          if (typeof p.text === "string") return p.text;
          return p.type === "picture" || p.downloadCode || p.pictureDownloadCode ? "[picture]" : "";
        })
        .filter((t) => t !== "")
        .join("\n")
        .trim();
    }
    case "picture":
      return "[picture]";
    case "audio":
      return str(content.recognition) ?? "[audio]";
    case "file":
      return str(content.fileName) ? `[file: ${content.fileName}]` : "[file]";
    default:
      return `[${type}]`;
  }
}

/** Why a robot message is not taken. */
export interface DingTalkSkip {
  /** For the log line (ids only). */
  skip: string;
}

/**
 * A robot message (the body of a callback, or the `data` of a stream
 * CALLBACK) as a chat message: session (`conversationId`; type `direct` for
 * `conversationType` 1, `group` for 2, with `conversationTitle` as name),
 * sender (`senderStaffId`, else `senderId`; `senderNick`), text, `msgId`,
 * and in `extra` the message as received (`raw`), whether the bot was
 * mentioned (`isInAtList`) and what a reply needs (`reply`:
 * `session_webhook` and its `expires_at`, `conversation_id`,
 * `conversation_type`, `sender_staff_id`, `robot_code`).
 */
export function dingTalkMessageToChat(
  message: Record<string, unknown>,
): ChatMessage | DingTalkSkip {
  const msgId = str(message.msgId);
  const conversationId = str(message.conversationId);
  if (!msgId || !conversationId) return { skip: "a robot message without msgId or conversationId" };
  const staffId = str(message.senderStaffId);
  const senderId = staffId ?? str(message.senderId);
  if (!senderId) return { skip: `message ${msgId} has no sender` };
  const direct = str(message.conversationType) === "1";
  const title = str(message.conversationTitle);
  const created = Number(message.createAt);
  const expires = Number(message.sessionWebhookExpiredTime);
  const reply: Record<string, unknown> = {
    conversation_id: conversationId,
    conversation_type: direct ? "1" : "2",
  };
  if (str(message.sessionWebhook)) {
    reply.session_webhook = message.sessionWebhook;
    if (Number.isFinite(expires) && expires > 0) reply.expires_at = new Date(expires).toISOString();
  }
  if (staffId) reply.sender_staff_id = staffId;
  if (str(message.robotCode)) reply.robot_code = message.robotCode;
  return {
    session: {
      id: conversationId,
      type: direct ? "direct" : "group",
      ...(title && !direct ? { name: title } : {}),
    },
    sender: { id: senderId, name: str(message.senderNick) ?? senderId },
    text: dingTalkMessageText(message),
    ...(Number.isFinite(created) && created > 0 ? { time: new Date(created).toISOString() } : {}),
    message_id: msgId,
    extra: {
      raw: message,
      reply,
      mentioned: message.isInAtList === true,
      sender_id: message.senderId,
      message_type: message.msgtype,
    },
  };
}

/** DingTalk custom robot error: "send too fast, exceed 20 times per minute" (throttled 10 minutes). */
const ROBOT_TOO_FAST = 130101;

/**
 * DingTalk's own error in an answer: `errcode != 0` (robot webhooks, older
 * APIs) or a non-2xx `{code, message}` (the `api.dingtalk.com` v1.0 APIs).
 * Rate limits (HTTP 429, `errcode` 130101, `…QpsLimit…`/`Throttling…`
 * codes) are retryable.
 */
export function dingTalkFault(
  hint?: string,
): (body: unknown, response: Response) => PlatformFault | undefined {
  return (body, response) => {
    const b = asRecord(body) ?? {};
    if (typeof b.errcode === "number" && b.errcode !== 0) {
      const tooFast = b.errcode === ROBOT_TOO_FAST;
      return {
        platformError: `${b.errcode} ${String(b.errmsg ?? "")}`.trim(),
        retryable: tooFast || response.status === 429 || response.status >= 500,
        retryAfterMs: tooFast ? 600_000 : undefined,
        hint: tooFast ? undefined : hint,
      };
    }
    if (!response.ok && typeof b.code === "string") {
      const limited = response.status === 429 ||
        /QpsLimit|Throttl|FlowControl|RateLimit/i.test(b.code);
      return {
        platformError: `${b.code} ${String(b.message ?? "")}`.trim(),
        retryable: limited || response.status >= 500,
        hint: limited ? undefined : hint,
      };
    }
    return undefined;
  };
}
