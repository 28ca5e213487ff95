/**
 * DingTalk: robot messages by signed HTTP callback (`mode: "webhook"`) or
 * over Stream mode (`mode: "stream"`, no public URL), and sending: a reply
 * through the conversation's `sessionWebhook` while it is valid, else the
 * OpenAPI group or one-to-one send with the app's access token, else a
 * custom robot webhook.
 *
 * @module
 */
import { ConfigError } from "../config/mod.ts";
import { jsonResponse } from "../http/mod.ts";
import { VERSION } from "../version/mod.ts";
import { AccessTokenCache, expiresInMs } from "./access_token.ts";
import {
  baseUrl,
  callPlatform,
  type CommonProviderConfig,
  configWhere,
  optionalSecretField,
  parseCommonConfig,
  parseJsonBody,
  parseJsonText,
  type ProviderContext,
  timingSafeEqual,
} from "./common.ts";
import {
  DINGTALK_TIMESTAMP_WINDOW_MS,
  dingTalkFault,
  dingTalkMessageToChat,
  dingTalkSign,
} from "./dingtalk_messages.ts";
import { ProviderState } from "./connection.ts";
import { runDingTalkStream } from "./dingtalk_stream.ts";
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

/** DingTalk's API host (`api.dingtalk.com`: access token, stream gateway, robot sends). */
export const DINGTALK_API_BASE = "https://api.dingtalk.com";
/** DingTalk's older API host, where session webhooks and custom robot webhooks live. */
export const DINGTALK_OAPI_BASE = "https://oapi.dingtalk.com";

/** Use a session webhook only while it has at least this long left (ms). */
const SESSION_WEBHOOK_MARGIN_MS = 60_000;

/** A `config.json` `providers.<name>` entry of type `dingtalk`, parsed. */
export interface DingTalkConfig extends CommonProviderConfig {
  /** The app's client id (AppKey): Stream mode and OpenAPI sends. */
  clientId?: string;
  /** The app's client secret (AppSecret): verifies callbacks; Stream mode and OpenAPI sends. */
  clientSecret?: string;
  /** The robot's code for OpenAPI sends (default: the client id). */
  robotCode?: string;
  /** Where session webhooks must point (their origin is checked before courier POSTs). */
  oapiBase: string;
  /** Overrides the origin of the stream endpoint. */
  wsBase?: string;
  /** A custom robot's webhook (and its `SEC…` secret), the last way to send. */
  webhook?: { url: string; secret?: string };
}

/**
 * Parses a `dingtalk` provider entry: `client_id`, `client_secret`,
 * `webhook_url`, `webhook_secret` (each may be `"env:NAME"`), `robot_code`,
 * `oapi_base`, `ws_base`, and the common fields (`mode` is `webhook`, the
 * default, or `stream`; `api_base` defaults to `https://api.dingtalk.com`).
 *
 * @throws {ConfigError} naming the field at fault.
 */
export function parseDingTalkConfig(
  name: string,
  raw: Record<string, unknown>,
  context: ProviderContext = {},
): DingTalkConfig {
  const common = parseCommonConfig(name, raw, {
    modes: ["webhook", "stream"],
    defaultApiBase: DINGTALK_API_BASE,
  });
  const secret = (key: string) => optionalSecretField(name, raw, key, context);
  const clientId = secret("client_id"), clientSecret = secret("client_secret");
  const webhookUrl = secret("webhook_url"), webhookSecret = secret("webhook_secret");
  if (common.mode === "stream" && (!clientId || !clientSecret)) {
    throw new ConfigError(configWhere(name), `Stream mode needs client_id and client_secret`);
  }
  if (!clientSecret && !webhookUrl) {
    throw new ConfigError(
      configWhere(name, "client_secret"),
      "required (the app's AppSecret), unless the entry only sends through webhook_url",
    );
  }
  if (webhookSecret !== undefined && webhookUrl === undefined) {
    throw new ConfigError(configWhere(name, "webhook_secret"), "needs webhook_url");
  }
  if (raw.robot_code !== undefined && typeof raw.robot_code !== "string") {
    throw new ConfigError(configWhere(name, "robot_code"), "must be the robot's code");
  }
  const urlField = (key: string, protocols: string[]) =>
    raw[key] === undefined ? undefined : baseUrl(raw[key], configWhere(name, key), protocols);
  return {
    ...common,
    clientId,
    clientSecret,
    robotCode: (raw.robot_code as string | undefined) ?? clientId,
    oapiBase: urlField("oapi_base", ["http:", "https:"]) ?? DINGTALK_OAPI_BASE,
    wsBase: urlField("ws_base", ["ws:", "wss:"]),
    webhook: webhookUrl
      ? {
        url: baseUrl(webhookUrl, configWhere(name, "webhook_url"), ["http:", "https:"]),
        secret: webhookSecret,
      }
      : undefined,
  };
}

