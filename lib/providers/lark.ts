/**
 * Lark/Feishu: event subscription v2 over webhooks (verified and decrypted
 * before anything else is read), sending with the app's tenant access token
 * (a reply goes to the message it answers, in its thread) or through a
 * custom bot's webhook.
 *
 * @module
 */
import { ConfigError } from "../config/mod.ts";
import { jsonResponse } from "../http/mod.ts";
import { AccessTokenCache, expiresInMs } from "./access_token.ts";
import {
  baseUrl,
  callPlatform,
  type CommonProviderConfig,
  configWhere,
  hmacSha256,
  jsonObject as asRecord,
  optionalSecretField,
  parseCommonConfig,
  parseJsonBody,
  parseJsonText,
  platformErrorText,
  type PlatformFault,
  type ProviderContext,
  timingSafeEqual,
  toBase64,
} from "./common.ts";
import { ProviderState } from "./connection.ts";
import { decryptLarkEvent, larkEventToMessage, larkSignature } from "./lark_events.ts";
import {
  type CheckResult,
  type OutboundChatMessage,
  type Provider,
  ProviderError,
  type ProviderStatus,
  type SendResult,
  type WebhookOutcome,
} from "./provider.ts";

/** Feishu's API host (Lark outside China: `https://open.larksuite.com`). */
export const LARK_API_BASE = "https://open.feishu.cn";

/**
 * How far `X-Lark-Request-Timestamp` may be from now. Lark retries an
 * unanswered event for about 7 hours (15 s, 5 min, 1 h, 6 h), so the window
 * is wider than a fresh-request check; a replay within it repeats a
 * `message_id` that is stored once.
 */
export const LARK_TIMESTAMP_WINDOW_MS = 24 * 3600_000;

/** A `config.json` `providers.<name>` entry of type `lark`, parsed. */
export interface LarkConfig extends CommonProviderConfig {
  /** The app's Verification Token: every event must carry it. */
  verificationToken?: string;
  /** The app's Encrypt Key: events are encrypted and signed with it. */
  encryptKey?: string;
  /** The app's credentials, for the tenant access token. */
  app?: { id: string; secret: string };
  /** A custom bot's webhook (and its signing secret), to send without an app. */
  webhook?: { url: string; secret?: string };
  /** The bot's `open_id` (otherwise asked from `bot/v3/info` when needed). */
  botOpenId?: string;
}

/**
 * Parses a `lark` provider entry: `verification_token`, `encrypt_key`,
 * `app_id`, `app_secret`, `webhook_url`, `webhook_secret` (each may be
 * `"env:NAME"`), `bot_open_id`, and the common fields (`api_base` defaults
 * to `https://open.feishu.cn`; `mode` is `webhook`).
 *
 * @throws {ConfigError} naming the field at fault.
 */
export function parseLarkConfig(
  name: string,
  raw: Record<string, unknown>,
  context: ProviderContext = {},
): LarkConfig {
  const common = parseCommonConfig(name, raw, {
    modes: ["webhook"],
    defaultApiBase: LARK_API_BASE,
  });
  const secret = (key: string) => optionalSecretField(name, raw, key, context);
  const appId = secret("app_id"), appSecret = secret("app_secret");
  if ((appId === undefined) !== (appSecret === undefined)) {
    throw new ConfigError(configWhere(name), "app_id and app_secret go together; set both");
  }
  const webhookUrl = secret("webhook_url");
  const webhookSecret = secret("webhook_secret");
  if (webhookSecret !== undefined && webhookUrl === undefined) {
    throw new ConfigError(configWhere(name, "webhook_secret"), "needs webhook_url");
  }
  const verificationToken = secret("verification_token");
  if (verificationToken === undefined && appId === undefined && webhookUrl === undefined) {
    throw new ConfigError(
      configWhere(name),
      "set verification_token (to receive) and app_id/app_secret or webhook_url (to send)",
    );
  }
  if (raw.bot_open_id !== undefined && typeof raw.bot_open_id !== "string") {
    throw new ConfigError(configWhere(name, "bot_open_id"), "must be the bot's open_id (ou_…)");
  }
  return {
    ...common,
    // Accept the base with or without the `/open-apis` prefix.
    apiBase: common.apiBase.replace(/\/open-apis$/, ""),
    verificationToken,
    encryptKey: secret("encrypt_key"),
    app: appId && appSecret ? { id: appId, secret: appSecret } : undefined,
    webhook: webhookUrl
      ? {
        url: baseUrl(webhookUrl, configWhere(name, "webhook_url"), ["http:", "https:"]),
        secret: webhookSecret,
      }
      : undefined,
    botOpenId: raw.bot_open_id as string | undefined,
  };
}

