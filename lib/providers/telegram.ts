/**
 * Telegram: the Bot API over `getUpdates` long polling (`mode: "polling"`,
 * no public URL needed) or a webhook checked by its secret token
 * (`mode: "webhook"`), and replies with `sendMessage`.
 *
 * The bot token is part of every Bot API URL (`/bot<token>/<method>`): no
 * error message or log line of this module holds a URL, and every text
 * that comes back from a call is scrubbed of the token.
 *
 * @module
 */
import { ConfigError } from "../config/mod.ts";
import { type Logger, nullLogger } from "../log/mod.ts";
import {
  type CommonProviderConfig,
  configWhere,
  jsonObject,
  messagesOutcome,
  optionalSecretField,
  parseCommonConfig,
  parseJsonBody,
  type ProviderContext,
  requestPlatform,
  retryAfterMs,
  scrubText,
  secretField,
  timingSafeEqual,
} from "./common.ts";
import { ProviderState, runReconnecting, splitText, unlessAborted } from "./connection.ts";
import { telegramMessage } from "./telegram_message.ts";
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

/** Where the Bot API lives. */
export const TELEGRAM_API_BASE = "https://api.telegram.org";

/** How long one `getUpdates` waits for updates (s). */
export const TELEGRAM_POLL_TIMEOUT_S = 50;

/** The longest text one `sendMessage` takes (UTF-16 code units); longer texts are split. */
export const TELEGRAM_MAX_TEXT = 4096;

/** A `providers.<name>` entry of `type: "telegram"`, parsed. */
export interface TelegramConfig extends CommonProviderConfig {
  /** The bot token from @BotFather (`123456:ABC…`). */
  botToken: string;
  /** The bot's user id (the token's number before the colon). */
  botId: string;
  /** The `secret_token` given to `setWebhook`; required in webhook mode. */
  secretToken?: string;
  /** The update kinds asked for (`allowed_updates`; default `["message"]`). */
  allowedUpdates: string[];
}

/**
 * Parses a `type: "telegram"` provider entry (`mode` defaults to `polling`).
 *
 * @throws {ConfigError} naming the field at fault.
 */
export function parseTelegramConfig(
  name: string,
  raw: Record<string, unknown>,
  context: ProviderContext = {},
): TelegramConfig {
  const common = parseCommonConfig(name, raw, {
    modes: ["polling", "webhook"],
    defaultApiBase: TELEGRAM_API_BASE,
  });
  const botToken = secretField(name, raw, "bot_token", context);
  const id = /^(\d+):[A-Za-z0-9_-]+$/.exec(botToken);
  if (!id) {
    throw new ConfigError(
      configWhere(name, "bot_token"),
      "is not a Telegram bot token (123456789:AA…, as @BotFather gives it)",
    );
  }
  const secretToken = optionalSecretField(name, raw, "secret_token", context);
  if (secretToken !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(secretToken)) {
    throw new ConfigError(
      configWhere(name, "secret_token"),
      "must be 1-256 characters of A-Z, a-z, 0-9, _ and - (what setWebhook accepts)",
    );
  }
  if (common.mode === "webhook" && secretToken === undefined) {
    throw new ConfigError(
      configWhere(name, "secret_token"),
      "is required in webhook mode (pass the same value to setWebhook as secret_token): " +
        "without it anyone who knows the URL could post messages",
    );
  }
  let allowedUpdates = ["message"];
  if (raw.allowed_updates !== undefined) {
    if (
      !Array.isArray(raw.allowed_updates) ||
      raw.allowed_updates.some((u) => typeof u !== "string")
    ) {
      throw new ConfigError(configWhere(name, "allowed_updates"), "must be a list of update kinds");
    }
    allowedUpdates = raw.allowed_updates as string[];
  }
  return { ...common, type: "telegram", botToken, botId: id[1], secretToken, allowedUpdates };
}

/** A Bot API call that failed: a {@link ProviderError} with Telegram's `error_code`. */
export class TelegramApiError extends ProviderError {
  /** Telegram's `error_code` (or the HTTP status when the body said nothing). */
  readonly errorCode: number;
  /** The group's new supergroup id, when it was upgraded (`parameters.migrate_to_chat_id`). */
  readonly migrateToChatId?: number;

