/**
 * Slack: the Events API over a signed webhook (`mode: "webhook"`) or over
 * Socket Mode (`mode: "socket"`, no public URL needed), and replies with
 * `chat.postMessage`.
 *
 * @module
 */
import { ConfigError } from "../config/mod.ts";
import { type Logger, nullLogger } from "../log/mod.ts";
import {
  callPlatform,
  type CommonProviderConfig,
  configWhere,
  hmacSha256,
  jsonObject,
  messagesOutcome,
  optionalSecretField,
  parseCommonConfig,
  parseJsonBody,
  type ProviderContext,
  secretField,
  timingSafeEqual,
  toHex,
} from "./common.ts";
import { ProviderState } from "./connection.ts";
import {
  type ChatMessage,
  type CheckResult,
  type MessageSink,
  type OutboundChatMessage,
  type Provider,
  ProviderError,
  type ProviderStatus,
  type SendResult,
  type WebhookOutcome,
} from "./provider.ts";
import { runSlackSocket } from "./slack_socket.ts";

/** Where Slack's Web API lives. */
export const SLACK_API_BASE = "https://slack.com/api";

/** How far a signed request's timestamp may be from now (Slack: 5 minutes). */
export const SLACK_SIGNATURE_MAX_AGE_S = 300;

/** A `providers.<name>` entry of `type: "slack"`, parsed. */
export interface SlackConfig extends CommonProviderConfig {
  /** Signs webhook requests (Basic Information → Signing Secret); required in webhook mode. */
  signingSecret?: string;
  /** The Bot User OAuth Token (`xoxb-…`): sends, `auth.test`. */
  botToken: string;
  /** The app-level token (`xapp-…`, scope `connections:write`); required in socket mode. */
  appToken?: string;
  /** Answer a top-level channel message in a thread under it (default: in the channel). */
  replyInThread: boolean;
}

/**
 * Parses a `type: "slack"` provider entry. `mode` defaults to `socket` when
 * an `app_token` is given, else `webhook`.
 *
 * @throws {ConfigError} naming the field at fault.
 */
export function parseSlackConfig(
  name: string,
  raw: Record<string, unknown>,
  context: ProviderContext = {},
): SlackConfig {
  const modes = raw.app_token !== undefined ? ["socket", "webhook"] : ["webhook", "socket"];
  const common = parseCommonConfig(name, raw, { modes, defaultApiBase: SLACK_API_BASE });
  const signingSecret = optionalSecretField(name, raw, "signing_secret", context);
  const appToken = optionalSecretField(name, raw, "app_token", context);
  if (common.mode === "webhook" && signingSecret === undefined) {
    throw new ConfigError(
      configWhere(name, "signing_secret"),
      "is required in webhook mode (Basic Information → App Credentials → Signing Secret)",
    );
  }
  if (common.mode === "socket") {
    if (appToken === undefined) {
      throw new ConfigError(
        configWhere(name, "app_token"),
        "is required in socket mode: create an app-level token with the connections:write " +
          "scope (Basic Information → App-Level Tokens)",
      );
    }
    if (!appToken.startsWith("xapp-")) {
      throw new ConfigError(
        configWhere(name, "app_token"),
        "must be an app-level token (xapp-…), not a bot or user token",
      );
    }
  }
  if (raw.reply_in_thread !== undefined && typeof raw.reply_in_thread !== "boolean") {
    throw new ConfigError(configWhere(name, "reply_in_thread"), "must be true or false");
  }
  return {
    ...common,
    type: "slack",
    signingSecret,
    botToken: secretField(name, raw, "bot_token", context),
    appToken,
    replyInThread: raw.reply_in_thread === true,
  };
}

/** Message subtypes that are messages someone wrote (the others are edits, joins, deletions…). */
const TAKEN_SUBTYPES = new Set(["file_share", "thread_broadcast", "me_message", "bot_message"]);

/** `ok: false` errors worth trying again. */
const RETRYABLE_ERRORS = new Set([
  "ratelimited",
  "rate_limited",
  "internal_error",
  "fatal_error",
  "service_unavailable",
  "request_timeout",
]);