/** Lark's codes for "slow down" (API frequency limit, custom bot limit, message limit). */
const RATE_LIMIT_CODES = new Set([99991400, 11232, 230020]);
/** Lark's codes for an invalid or expired access token: fetch a new one and try once more. */
const TOKEN_INVALID_CODES = new Set([99991661, 99991663, 99991664, 99991668, 99991671]);

/** Lark's own error in an answer: `code != 0` (`StatusCode` for old custom bots). */
export function larkFault(
  hint?: string,
): (body: unknown, response: Response) => PlatformFault | undefined {
  return (body, response) => {
    const b = typeof body === "object" && body !== null ? body as Record<string, unknown> : {};
    const code = typeof b.code === "number" ? b.code : b.StatusCode;
    const reset = Number(response.headers.get("x-ogw-ratelimit-reset"));
    const retryAfterMs = Number.isFinite(reset) && reset > 0 ? reset * 1000 : undefined;
    if (typeof code !== "number" || code === 0) {
      if (response.status !== 429) return undefined;
      const said = platformErrorText(body); // a gateway's own words, without a Lark code
      return {
        platformError: `HTTP 429${said ? ` (${said})` : ""}`,
        retryable: true,
        retryAfterMs,
      };
    }
    const limited = RATE_LIMIT_CODES.has(code) || response.status === 429;
    return {
      platformError: `${code} ${String(b.msg ?? b.StatusMessage ?? "")}`.trim(),
      retryable: limited || response.status >= 500,
      retryAfterMs,
      hint: limited ? undefined : hint,
    };
  };
}

function platformCode(error: unknown): number | undefined {
  if (!(error instanceof ProviderError) || !error.platformError) return undefined;
  const code = parseInt(error.platformError, 10);
  return Number.isNaN(code) ? undefined : code;
}

const enc = new TextEncoder();

function rejected(reason: string, status: 400 | 401 = 401): WebhookOutcome {
  return { kind: "rejected", status, reason };
}

/** Infers `receive_id_type` from an id's prefix (`oc_` chat, `ou_` open_id, `on_` union_id). */
export function larkReceiveIdType(to: string): string {
  if (to.startsWith("ou_")) return "open_id";
  if (to.startsWith("on_")) return "union_id";
  if (to.includes("@")) return "email";
  return "chat_id";
}

/** A Lark/Feishu provider (see {@link createLarkProvider}). */
class LarkProvider implements Provider {
  readonly type = "lark" as const;
  readonly mode = "webhook";
  readonly name: string;
  #config: LarkConfig;
  #fetch: typeof fetch;
  #now: () => number;
  #context: ProviderContext;
  #tokens: AccessTokenCache;
  #botOpenId: string | undefined;
  #botLookupAfter = 0;
  #state: ProviderState;

