/**
 * A fake Lark/Feishu open platform on loopback: the tenant access token,
 * `bot/v3/info`, `im/v1/messages` (send and reply), a custom bot webhook
 * that checks its `sign`, and the event push side (encrypting and signing
 * events as the platform does, with its own implementation from
 * `node:crypto`, independent of courier's).
 */
import { createCipheriv, createHash, createHmac, randomBytes } from "node:crypto";
import { FakeHttp, json, type RecordedRequest } from "./fake_http.ts";

/** What the fake platform knows. */
export interface FakeLarkOptions {
  /** The app's credentials. */
  appId?: string;
  /** The app's secret. */
  appSecret?: string;
  /** Lifetime of a tenant token, seconds (default 7200). */
  tokenExpireS?: number;
  /** The bot's open_id. */
  botOpenId?: string;
  /** The custom bot webhook's signing secret (unset: unsigned webhook). */
  webhookSecret?: string;
  /** The platform's clock (ms), for the webhook's 1-hour window. */
  now?: () => number;
}

/** A message the fake took from courier. */
export interface LarkSent {
  /** `create` (im/v1/messages), `reply`, or `webhook` (custom bot). */
  kind: "create" | "reply" | "webhook";
  /** The message's text. */
  text: string;
  /** `receive_id_type`/`receive_id` (create), the replied message id (reply). */
  target: string;
  /** `reply_in_thread` of a reply. */
  inThread?: boolean;
  /** The `uuid` (idempotency key). */
  uuid?: string;
}

/** How to push an event at courier. */
export interface DeliverOptions {
  /** Encrypt the body with this key and sign the request. */
  encryptKey?: string;
  /** Sign with this key instead (a forged signature). */
  signWith?: string;
  /** Leave the signature headers out. */
  unsigned?: boolean;
  /** The `X-Lark-Request-Timestamp` (seconds; default now). */
  timestamp?: number;
}

/** Encrypts like the platform: base64(IV ‖ AES-256-CBC(SHA-256(key), PKCS#7)). */
export function larkEncrypt(encryptKey: string, plaintext: string): string {
  const key = createHash("sha256").update(encryptKey).digest();
  const iv = randomBytes(16);
  const cipher = createCipheriv("aes-256-cbc", key, iv);
  return Buffer.concat([iv, cipher.update(plaintext, "utf8"), cipher.final()]).toString("base64");
}

/** The platform's `X-Lark-Signature`. */
export function larkSign(timestamp: string, nonce: string, key: string, body: string): string {
  return createHash("sha256").update(timestamp + nonce + key + body).digest("hex");
}

/** The fake platform. */
export class FakeLark {
  /** The API base to configure (`api_base`). */
  readonly apiBase: string;
  /** The custom bot webhook URL (`webhook_url`). */
  readonly webhookUrl: string;
  /** Messages taken from courier. */
  readonly sent: LarkSent[] = [];
  /** Tenant tokens issued so far. */
  tokensIssued = 0;
  readonly http: FakeHttp;
  readonly #options: Required<Omit<FakeLarkOptions, "webhookSecret">> & { webhookSecret?: string };
  readonly #validTokens = new Set<string>();
  readonly #byUuid = new Map<string, string>();

