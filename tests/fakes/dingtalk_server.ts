/**
 * A fake DingTalk open platform on loopback: the access token, the Stream
 * gateway (`gateway/connections/open` and its WebSocket: CALLBACK frames,
 * SYSTEM pings and disconnects, acks recorded), the robot OpenAPI sends,
 * session webhooks and a custom robot webhook that checks its `sign`, and
 * the callback side (signing robot messages as the platform does, with its
 * own implementation from `node:crypto`).
 */
import { createHmac } from "node:crypto";
import { FakeHttp, json, type RecordedRequest } from "./fake_http.ts";

/** What the fake platform knows. */
export interface FakeDingTalkOptions {
  /** The app's client id. */
  clientId?: string;
  /** The app's client secret. */
  clientSecret?: string;
  /** Lifetime of an access token, seconds (default 7200). */
  tokenExpireS?: number;
  /** The custom robot webhook's `SEC…` secret. */
  webhookSecret?: string;
}

/** A message the fake took from courier. */
export interface DingTalkSent {
  /** `session` (session webhook), `group`, `user` (OpenAPI) or `robot` (custom robot webhook). */
  kind: "session" | "group" | "user" | "robot";
  /** The text. */
  text: string;
  /** The session, conversation id, user id or robot token. */
  target: string;
  /** `robotCode` of an OpenAPI send. */
  robotCode?: string;
}

/** A frame courier sent on the stream. */
export interface StreamReply {
  /** `code`, `headers`, `message`, `data` as sent. */
  code?: number;
  headers?: Record<string, unknown>;
  message?: string;
  data?: string;
}

/** The platform's `sign` of a timestamp. */
export function dingSign(timestamp: string, secret: string): string {
  return createHmac("sha256", secret).update(`${timestamp}\n${secret}`).digest("base64");
}