/** Where a send goes through the OpenAPI: a group conversation or one user. */
type OpenApiTarget = { group: string } | { user: string };

function str(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** A DingTalk provider (see {@link createDingTalkProvider}). */
class DingTalkProvider implements Provider {
  readonly type = "dingtalk" as const;
  readonly name: string;
  readonly mode: string;
  /** Present in Stream mode only. */
  readonly connect?: (sink: MessageSink, signal: AbortSignal) => Promise<void>;
  #config: DingTalkConfig;
  #context: ProviderContext;
  #fetch: typeof fetch;
  #now: () => number;
  #tokens: AccessTokenCache;
  #state: ProviderState;

  constructor(config: DingTalkConfig, context: ProviderContext) {
    this.name = config.name;
    this.mode = config.mode;
    this.#config = config;
    this.#context = context;
    this.#fetch = context.fetch ?? fetch;
    this.#now = context.now ?? Date.now;
    this.#tokens = new AccessTokenCache(() => this.#fetchAccessToken(), { now: this.#now });
    this.#state = new ProviderState(config, {
      connection: config.mode === "stream",
      now: this.#now,
      log: context.log,
    });
    if (config.mode === "stream") this.connect = (sink, signal) => this.#stream(sink, signal);
  }

  async handleWebhook(request: Request, body: Uint8Array): Promise<WebhookOutcome> {
    const secret = this.#config.clientSecret;
    if (!secret) {
      return {
        kind: "rejected",
        status: 401,
        reason: `no client_secret is configured for ${this.name}, so callbacks are refused`,
      };
    }
    const timestamp = request.headers.get("timestamp") ?? "";
    const sign = request.headers.get("sign") ?? "";
    if (!timingSafeEqual(await dingTalkSign(timestamp, secret), sign)) {
      return { kind: "rejected", status: 401, reason: "the sign header does not match" };
    }
    if (
      !/^\d+$/.test(timestamp) ||
      Math.abs(this.#now() - Number(timestamp)) > DINGTALK_TIMESTAMP_WINDOW_MS
    ) {
      return {
        kind: "rejected",
        status: 401,
        reason: "the timestamp is more than 1 hour from now",
      };
    }
    const robotMessage = parseJsonBody(body);
    if (!robotMessage) {
      return { kind: "rejected", status: 400, reason: "the body is not a robot message" };
    }
    const message = this.#take(robotMessage);
    if ("skip" in message) {
      return { kind: "answer", response: jsonResponse({}), note: message.skip };
    }
    return { kind: "messages", messages: [message], respond: () => jsonResponse({}) };
  }

  async send(message: OutboundChatMessage, signal?: AbortSignal): Promise<SendResult> {
    try {
      return await this.#send(message, signal);
    } catch (error) {
      this.#state.recordError(error);
      throw error;
    }
  }

  async check(_signal?: AbortSignal): Promise<CheckResult> {
    if (!this.#config.clientId || !this.#config.clientSecret) {
      return {
        ok: this.#config.clientSecret !== undefined || this.#config.webhook !== undefined,
        detail: "no client_id/client_secret pair: only callbacks, session webhooks and " +
          "webhook_url are used (a custom robot has no identity to check; a send tests it)",
      };
    }
    try {
      this.#tokens.invalidate();
      await this.#tokens.get();
      return {
        ok: true,
        detail: `access token issued for client_id ${this.#config.clientId} ` +
          `(robot code ${this.#config.robotCode})`,
      };
    } catch (error) {
      this.#state.recordError(error);
      return { ok: false, detail: (error as Error).message };
    }
  }

  status(): ProviderStatus {
    return this.#state.snapshot();
  }

  /** A robot message as a chat message, or why it is not taken (filters applied). */
  #take(robotMessage: Record<string, unknown>): ChatMessage | { skip: string } {
    const message = dingTalkMessageToChat(robotMessage);
    if ("skip" in message) return message;
    const admitted = this.#state.admit(message);
    return admitted.ok ? message : { skip: `dropped: ${admitted.reason}` };
  }

  #stream(sink: MessageSink, signal: AbortSignal): Promise<void> {
    return runDingTalkStream({
      name: this.name,
      apiBase: this.#config.apiBase,
      wsBase: this.#config.wsBase,
      clientId: this.#config.clientId!,
      clientSecret: this.#config.clientSecret!,
      ua: `courier/${VERSION}`,
      fetch: this.#fetch,
      log: this.#context.log,
      state: this.#state,
      delay: this.#context.reconnectDelay,
      handle: async (data) => {
        const robotMessage = parseJsonText(data);
        if (!robotMessage) {
          this.#context.log?.warn(
            `${this.name}: a stream callback is not a robot message; dropped`,
          );
          return true;
        }
        const message = this.#take(robotMessage);
        if ("skip" in message) return true;
        try {
          await sink([message]);
          return true;
        } catch (error) {
          const why = `message ${message.message_id} not stored: ${(error as Error).message}`;
          this.#state.recordError(why);
          this.#context.log?.warn(`${this.name}: ${why}; DingTalk will deliver it again`);
          return false;
        }
      },
    }, signal);
  }

  async #fetchAccessToken(): Promise<{ token: string; expiresInMs: number }> {
    const body = await callPlatform(
      `${this.#config.apiBase}/v1.0/oauth2/accessToken`,
      {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({
          appKey: this.#config.clientId,
          appSecret: this.#config.clientSecret,
        }),
      },
      {
        platform: "DingTalk",
        what: "oauth2/accessToken",
        fetch: this.#fetch,
        platformFault: dingTalkFault(
          `check client_id and client_secret in ${configWhere(this.name)}`,
        ),
      },
    );
    const token = body.accessToken;
    if (typeof token !== "string" || token === "") {
      throw new ProviderError("DingTalk oauth2/accessToken answered without a token", {
        retryable: true,
      });
    }
    return { token, expiresInMs: expiresInMs(body.expireIn) };
  }

  async #send(message: OutboundChatMessage, signal?: AbortSignal): Promise<SendResult> {
    const reply = message.replyTo?.reply ?? {};
    const sessionWebhook = str(reply.session_webhook);
    const expiresAt = Date.parse(String(reply.expires_at ?? ""));
    if (sessionWebhook && expiresAt - this.#now() > SESSION_WEBHOOK_MARGIN_MS) {
      if (new URL(sessionWebhook).origin !== new URL(this.#config.oapiBase).origin) {
        throw new ProviderError(
          `${this.name}: the session webhook does not point at ${this.#config.oapiBase}; not sent`,
          { retryable: false },
        );
      }
      try {
        await this.#post(sessionWebhook, textBody(message.text), "sessionWebhook", signal);
        return {};
      } catch (error) {
        // A session webhook DingTalk refused (expired early) leaves the OpenAPI, if any.
        const retryable = !(error instanceof ProviderError) || error.retryable;
        if (retryable || !this.#config.clientId || !this.#config.clientSecret) throw error;
        this.#context.log?.warn(`${this.name}: ${(error as Error).message}; using the OpenAPI`);
      }
    }
    if (this.#config.clientId && this.#config.clientSecret) {
      return await this.#sendOpenApi(openApiTarget(message), message.text, signal);
    }
    if (this.#config.webhook) {
      await this.#post(
        await this.#robotWebhookUrl(),
        textBody(message.text),
        "robot webhook",
        signal,
      );
      return {};
    }
    throw new ProviderError(
      `${this.name} cannot send: ${
        sessionWebhook ? "the session webhook has expired and " : ""
      }no client_id/client_secret or webhook_url is configured in ${configWhere(this.name)}`,
      { retryable: false },
    );
  }

  /** POSTs to a session or robot webhook (`errcode != 0` is a failure). */
  async #post(url: string, body: unknown, what: string, signal?: AbortSignal): Promise<void> {
    await callPlatform(url, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify(body),
    }, { platform: "DingTalk", what, fetch: this.#fetch, signal, platformFault: dingTalkFault() });
  }

  /** The custom robot webhook URL, with `timestamp` and URL-encoded `sign` when it has a secret. */
  async #robotWebhookUrl(): Promise<string> {
    const webhook = this.#config.webhook!;
    const url = new URL(webhook.url);
    if (webhook.secret) {
      const timestamp = String(this.#now());
      url.searchParams.set("timestamp", timestamp);
      url.searchParams.set("sign", await dingTalkSign(timestamp, webhook.secret));
    }
    return url.href;
  }

  async #sendOpenApi(
    target: OpenApiTarget,
    text: string,
    signal?: AbortSignal,
  ): Promise<SendResult> {
    const common = {
      robotCode: this.#config.robotCode,
      msgKey: "sampleText",
      msgParam: JSON.stringify({ content: text }),
    };
    if ("group" in target) {
      const body = await this.#callApi(
        "/v1.0/robot/groupMessages/send",
        "robot/groupMessages/send",
        { ...common, openConversationId: target.group },
        signal,
      );
      return str(body.processQueryKey) ? { message_id: body.processQueryKey as string } : {};
    }
    const body = await this.#callApi(
      "/v1.0/robot/oToMessages/batchSend",
      "robot/oToMessages/batchSend",
      { ...common, userIds: [target.user] },
      signal,
    );
    const listed = (key: string) => Array.isArray(body[key]) && body[key].includes(target.user);
    if (listed("flowControlledStaffIdList")) {
      throw new ProviderError(
        `DingTalk robot/oToMessages/batchSend: ${target.user} is rate-limited`,
        {
          retryable: true,
          platformError: "flowControlledStaffIdList",
        },
      );
    }
    if (listed("invalidStaffIdList")) {
      throw new ProviderError(
        `DingTalk robot/oToMessages/batchSend: ${target.user} is not a user id of this organization`,
        { retryable: false, platformError: "invalidStaffIdList" },
      );
    }
    return str(body.processQueryKey) ? { message_id: body.processQueryKey as string } : {};
  }

  /** Calls an OpenAPI with the access token; a token DingTalk rejects is replaced once. */
  #callApi(
    path: string,
    what: string,
    payload: unknown,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    return this.#tokens.use(
      (token) =>
        callPlatform(`${this.#config.apiBase}${path}`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: "application/json",
            "x-acs-dingtalk-access-token": token,
          },
          body: JSON.stringify(payload),
        }, {
          platform: "DingTalk",
          what,
          fetch: this.#fetch,
          signal,
          platformFault: dingTalkFault(),
        }),
      (error) =>
        error instanceof ProviderError &&
        (error.platformError ?? "").startsWith("InvalidAuthentication"),
    );
  }
}