/** What to do about the `ok: false` errors people meet first. */
const ERROR_HINTS: Record<string, string> = {
  invalid_auth: "the token was rejected: check it in config.json",
  not_authed: "no token was sent: check config.json",
  account_inactive: "the token belongs to a deleted user or an uninstalled app",
  token_revoked: "the token was revoked: reinstall the app and copy the new token",
  channel_not_found: "no such channel, or the bot cannot see it (private channel: invite it)",
  not_in_channel: "invite the bot to the channel first (/invite @your-bot)",
  is_archived: "the channel is archived",
  missing_scope: "add the missing scope under OAuth & Permissions and reinstall the app",
};

type Json = Record<string, unknown>;

function asString(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Slack's text with its three escapes (`&amp;`, `&lt;`, `&gt;`) undone; `<@U…>` mentions stay. */
export function unescapeSlackText(text: string): string {
  return text.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
}

/** Who the bot is, as far as Slack has told (auth.test, or the events themselves). */
interface SlackIdentity {
  userId?: string;
  botId?: string;
}

/** What became of one Events API payload. */
interface ParsedEvent {
  messages: ChatMessage[];
  /** Why nothing was taken (for the log and the webhook answer). */
  note?: string;
}

class SlackProvider implements Provider {
  readonly name: string;
  readonly type = "slack" as const;
  readonly mode: string;
  readonly #config: SlackConfig;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #context: ProviderContext;
  readonly #state: ProviderState;
  readonly #identity: SlackIdentity = {};

  constructor(config: SlackConfig, context: ProviderContext) {
    this.name = config.name;
    this.mode = config.mode;
    this.#config = config;
    this.#context = context;
    this.#fetch = context.fetch ?? fetch;
    this.#now = context.now ?? Date.now;
    this.#log = context.log ?? nullLogger();
    this.#state = new ProviderState(config, {
      connection: config.mode === "socket",
      now: this.#now,
      log: this.#log,
    });
    if (config.mode === "socket") this.connect = (sink, signal) => this.#connect(sink, signal);
  }

  async handleWebhook(request: Request, body: Uint8Array): Promise<WebhookOutcome> {
    const refused = await this.#verify(request.headers, body);
    if (refused) return { kind: "rejected", status: 401, reason: refused };
    const contentType = request.headers.get("content-type") ?? "";
    if (contentType.includes("application/x-www-form-urlencoded")) {
      // Slash commands and interactive payloads: acknowledged, not taken.
      return {
        kind: "answer",
        response: new Response(null, { status: 200 }),
        note: "a slash command or interactive payload: acknowledged and ignored",
      };
    }
    const payload = parseJsonBody(body);
    if (!payload) return { kind: "rejected", status: 400, reason: "the body is not a JSON object" };
    if (payload.type === "url_verification") {
      return {
        kind: "answer",
        response: Response.json({ challenge: String(payload.challenge ?? "") }),
        note: "url_verification challenge answered",
      };
    }
    const { messages, note } = this.parsePayload(payload);
    return messagesOutcome(messages, note ?? "");
  }

  /** Why the request is refused, or `null` when its signature holds. */
  async #verify(headers: Headers, body: Uint8Array): Promise<string | null> {
    const secret = this.#config.signingSecret;
    if (secret === undefined) {
      return "no signing_secret is configured for this provider, so its webhook is closed";
    }
    const timestamp = headers.get("x-slack-request-timestamp") ?? "";
    const signature = headers.get("x-slack-signature") ?? "";
    if (!/^\d{1,12}$/.test(timestamp)) return "missing or malformed X-Slack-Request-Timestamp";
    if (Math.abs(this.#now() / 1000 - Number(timestamp)) > SLACK_SIGNATURE_MAX_AGE_S) {
      return "X-Slack-Request-Timestamp is more than 5 minutes from now (stale or replayed)";
    }
    const prefix = new TextEncoder().encode(`v0:${timestamp}:`);
    const base = new Uint8Array(prefix.length + body.length);
    base.set(prefix);
    base.set(body, prefix.length);
    const expected = `v0=${toHex(await hmacSha256(secret, base))}`;
    return timingSafeEqual(expected, signature) ? null : "X-Slack-Signature does not match";
  }

  /**
   * The messages of one Events API payload (an `event_callback`), after the
   * provider's filters. Shared by the webhook and Socket Mode.
   */
  parsePayload(payload: Json): ParsedEvent {
    if (payload.type !== "event_callback") {
      return { messages: [], note: `payload type ${String(payload.type)} is not an event` };
    }
    const event = jsonObject(payload.event);
    if (!event) return { messages: [], note: "an event_callback without an event" };
    this.#learnIdentity(payload);
    const parsed = this.#message(payload, event);
    if (typeof parsed === "string") return { messages: [], note: parsed };
    return this.#state.admit(parsed).ok
      ? { messages: [parsed] }
      : { messages: [], note: "dropped by allow_from/require_mention" };
  }

  /** The bot's user id from the installation the event was sent for. */
  #learnIdentity(payload: Json): void {
    if (this.#identity.userId) return;
    const authorizations = Array.isArray(payload.authorizations) ? payload.authorizations : [];
    for (const entry of authorizations) {
      const auth = jsonObject(entry);
      if (auth?.is_bot === true && asString(auth.user_id)) {
        this.#identity.userId = auth.user_id as string;
        return;
      }
    }
  }

  /** The chat message of an event, or why it is not taken. */
  #message(payload: Json, event: Json): ChatMessage | string {
    const type = event.type;
    if (type !== "message" && type !== "app_mention") return `event ${String(type)} is not taken`;
    const subtype = asString(event.subtype);
    if (subtype !== undefined && !TAKEN_SUBTYPES.has(subtype)) {
      return `message subtype ${subtype} is not taken`;
    }
    const own = this.#identity;
    const appId = asString(payload.api_app_id);
    const botProfile = jsonObject(event.bot_profile);
    if (
      (own.userId !== undefined && event.user === own.userId) ||
      (own.botId !== undefined && event.bot_id === own.botId) ||
      (appId !== undefined && (event.app_id === appId || botProfile?.app_id === appId))
    ) {
      return "the bot's own message";
    }
    const channel = asString(event.channel);
    const ts = asString(event.ts);
    if (!channel || !ts) return "a message without channel or ts";
    let text = unescapeSlackText(typeof event.text === "string" ? event.text : "");
    const files = Array.isArray(event.files) ? event.files.map(jsonObject) : [];
    const fileNames = files.map((f) => asString(f?.name) ?? asString(f?.title)).filter(Boolean);
    if (fileNames.length) text = `${text}${text ? "\n" : ""}[files: ${fileNames.join(", ")}]`;
    if (text.trim() === "") return "a message without text";

    const channelType = asString(event.channel_type) ??
      (channel.startsWith("D") ? "im" : channel.startsWith("G") ? "group" : "channel");
    const threadTs = asString(event.thread_ts);
    const inThread = threadTs !== undefined && threadTs !== ts;
    const direct = channelType === "im";
    const session: ChatMessage["session"] = {
      id: channel,
      type: direct ? "direct" : inThread ? "thread" : "group",
    };
    if (inThread) session.thread_key = threadTs;
    const profile = jsonObject(event.user_profile);
    const senderId = asString(event.user) ?? asString(event.bot_id) ?? "unknown";
    const senderName = asString(profile?.display_name) ?? asString(profile?.real_name) ??
      asString(profile?.name) ?? asString(event.username) ?? senderId;
    const mentioned = type === "app_mention" ||
      (own.userId !== undefined && text.includes(`<@${own.userId}>`));
    const reply: Json = { channel, ts };
    if (inThread) reply.thread_ts = threadTs;
    else if (this.#config.replyInThread && !direct) reply.thread_ts = ts;
    const raw = { ...payload };
    delete raw.token; // the legacy verification token: a secret, never stored
    const seconds = Number(ts);
    return {
      session,
      sender: { id: senderId, name: senderName },
      text,
      time: Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : undefined,
      // One id for a message however it comes: a retry, or its message/app_mention twin.
      message_id: `${channel}:${ts}`,
      extra: {
        raw,
        reply,
        mentioned,
        event_id: payload.event_id,
        team_id: payload.team_id,
        channel_type: channelType,
      },
    };
  }

  /** Socket Mode (absent in webhook mode). */
  readonly connect?: (sink: MessageSink, signal: AbortSignal) => Promise<void>;

  #connect(sink: MessageSink, signal: AbortSignal): Promise<void> {
    const appToken = this.#config.appToken!;
    return runSlackSocket({
      name: this.name,
      openConnection: (s) => this.api("apps.connections.open", appToken, {}, s),
      prepare: (s) => this.#learnFromAuthTest(s),
      parsePayload: (payload) => this.parsePayload(payload),
      sink,
      signal,
      state: this.#state,
      log: this.#log,
      delay: this.#context.reconnectDelay,
    });
  }

  /** Learns the bot's ids (to skip its own messages) once; a failure is only logged. */
  async #learnFromAuthTest(signal: AbortSignal): Promise<void> {
    if (this.#identity.userId && this.#identity.botId) return;
    try {
      await this.#authTest(signal);
    } catch (error) {
      this.#log.warn(`provider ${this.name}: Slack auth.test failed: ${(error as Error).message}`);
    }
  }

  async #authTest(signal?: AbortSignal): Promise<Json> {
    const result = await this.api("auth.test", this.#config.botToken, {}, signal);
    if (asString(result.user_id)) this.#identity.userId = result.user_id as string;
    if (asString(result.bot_id)) this.#identity.botId = result.bot_id as string;
    return result;
  }

  async send(message: OutboundChatMessage, signal?: AbortSignal): Promise<SendResult> {
    const reply = message.replyTo?.reply ?? {};
    const extra = message.extra ?? {};
    const channel = asString(reply.channel) ?? message.to;
    const body: Json = { channel, text: message.text };
    const threadTs = asString(extra.thread_ts) ?? asString(reply.thread_ts);
    if (threadTs) body.thread_ts = threadTs;
    for (const key of SEND_OPTIONS) if (extra[key] !== undefined) body[key] = extra[key];
    const result = await this.api("chat.postMessage", this.#config.botToken, body, signal);
    const ts = asString(result.ts);
    return ts ? { message_id: `${asString(result.channel) ?? channel}:${ts}` } : {};
  }

  async check(signal?: AbortSignal): Promise<CheckResult> {
    let detail: string;
    try {
      const who = await this.#authTest(signal);
      detail = `bot token works: ${String(who.user ?? who.user_id)} (${String(who.user_id)}) ` +
        `in workspace ${String(who.team ?? who.team_id)} (${String(who.team_id)})`;
    } catch (error) {
      return { ok: false, detail: `bot_token: ${(error as Error).message}` };
    }
    if (this.mode === "socket") {
      try {
        await this.api("apps.connections.open", this.#config.appToken!, {}, signal);
        detail += "; app token works for Socket Mode";
      } catch (error) {
        return { ok: false, detail: `${detail}; app_token: ${(error as Error).message}` };
      }
    }
    return { ok: true, detail };
  }

  status(): ProviderStatus {
    return this.#state.snapshot();
  }

  /**
   * Calls a Web API method with `token`; an `ok: false` answer is a
   * {@link ProviderError} that keeps Slack's `error`.
   */
  async api(method: string, token: string, body: Json, signal?: AbortSignal): Promise<Json> {
    const result = await callPlatform(
      `${this.#config.apiBase}/${method}`,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json; charset=utf-8",
        },
        body: JSON.stringify(body),
      },
      { platform: "Slack", what: method, fetch: this.#fetch, signal, redact: [token] },
    );
    if (result.ok === true) return result;
    const error = asString(result.error) ?? "unknown_error";
    const needed = asString(result.needed);
    const hint = ERROR_HINTS[error];
    throw new ProviderError(
      `Slack ${method} failed: ${error}${needed ? ` (needs scope ${needed})` : ""}` +
        (hint ? `: ${hint}` : ""),
      { retryable: RETRYABLE_ERRORS.has(error), platformError: error },
    );
  }
}

/** `chat.postMessage` options an outbound message's `extra` may set. */
const SEND_OPTIONS = [
  "blocks",
  "attachments",
  "mrkdwn",
  "unfurl_links",
  "unfurl_media",
  "reply_broadcast",
  "icon_emoji",
  "icon_url",
  "username",
  "link_names",
  "parse",
  "metadata",
];

/**
 * Creates the Slack provider of `config.json` `providers.<name>`.
 *
 * @example
 * ```ts
 * const slack = createSlackProvider("team", {
 *   type: "slack", mode: "socket", bot_token: "env:SLACK_BOT_TOKEN", app_token: "env:SLACK_APP_TOKEN",
 * });
 * await slack.send({ to: "C0123", text: "deploy is green" });
 * ```
 *
 * @throws {ConfigError} when the entry is wrong (the message names the field).
 */
export function createSlackProvider(
  name: string,
  rawConfig: Record<string, unknown>,
  context: ProviderContext = {},
): Provider {
  return new SlackProvider(parseSlackConfig(name, rawConfig, context), context);
}
