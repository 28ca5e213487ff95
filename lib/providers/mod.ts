/**
 * Chat platforms (Slack, Lark/Feishu, DingTalk, Telegram) behind one small
 * interface: verify and parse a webhook, receive over a long connection,
 * send. The mail service uses them; they know nothing of mails.
 *
 * @module
 */
export type { Logger } from "../log/mod.ts";
export { CourierError, ExitCode, type ExitCodeValue } from "../errors/mod.ts";
export * from "./connection.ts";
export * from "./slack.ts";
export * from "./telegram.ts";
export * from "./provider.ts";
export * from "./common.ts";
export * from "./access_token.ts";
export * from "./lark.ts";
export * from "./lark_events.ts";
export * from "./dingtalk.ts";
export * from "./dingtalk_messages.ts";
export * from "./dingtalk_stream.ts";
export * from "./registry.ts";
export * from "./check.ts";