function textBody(text: string): Record<string, unknown> {
  return { msgtype: "text", text: { content: text } };
}

/**
 * Where an OpenAPI send goes: a reply to the conversation of the message it
 * answers (group: `openConversationId`; one-to-one: the sender's staff id);
 * otherwise `to` (a `cid…` conversation id is a group, anything else a
 * user id; `extra.conversation_type` `"group"`/`"direct"` overrides).
 */
function openApiTarget(message: OutboundChatMessage): OpenApiTarget {
  const reply = message.replyTo?.reply;
  if (reply) {
    if (reply.conversation_type === "1" && str(reply.sender_staff_id)) {
      return { user: reply.sender_staff_id as string };
    }
    if (reply.conversation_type !== "1" && str(reply.conversation_id)) {
      return { group: reply.conversation_id as string };
    }
  }
  const kind = message.extra?.conversation_type;
  const group = kind === "group" || (kind !== "direct" && message.to.startsWith("cid"));
  return group ? { group: message.to } : { user: message.to };
}

/**
 * Creates the DingTalk provider of `config.json` `providers.<name>`.
 *
 * @example
 * ```ts
 * const ding = createDingTalkProvider("ding", {
 *   type: "dingtalk", mode: "stream", client_id: "dingxxxx", client_secret: "env:DING_SECRET",
 * });
 * const stop = new AbortController();
 * ding.connect?.(async (messages) => console.log(messages), stop.signal);
 * ```
 *
 * @throws {ConfigError} when the entry is wrong (naming the field).
 */
export function createDingTalkProvider(
  name: string,
  rawConfig: Record<string, unknown>,
  context: ProviderContext = {},
): Provider {
  return new DingTalkProvider(parseDingTalkConfig(name, rawConfig, context), context);
}
