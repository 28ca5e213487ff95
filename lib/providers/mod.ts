/**
 * Chat platforms (Slack, Lark/Feishu, DingTalk, Telegram) behind one small
 * interface: verify and parse a webhook, receive over a long connection,
 * send. The mail service uses them; they know nothing of mails.
 *
 * @module
 */
export type { Logger } from "../log/mod.ts";
export * from "./connection.ts";
export * from "./slack.ts";
export * from "./telegram.ts";
export * from "./provider.ts";
export * from "./common.ts";