/** The fake platform. */
export class FakeDingTalk {
  /** The API base (`api_base`) and old API base (`oapi_base`): the same fake. */
  readonly apiBase: string;
  /** The custom robot webhook URL (`webhook_url`). */
  readonly webhookUrl: string;
  /** Messages taken from courier. */
  readonly sent: DingTalkSent[] = [];
  /** Frames courier sent on the stream (acks and ping answers), in order. */
  readonly replies: StreamReply[] = [];
  /** Access tokens issued so far. */
  tokensIssued = 0;
  /** WebSocket connections accepted so far. */
  connections = 0;
  /** `ua` and `subscriptions` of the last connection opened. */
  lastOpen: Record<string, unknown> | null = null;
  readonly http: FakeHttp;
  readonly #options: Required<Omit<FakeDingTalkOptions, "webhookSecret">> & {
    webhookSecret?: string;
  };
  readonly #tokens = new Set<string>();
  readonly #tickets = new Set<string>();
  #socket: WebSocket | null = null;
  #frames = 0;

  private constructor(http: FakeHttp, options: FakeDingTalkOptions) {
    this.http = http;
    this.apiBase = http.origin;
    this.webhookUrl = `${http.origin}/robot/send?access_token=robot-1`;
    this.#options = {
      clientId: "dingfake",
      clientSecret: "fake-client-secret",
      tokenExpireS: 7200,
      ...options,
    };
  }

  /** Starts the fake on a leased port. */
  static async start(options: FakeDingTalkOptions = {}): Promise<FakeDingTalk> {
    const box: { fake?: FakeDingTalk } = {};
    const http = await FakeHttp.start((r, request) => box.fake!.#handle(r, request));
    box.fake = new FakeDingTalk(http, options);
    return box.fake;
  }

  /** Whether a stream connection is open now. */
  get connected(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  /** Makes every access token issued so far invalid. */
  revokeTokens(): void {
    this.#tokens.clear();
  }

  /** A robot message as DingTalk sends it (a session webhook on this fake). */
  robotMessage(fields: Record<string, unknown> = {}): Record<string, unknown> {
    const now = Date.now();
    return {
      conversationId: "cidGroup42==",
      conversationType: "2",
      conversationTitle: "Ops",
      chatbotUserId: "$:LWCP_v1:$bot",
      msgId: `msg${crypto.randomUUID()}`,
      senderNick: "Alice",
      isAdmin: false,
      senderStaffId: "staff-7",
      senderId: "$:LWCP_v1:$alice",
      sessionWebhookExpiredTime: now + 90 * 60_000,
      createAt: now,
      senderCorpId: "dingcorp",
      isInAtList: true,
      sessionWebhook: `${this.apiBase}/robot/sendBySession?session=s-${now}`,
      robotCode: this.#options.clientId,
      msgtype: "text",
      text: { content: " deploy is red again" },
      ...fields,
    };
  }

  /** POSTs a robot message to courier's callback URL, signed (by `secret`, default the app's). */
  deliver(
    url: string,
    message: unknown,
    options: { secret?: string; timestamp?: number; unsigned?: boolean } = {},
  ): Promise<Response> {
    const timestamp = String(options.timestamp ?? Date.now());
    const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
    if (!options.unsigned) {
      headers.timestamp = timestamp;
      headers.sign = dingSign(timestamp, options.secret ?? this.#options.clientSecret);
    }
    return fetch(url, { method: "POST", headers, body: JSON.stringify(message) });
  }

  /** Sends a CALLBACK frame with a robot message; returns its `messageId`. */
  push(message: unknown): string {
    const messageId = `frame-${++this.#frames}`;
    this.#send({
      specVersion: "1.0",
      type: "CALLBACK",
      headers: {
        appId: "app-1",
        connectionId: "conn-1",
        contentType: "application/json",
        messageId,
        time: String(Date.now()),
        topic: "/v1.0/im/bot/messages/get",
      },
      data: JSON.stringify(message),
    });
    return messageId;
  }

  /** Sends a SYSTEM ping and resolves with courier's answer to it. */
  async ping(data: string): Promise<StreamReply> {
    const messageId = `ping-${++this.#frames}`;
    this.#send({
      specVersion: "1.0",
      type: "SYSTEM",
      headers: {
        contentType: "application/json",
        messageId,
        time: String(Date.now()),
        topic: "ping",
      },
      data,
    });
    await this.http.until(() => this.replyTo(messageId) !== undefined, `an answer to ${messageId}`);
    return this.replyTo(messageId)!;
  }

  /** Sends a SYSTEM disconnect (the gateway asks the client to reconnect). */
  requestDisconnect(): void {
    this.#send({
      specVersion: "1.0",
      type: "SYSTEM",
      headers: {
        contentType: "application/json",
        messageId: `disc-${++this.#frames}`,
        topic: "disconnect",
      },
      data: JSON.stringify({ reason: "gateway restarting" }),
    });
  }

  /** Closes the current stream connection from the server side, without warning. */
  dropConnection(): void {
    this.#socket?.close(1011, "gateway gone");
  }

  /** Courier's frame that answers `messageId`, if any. */
  replyTo(messageId: string): StreamReply | undefined {
    return this.replies.find((r) => r.headers?.messageId === messageId);
  }

  /** Stops the fake. */
  async close(): Promise<void> {
    if (this.#socket && this.#socket.readyState <= WebSocket.OPEN) {
      const closed = new Promise((resolve) => this.#socket!.addEventListener("close", resolve));
      this.#socket.close();
      await closed;
    }
    await this.http.close();
  }

  #send(frame: unknown): void {
    if (!this.connected) throw new Error("no stream connection to send on");
    this.#socket!.send(JSON.stringify(frame));
  }

  #handle(r: RecordedRequest, request: Request): Response {
    switch (r.path) {
      case "/v1.0/oauth2/accessToken":
        return this.#accessToken(r);
      case "/v1.0/gateway/connections/open":
        return this.#open(r);
      case "/connect":
        return this.#upgrade(r, request);
      case "/robot/sendBySession":
        this.sent.push({ kind: "session", text: textOf(r), target: r.query.get("session") ?? "" });
        return json({ errcode: 0, errmsg: "ok" });
      case "/robot/send":
        return this.#robot(r);
      case "/v1.0/robot/groupMessages/send":
      case "/v1.0/robot/oToMessages/batchSend":
        return this.#openApiSend(r);
    }
    return json({ code: "NotFound", message: "no such API" }, 404);
  }

  #accessToken(r: RecordedRequest): Response {
    if (
      r.body?.appKey !== this.#options.clientId || r.body?.appSecret !== this.#options.clientSecret
    ) {
      return json(
        { code: "invalidClientIdOrSecret", message: "无效的clientId或者clientSecret" },
        400,
      );
    }
    const token = `at-${++this.tokensIssued}`;
    this.#tokens.add(token);
    return json({ accessToken: token, expireIn: this.#options.tokenExpireS });
  }

  #open(r: RecordedRequest): Response {
    if (
      r.body?.clientId !== this.#options.clientId ||
      r.body?.clientSecret !== this.#options.clientSecret
    ) {
      return json(
        { code: "invalidClientIdOrSecret", message: "无效的clientId或者clientSecret" },
        400,
      );
    }
    this.lastOpen = { ua: r.body?.ua, subscriptions: r.body?.subscriptions };
    const ticket = crypto.randomUUID();
    this.#tickets.add(ticket);
    return json({ endpoint: `ws://127.0.0.1:${new URL(this.apiBase).port}/connect`, ticket });
  }

  #upgrade(r: RecordedRequest, request: Request): Response {
    const ticket = r.query.get("ticket") ?? "";
    if (!this.#tickets.delete(ticket)) {
      return json({ code: "InvalidTicket", message: "bad ticket" }, 403);
    }
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      this.#socket = socket;
      this.connections++;
      this.http.notify();
    };
    socket.onmessage = (event) => {
      this.replies.push(JSON.parse(String(event.data)));
      this.http.notify();
    };
    socket.onclose = () => this.http.notify();
    return response;
  }

  #robot(r: RecordedRequest): Response {
    const secret = this.#options.webhookSecret;
    if (secret) {
      const timestamp = r.query.get("timestamp") ?? "";
      const fresh = Math.abs(Date.now() - Number(timestamp)) <= 3600_000;
      if (r.query.get("sign") !== dingSign(timestamp, secret) || !fresh) {
        return json({ errcode: 310000, errmsg: "sign not match" });
      }
    }
    this.sent.push({ kind: "robot", text: textOf(r), target: r.query.get("access_token") ?? "" });
    return json({ errcode: 0, errmsg: "ok" });
  }

  #openApiSend(r: RecordedRequest): Response {
    if (!this.#tokens.has(r.headers.get("x-acs-dingtalk-access-token") ?? "")) {
      return json({ code: "InvalidAuthentication", message: "不合法的access_token" }, 401);
    }
    const text = JSON.parse(String(r.body?.msgParam ?? "{}")).content;
    const robotCode = String(r.body?.robotCode);
    if (r.path.endsWith("groupMessages/send")) {
      this.sent.push({
        kind: "group",
        text,
        target: String(r.body?.openConversationId),
        robotCode,
      });
    } else {
      for (const user of (r.body?.userIds ?? []) as string[]) {
        this.sent.push({ kind: "user", text, target: user, robotCode });
      }
    }
    return json({ processQueryKey: `pqk-${this.sent.length}` });
  }
}

function textOf(r: RecordedRequest): string {
  return String((r.body?.text as { content?: string } | undefined)?.content ?? "");
}