  /**
   * Creates a `TelegramApiError`.
   *
   * @param message What failed and what to do about it (never the token).
   * @param options As {@link ProviderError}, plus the code and migration.
   */
  constructor(
    message: string,
    options: ConstructorParameters<typeof ProviderError>[1] & {
      errorCode: number;
      migrateToChatId?: number;
    },
  ) {
    super(message, options);
    this.name = "TelegramApiError";
    this.errorCode = options.errorCode;
    this.migrateToChatId = options.migrateToChatId;
  }
}

type Json = Record<string, unknown>;

/** What to do about the errors people meet first, by their description. */
function hintFor(code: number, description: string): string {
  if (code === 401) return "the bot token was rejected: copy it again from @BotFather";
  if (code === 409 && description.includes("webhook is active")) {
    return "a webhook is set for this bot, and Telegram refuses getUpdates while it is: " +
      "remove it with deleteWebhook (https://api.telegram.org/bot<token>/deleteWebhook), " +
      'or set mode "webhook" for this provider';
  }
  if (code === 409) {
    return "another program is polling this bot with getUpdates, and only one may: stop it, " +
      "or give courier a bot of its own";
  }
  if (code === 403) return "the bot cannot write there (blocked, removed, or not a member)";
  return "";
}

class TelegramProvider implements Provider {
  readonly name: string;
  readonly type = "telegram" as const;
  readonly mode: string;
  /** `getUpdates` long polling (absent in webhook mode). */
  readonly connect?: (sink: MessageSink, signal: AbortSignal) => Promise<void>;
  readonly #config: TelegramConfig;
  readonly #context: ProviderContext;
  readonly #fetch: typeof fetch;
  readonly #log: Logger;
  readonly #state: ProviderState;
  #username?: string;
  #usernameTriedAt = -Infinity;
  /** The next `getUpdates` offset: one past the last update handed over and stored. */
  #offset?: number;
  /** The offset Telegram last heard (updates below it are confirmed, so dropped by Telegram). */
  #confirmedOffset?: number;