  private constructor(http: FakeHttp, options: FakeLarkOptions) {
    this.http = http;
    this.apiBase = http.origin;
    this.webhookUrl = `${http.origin}/open-apis/bot/v2/hook/hook-1`;
    this.#options = {
      appId: "cli_fake",
      appSecret: "fake-app-secret",
      tokenExpireS: 7200,
      botOpenId: "ou_bot",
      now: Date.now,
      ...options,
    };
  }

  /** Starts the fake on a leased port. */
  static async start(options: FakeLarkOptions = {}): Promise<FakeLark> {
    const box: { fake?: FakeLark } = {};
    const http = await FakeHttp.start((r) => box.fake!.#handle(r));
    box.fake = new FakeLark(http, options);
    return box.fake;
  }

  /** Makes every token issued so far invalid (as after the platform rotated it). */
  revokeTokens(): void {
    this.#validTokens.clear();
  }

  /**
   * POSTs `event` to courier's webhook at `url` as the platform does:
   * encrypted and signed when `encryptKey` is given.
   */
  deliver(url: string, event: unknown, options: DeliverOptions = {}): Promise<Response> {
    const body = options.encryptKey
      ? JSON.stringify({ encrypt: larkEncrypt(options.encryptKey, JSON.stringify(event)) })
      : JSON.stringify(event);
    const headers: Record<string, string> = { "content-type": "application/json" };
    const key = options.signWith ?? options.encryptKey;
    if (key && !options.unsigned) {
      const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
      const nonce = crypto.randomUUID();
      headers["x-lark-request-timestamp"] = timestamp;
      headers["x-lark-request-nonce"] = nonce;
      headers["x-lark-signature"] = larkSign(timestamp, nonce, key, body);
    }
    return fetch(url, { method: "POST", headers, body });
  }

  /** Stops the fake. */
  close(): Promise<void> {
    return this.http.close();
  }

  #handle(r: RecordedRequest): Response {
    const path = r.path;
    if (path === "/open-apis/auth/v3/tenant_access_token/internal") return this.#token(r);
    if (path.startsWith("/open-apis/bot/v2/hook/")) return this.#webhook(r);
    const auth = r.headers.get("authorization") ?? "";
    if (!this.#validTokens.has(auth.replace(/^Bearer /, ""))) {
      return json({ code: 99991663, msg: "Invalid access token for authorization." }, 400);
    }
    if (path === "/open-apis/bot/v3/info") {
      return json({
        code: 0,
        msg: "ok",
        bot: { app_name: "Courier", open_id: this.#options.botOpenId },
      });
    }
    const content = JSON.parse(String(r.body?.content ?? "{}"));
    const uuid = typeof r.body?.uuid === "string" ? r.body.uuid : undefined;
    if (uuid && this.#byUuid.has(uuid)) {
      return json({ code: 0, msg: "success", data: { message_id: this.#byUuid.get(uuid) } });
    }
    const messageId = `om_sent_${this.sent.length + 1}`;
    if (uuid) this.#byUuid.set(uuid, messageId);
    const reply = path.match(/^\/open-apis\/im\/v1\/messages\/([^/]+)\/reply$/);
    if (reply) {
      this.sent.push({
        kind: "reply",
        text: content.text,
        target: decodeURIComponent(reply[1]),
        inThread: r.body?.reply_in_thread === true,
        uuid,
      });
    } else if (path === "/open-apis/im/v1/messages") {
      const idType = r.query.get("receive_id_type");
      if (!idType) return json({ code: 99992402, msg: "field validation failed" }, 400);
      this.sent.push({
        kind: "create",
        text: content.text,
        target: `${idType}:${r.body?.receive_id}`,
        uuid,
      });
    } else {
      return json({ code: 404, msg: "not found" }, 404);
    }
    return json({ code: 0, msg: "success", data: { message_id: messageId } });
  }

  #token(r: RecordedRequest): Response {
    if (r.body?.app_id !== this.#options.appId || r.body?.app_secret !== this.#options.appSecret) {
      return json({ code: 10014, msg: "app secret invalid" }, 400);
    }
    const token = `t-${++this.tokensIssued}`;
    this.#validTokens.add(token);
    return json({
      code: 0,
      msg: "ok",
      tenant_access_token: token,
      expire: this.#options.tokenExpireS,
    });
  }

  #webhook(r: RecordedRequest): Response {
    const secret = this.#options.webhookSecret;
    if (secret) {
      const timestamp = String(r.body?.timestamp ?? "");
      const expected = createHmac("sha256", `${timestamp}\n${secret}`).update("").digest("base64");
      const age = Math.abs(this.#options.now() / 1000 - Number(timestamp));
      if (r.body?.sign !== expected || !(age <= 3600)) {
        return json({
          code: 19021,
          msg: "sign match fail or timestamp is not within one hour from current time",
        });
      }
    }
    const content = (r.body?.content ?? {}) as { text?: string };
    this.sent.push({ kind: "webhook", text: String(content.text), target: r.path });
    return json({ code: 0, msg: "success", data: {} });
  }
}

let seq = 0;

/** Options of {@link larkMessageEvent}. */
export interface LarkEventOptions {
  /** The message id (default `om_<n>`). */
  messageId?: string;
  /** The event id (default `ev-<n>`). */
  eventId?: string;
  /** The verification token the event carries. */
  token?: string;
  /** `p2p` or `group` (default). */
  chatType?: "p2p" | "group";
  /** A thread id: the message is in that thread. */
  threadId?: string;
  /** The message type (default `text`). */
  messageType?: string;
  /** The content (default a text mentioning the bot). */
  content?: unknown;
  /** The mentions (default: the bot as `@_user_1`). */
  mentions?: unknown[];
  /** The sender's open_id (default `ou_alice`). */
  sender?: string;
}

/** An im.message.receive_v1 event as the platform sends it (schema 2.0). */
export function larkMessageEvent(options: LarkEventOptions = {}): Record<string, unknown> {
  seq++;
  return {
    schema: "2.0",
    header: {
      event_id: options.eventId ?? `ev-${seq}`,
      event_type: "im.message.receive_v1",
      create_time: String(Date.now()),
      token: options.token ?? "",
      app_id: "cli_fake",
      tenant_key: "tenant-1",
    },
    event: {
      sender: {
        sender_id: {
          open_id: options.sender ?? "ou_alice",
          union_id: "on_alice",
          user_id: "alice",
        },
        sender_type: "user",
        tenant_key: "tenant-1",
      },
      message: {
        message_id: options.messageId ?? `om_${seq}`,
        chat_id: "oc_42",
        chat_type: options.chatType ?? "group",
        message_type: options.messageType ?? "text",
        content: JSON.stringify(options.content ?? { text: "@_user_1 deploy is red" }),
        create_time: "1700000000000",
        ...(options.threadId ? { thread_id: options.threadId, root_id: "om_root" } : {}),
        mentions: options.mentions ?? [
          { key: "@_user_1", id: { open_id: "ou_bot", union_id: "on_bot" }, name: "Courier" },
        ],
      },
    },
  };
}