  constructor(config: LarkConfig, context: ProviderContext) {
    this.name = config.name;
    this.#config = config;
    this.#context = context;
    this.#fetch = context.fetch ?? fetch;
    this.#now = context.now ?? Date.now;
    this.#botOpenId = config.botOpenId;
    this.#state = new ProviderState(config, {
      connection: false,
      now: this.#now,
      log: context.log,
    });
    this.#tokens = new AccessTokenCache(() => this.#fetchTenantToken(), { now: this.#now });
  }

  async handleWebhook(request: Request, body: Uint8Array): Promise<WebhookOutcome> {
    const config = this.#config;
    if (!config.verificationToken) {
      return rejected(
        `no verification_token is configured for ${this.name}, so events are refused`,
      );
    }
    let signed = false;
    if (config.encryptKey) {
      const signature = request.headers.get("x-lark-signature");
      if (signature !== null) {
        const timestamp = request.headers.get("x-lark-request-timestamp") ?? "";
        const nonce = request.headers.get("x-lark-request-nonce") ?? "";
        const expected = await larkSignature(timestamp, nonce, config.encryptKey, body);
        if (!timingSafeEqual(expected, signature.trim().toLowerCase())) {
          return rejected("X-Lark-Signature does not match");
        }
        const at = Number(timestamp) * 1000;
        if (!/^\d+$/.test(timestamp) || Math.abs(this.#now() - at) > LARK_TIMESTAMP_WINDOW_MS) {
          return rejected("X-Lark-Request-Timestamp is missing or too far from now");
        }
        signed = true;
      }
    }
    const read = await this.#readEvent(body);
    if ("outcome" in read) return read.outcome;
    const envelope = read.event;
    const header = asRecord(envelope.header);
    const token = header ? header.token : envelope.token;
    if (typeof token !== "string" || !timingSafeEqual(token, config.verificationToken)) {
      return rejected("the verification token does not match");
    }
    if (envelope.type === "url_verification") {
      return {
        kind: "answer",
        response: jsonResponse({ challenge: envelope.challenge }),
        note: "url_verification answered",
      };
    }
    // The platform signs every event but the URL check; an unsigned one is forged.
    if (config.encryptKey && !signed) return rejected("the event has no X-Lark-Signature");
    const eventType = header?.event_type ?? (envelope.event as { type?: unknown })?.type;
    if (envelope.schema !== "2.0" || eventType !== "im.message.receive_v1") {
      return { kind: "answer", response: jsonResponse({}), note: `event ${eventType} not taken` };
    }
    const message = larkEventToMessage(envelope, await this.#knownBotOpenId());
    if ("skip" in message) {
      return { kind: "answer", response: jsonResponse({}), note: message.skip };
    }
    const admitted = this.#state.admit(message);
    if (!admitted.ok) {
      return { kind: "answer", response: jsonResponse({}), note: `dropped: ${admitted.reason}` };
    }
    return { kind: "messages", messages: [message], respond: () => jsonResponse({}) };
  }

  /** The event in `body`: parsed, and decrypted when an encrypt key is set. */
  async #readEvent(
    body: Uint8Array,
  ): Promise<{ event: Record<string, unknown> } | { outcome: WebhookOutcome }> {
    const notEvent = { outcome: rejected("the body is not a Lark event", 400) };
    const outer = parseJsonBody(body);
    if (!outer) return notEvent;
    const key = this.#config.encryptKey;
    if (!key) {
      return outer.encrypt === undefined
        ? { event: outer }
        : { outcome: rejected(`the event is encrypted but ${this.name} has no encrypt_key`) };
    }
    if (typeof outer.encrypt !== "string") {
      return { outcome: rejected("the event is not encrypted", 400) };
    }
    let plaintext: string;
    try {
      plaintext = await decryptLarkEvent(key, outer.encrypt);
    } catch (error) {
      return { outcome: rejected((error as Error).message) };
    }
    const event = parseJsonText(plaintext);
    return event ? { event } : notEvent;
  }

  async send(message: OutboundChatMessage, signal?: AbortSignal): Promise<SendResult> {
    try {
      if (this.#config.app) return await this.#sendAsApp(message, signal);
      if (this.#config.webhook) return await this.#sendByWebhook(message, signal);
      throw new ProviderError(
        `${this.name} cannot send: set app_id/app_secret or webhook_url in ${
          configWhere(this.name)
        }`,
        { retryable: false },
      );
    } catch (error) {
      this.#state.recordError(error);
      throw error;
    }
  }

  async check(signal?: AbortSignal): Promise<CheckResult> {
    if (!this.#config.app) {
      return {
        ok: this.#config.webhook !== undefined,
        detail: this.#config.webhook
          ? "custom bot webhook configured (a custom bot has no identity to check; a send tests it)"
          : "no app_id/app_secret: nothing to check",
      };
    }
    try {
      this.#tokens.invalidate();
      await this.#tokens.get();
      const bot = await this.#botInfo(signal);
      return {
        ok: true,
        detail: `tenant access token issued for app ${this.#config.app.id}; bot ${
          bot.app_name ?? "?"
        } (${bot.open_id ?? "no open_id: enable the bot capability"})`,
      };
    } catch (error) {
      this.#state.recordError(error);
      return { ok: false, detail: (error as Error).message };
    }
  }

  status(): ProviderStatus {
    return this.#state.snapshot();
  }

  async #fetchTenantToken(): Promise<{ token: string; expiresInMs: number }> {
    const app = this.#config.app!;
    const body = await callPlatform(
      `${this.#config.apiBase}/open-apis/auth/v3/tenant_access_token/internal`,
      {
        method: "POST",
        headers: { "content-type": "application/json; charset=utf-8" },
        body: JSON.stringify({ app_id: app.id, app_secret: app.secret }),
      },
      {
        platform: "Lark",
        what: "tenant_access_token",
        fetch: this.#fetch,
        platformFault: larkFault(`check app_id and app_secret in ${configWhere(this.name)}`),
      },
    );
    const token = body.tenant_access_token;
    if (typeof token !== "string" || token === "") {
      throw new ProviderError("Lark tenant_access_token answered without a token", {
        retryable: true,
      });
    }
    return { token, expiresInMs: expiresInMs(body.expire) };
  }

  /** Calls an API with the tenant token; a token Lark calls invalid is replaced once. */
  #callApi(
    method: string,
    path: string,
    what: string,
    payload: unknown,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    return this.#tokens.use(
      (token) =>
        callPlatform(
          `${this.#config.apiBase}${path}`,
          {
            method,
            headers: {
              authorization: `Bearer ${token}`,
              "content-type": "application/json; charset=utf-8",
            },
            body: payload === undefined ? undefined : JSON.stringify(payload),
          },
          { platform: "Lark", what, fetch: this.#fetch, signal, platformFault: larkFault() },
        ),
      (error) => TOKEN_INVALID_CODES.has(platformCode(error) ?? 0),
    );
  }

  async #botInfo(signal?: AbortSignal): Promise<{ open_id?: string; app_name?: string }> {
    const body = await this.#callApi(
      "GET",
      "/open-apis/bot/v3/info",
      "bot/v3/info",
      undefined,
      signal,
    );
    const bot = (body.bot ?? {}) as { open_id?: string; app_name?: string };
    if (typeof bot.open_id === "string" && bot.open_id !== "") this.#botOpenId = bot.open_id;
    return bot;
  }

  /**
   * The bot's open_id for mention detection: configured, learned, or asked
   * once (briefly; a failure is retried after ten minutes, meanwhile any
   * mention counts).
   */
  async #knownBotOpenId(): Promise<string | undefined> {
    if (this.#botOpenId || !this.#config.app || this.#now() < this.#botLookupAfter) {
      return this.#botOpenId;
    }
    this.#botLookupAfter = this.#now() + 10 * 60_000;
    try {
      await this.#botInfo(AbortSignal.timeout(2000));
    } catch (error) {
      this.#context.log?.warn(`${this.name}: bot/v3/info failed: ${(error as Error).message}`);
    }
    return this.#botOpenId;
  }

  async #sendAsApp(message: OutboundChatMessage, signal?: AbortSignal): Promise<SendResult> {
    const content = JSON.stringify({ text: message.text });
    const uuid = message.idempotencyKey?.slice(0, 50);
    const reply = message.replyTo?.reply ?? {};
    const replyId = typeof reply.message_id === "string"
      ? reply.message_id
      : message.replyTo?.message_id;
    let body: Record<string, unknown>;
    if (replyId) {
      body = await this.#callApi(
        "POST",
        `/open-apis/im/v1/messages/${encodeURIComponent(replyId)}/reply`,
        "im/v1/messages/reply",
        { msg_type: "text", content, reply_in_thread: typeof reply.thread_id === "string", uuid },
        signal,
      );
    } else {
      const idType = typeof message.extra?.receive_id_type === "string"
        ? message.extra.receive_id_type
        : larkReceiveIdType(message.to);
      body = await this.#callApi(
        "POST",
        `/open-apis/im/v1/messages?receive_id_type=${encodeURIComponent(idType)}`,
        "im/v1/messages",
        { receive_id: message.to, msg_type: "text", content, uuid },
        signal,
      );
    }
    const data = (body.data ?? {}) as { message_id?: unknown };
    return typeof data.message_id === "string" ? { message_id: data.message_id } : {};
  }

  async #sendByWebhook(message: OutboundChatMessage, signal?: AbortSignal): Promise<SendResult> {
    const webhook = this.#config.webhook!;
    const payload: Record<string, unknown> = { msg_type: "text", content: { text: message.text } };
    if (webhook.secret) {
      const timestamp = String(Math.floor(this.#now() / 1000));
      payload.timestamp = timestamp;
      payload.sign = await larkWebhookSign(timestamp, webhook.secret);
    }
    await callPlatform(
      webhook.url,
      {
        method: "POST",
        headers: { "content-type": "application/json; charset=utf-8" },
        body: JSON.stringify(payload),
      },
      {
        platform: "Lark",
        what: "custom bot webhook",
        fetch: this.#fetch,
        signal,
        platformFault: larkFault(
          `check webhook_url and webhook_secret in ${configWhere(this.name)}`,
        ),
      },
    );
    return {};
  }
}

/**
 * The `sign` of a Lark custom bot message: base64 of the HMAC-SHA256 keyed
 * by `"{timestamp}\n{secret}"` over empty data (timestamp in seconds).
 */
export async function larkWebhookSign(timestamp: string, secret: string): Promise<string> {
  return toBase64(await hmacSha256(`${timestamp}\n${secret}`, enc.encode("")));
}

/**
 * Creates the Lark/Feishu provider of `config.json` `providers.<name>`.
 *
 * @example
 * ```ts
 * const lark = createLarkProvider("feishu", {
 *   type: "lark", verification_token: "env:LARK_TOKEN", encrypt_key: "env:LARK_KEY",
 *   app_id: "cli_a1b2", app_secret: "env:LARK_SECRET",
 * });
 * await lark.send({ to: "oc_42", text: "On it." });
 * ```
 *
 * @throws {ConfigError} when the entry is wrong (naming the field).
 */
export function createLarkProvider(
  name: string,
  rawConfig: Record<string, unknown>,
  context: ProviderContext = {},
): Provider {
  return new LarkProvider(parseLarkConfig(name, rawConfig, context), context);
}