  constructor(config: TelegramConfig, context: ProviderContext) {
    this.name = config.name;
    this.mode = config.mode;
    this.#config = config;
    this.#context = context;
    this.#fetch = context.fetch ?? fetch;
    this.#log = context.log ?? nullLogger();
    this.#state = new ProviderState(config, {
      connection: config.mode === "polling",
      now: context.now,
      log: this.#log,
    });
    if (config.mode === "polling") this.connect = (sink, signal) => this.#poll(sink, signal);
  }

  /**
   * Calls Bot API `method`. An `ok: false` answer (whatever the HTTP status)
   * is a {@link TelegramApiError} keeping Telegram's `description`; 429
   * (`parameters.retry_after`) and 5xx are retryable.
   */
  async call(
    method: string,
    params: Json,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<unknown> {
    const { status, headers, body } = await requestPlatform(
      `${this.#config.apiBase}/bot${this.#config.botToken}/${method}`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(params),
      },
      {
        platform: "Telegram",
        what: method,
        fetch: this.#fetch,
        signal: options.signal,
        timeoutMs: options.timeoutMs,
        redact: [this.#config.botToken],
      },
    );
    if (body?.ok === true && status >= 200 && status < 300) return body.result;
    const code = typeof body?.error_code === "number" ? body.error_code : status;
    // Telegram's own words, scrubbed (a proxy in front of the Bot API may name the bot's URL).
    const description = typeof body?.description === "string"
      ? scrubText(body.description, [this.#config.botToken])
      : `HTTP ${status}`;
    const parameters = jsonObject(body?.parameters);
    const retryAfter = typeof parameters?.retry_after === "number"
      ? parameters.retry_after * 1000
      : retryAfterMs(headers.get("retry-after"));
    const hint = hintFor(code, description);
    throw new TelegramApiError(
      `Telegram ${method} failed: ${description}${hint ? `: ${hint}` : ""}`,
      {
        // No JSON at all (a proxy's error page, a body cut short) is worth another try.
        retryable: code === 429 || code >= 500 || body === null,
        retryAfterMs: code === 429 ? retryAfter : undefined,
        platformError: description,
        errorCode: code,
        migrateToChatId: typeof parameters?.migrate_to_chat_id === "number"
          ? parameters.migrate_to_chat_id
          : undefined,
      },
    );
  }

  /** The bot's `@username`, from `getMe` (asked once a minute at most while unknown). */
  async #botUsername(signal?: AbortSignal, required = false): Promise<string | undefined> {
    const now = (this.#context.now ?? Date.now)();
    if (this.#username !== undefined || (!required && now - this.#usernameTriedAt < 60_000)) {
      return this.#username;
    }
    this.#usernameTriedAt = now;
    try {
      const me = jsonObject(await this.call("getMe", {}, { signal, timeoutMs: 5000 }));
      if (typeof me?.username === "string") this.#username = me.username;
    } catch (error) {
      if (required) throw error;
      this.#log.warn(`provider ${this.name}: Telegram getMe failed: ${(error as Error).message}`);
    }
    return this.#username;
  }

  async handleWebhook(request: Request, body: Uint8Array): Promise<WebhookOutcome> {
    const secret = this.#config.secretToken;
    if (secret === undefined) {
      return {
        kind: "rejected",
        status: 401,
        reason: "no secret_token is configured for this provider, so its webhook is closed",
      };
    }
    const given = request.headers.get("x-telegram-bot-api-secret-token");
    if (given === null || !timingSafeEqual(given, secret)) {
      return {
        kind: "rejected",
        status: 401,
        reason: "X-Telegram-Bot-Api-Secret-Token is missing or wrong",
      };
    }
    const update = parseJsonBody(body);
    if (!update || typeof update.update_id !== "number") {
      return { kind: "rejected", status: 400, reason: "the body is not a Telegram update" };
    }
    const messages = await this.#messagesOf([update]);
    return messagesOutcome(messages, "no message taken from this update");
  }

  /** The messages of a batch of updates, after the provider's filters. */
  async #messagesOf(updates: Json[]): Promise<ChatMessage[]> {
    const needsName = updates.some((u) => {
      const m = jsonObject(u.message);
      return m && jsonObject(m.chat)?.type !== "private";
    });
    const username = needsName ? await this.#botUsername() : this.#username;
    const messages: ChatMessage[] = [];
    for (const update of updates) {
      const parsed = telegramMessage(update, { botId: this.#config.botId, username });
      if (typeof parsed === "string") {
        this.#log.info(`provider ${this.name}: update ${String(update.update_id)}: ${parsed}`);
      } else {
        messages.push(parsed);
      }
    }
    return messages.filter((message) => this.#state.admit(message).ok);
  }

  /**
   * Long polling: the offset moves past a batch only after `sink` resolved
   * for it, so a crash or a failed store reads the batch again.
   */
  async #poll(sink: MessageSink, signal: AbortSignal): Promise<void> {
    await runReconnecting(async ({ signal, healthy }) => {
      await this.#botUsername(signal, true);
      for (;;) {
        const params: Json = {
          timeout: TELEGRAM_POLL_TIMEOUT_S,
          allowed_updates: this.#config.allowedUpdates,
        };
        if (this.#offset !== undefined) params.offset = this.#offset;
        const result = await this.call("getUpdates", params, {
          signal,
          timeoutMs: (TELEGRAM_POLL_TIMEOUT_S + 15) * 1000,
        });
        this.#confirmedOffset = this.#offset;
        if (!this.#state.connected) this.#log.info(`provider ${this.name}: Telegram polling`);
        this.#state.setConnected(true);
        healthy();
        const updates = (Array.isArray(result) ? result : []).map(jsonObject)
          .filter((u): u is Json => typeof u?.update_id === "number");
        if (updates.length === 0) continue;
        const messages = await this.#messagesOf(updates);
        // Stopping does not wait for the sink: the offset stays, so the batch is read again.
        if (messages.length) await unlessAborted(sink(messages), signal);
        this.#offset = Math.max(...updates.map((u) => u.update_id as number)) + 1;
      }
    }, {
      signal,
      delay: this.#context.reconnectDelay,
      onError: (error, waitMs) => {
        this.#state.connectionFailed(error);
        this.#log.warn(
          `provider ${this.name}: Telegram getUpdates: ${(error as Error).message}; ` +
            `trying again in ${Math.round(waitMs / 1000)} s`,
        );
      },
    });
    this.#state.setConnected(false);
    await this.#confirm();
  }

  /** Tells Telegram the stored updates are done, so a restart does not fetch them again. */
  async #confirm(): Promise<void> {
    if (this.#offset === undefined || this.#offset === this.#confirmedOffset) return;
    try {
      await this.call("getUpdates", { offset: this.#offset, timeout: 0, limit: 1 }, {
        timeoutMs: 2000,
      });
      this.#confirmedOffset = this.#offset;
    } catch {
      // Not confirmed: the next start reads them again, and their ids make them duplicates.
    }
  }

  async send(message: OutboundChatMessage, signal?: AbortSignal): Promise<SendResult> {
    const reply = message.replyTo?.reply ?? {};
    const extra = message.extra ?? {};
    let chatId = (reply.chat_id as string | number | undefined) ?? message.to;
    const base: Json = {};
    const threadId = extra.message_thread_id ?? reply.message_thread_id;
    if (threadId !== undefined) base.message_thread_id = threadId;
    for (const key of SEND_OPTIONS) if (extra[key] !== undefined) base[key] = extra[key];
    const replyTo = reply.message_id ?? extra.reply_to_message_id;
    let first: string | undefined;
    for (const [i, text] of splitText(message.text, TELEGRAM_MAX_TEXT).entries()) {
      const params: Json = { ...base, chat_id: chatId, text };
      if (i === 0 && replyTo !== undefined) {
        params.reply_parameters = { message_id: replyTo, allow_sending_without_reply: true };
      }
      let sent: Json | undefined;
      try {
        sent = jsonObject(await this.call("sendMessage", params, { signal }));
      } catch (error) {
        // A group upgraded to a supergroup has a new id: send there instead.
        if (!(error instanceof TelegramApiError) || error.migrateToChatId === undefined) {
          throw error;
        }
        chatId = error.migrateToChatId;
        sent = jsonObject(
          await this.call("sendMessage", { ...params, chat_id: chatId }, { signal }),
        );
      }
      if (i === 0 && typeof sent?.message_id === "number") {
        first = `${String(jsonObject(sent.chat)?.id ?? chatId)}:${sent.message_id}`;
      }
    }
    return first ? { message_id: first } : {};
  }

  async check(signal?: AbortSignal): Promise<CheckResult> {
    let detail: string;
    try {
      const me = jsonObject(await this.call("getMe", {}, { signal }));
      this.#username = typeof me?.username === "string" ? me.username : this.#username;
      detail = `bot token works: @${String(me?.username)} (${String(me?.id)})`;
      const hook = jsonObject(await this.call("getWebhookInfo", {}, { signal }));
      const url = typeof hook?.url === "string" ? hook.url : "";
      if (this.mode === "polling" && url !== "") {
        return {
          ok: false,
          detail: `${detail}; but a webhook is set (${url}), so getUpdates will fail: ` +
            'remove it with deleteWebhook, or set mode "webhook"',
        };
      }
      if (this.mode === "webhook") {
        if (url === "") {
          return {
            ok: false,
            detail: `${detail}; but no webhook is set: call setWebhook with this provider's ` +
              "URL and secret_token",
          };
        }
        detail += `; webhook ${url}`;
        if (typeof hook?.last_error_message === "string") {
          detail += ` (last delivery error: ${hook.last_error_message})`;
        }
      }
    } catch (error) {
      return { ok: false, detail: (error as Error).message };
    }
    return { ok: true, detail };
  }

  status(): ProviderStatus {
    return this.#state.snapshot();
  }
}

/** `sendMessage` options an outbound message's `extra` may set. */
const SEND_OPTIONS = [
  "parse_mode",
  "entities",
  "disable_notification",
  "protect_content",
  "link_preview_options",
  "reply_markup",
  "message_effect_id",
];

/**
 * Creates the Telegram provider of `config.json` `providers.<name>`.
 *
 * @example
 * ```ts
 * const tg = createTelegramProvider("tg", { type: "telegram", bot_token: "env:TELEGRAM_BOT_TOKEN" });
 * await tg.send({ to: "-1001234567890", text: "deploy is green" });
 * ```
 *
 * @throws {ConfigError} when the entry is wrong (the message names the field).
 */
export function createTelegramProvider(
  name: string,
  rawConfig: Record<string, unknown>,
  context: ProviderContext = {},
): Provider {
  return new TelegramProvider(parseTelegramConfig(name, rawConfig, context), context);
}
