/**
 * A fake Slack on loopback that speaks what courier uses of the real one:
 * the Web API (`auth.test`, `apps.connections.open`, `chat.postMessage`,
 * bearer tokens, `ok: false` errors, HTTP 429 with `Retry-After`) and
 * Socket Mode (a WebSocket that says `hello`, sends `events_api` envelopes,
 * records the acks by `envelope_id`, and can ask for a reconnect with
 * `disconnect` or be cut without one). Signed Events API requests for the
 * webhook path are built with {@link signedSlackRequest}.
 */
import { hmacSha256, toHex } from "../../lib/providers/mod.ts";
import { eventually } from "../helpers/mail.ts";
import { leaseTestPort } from "../helpers/ports.ts";
import { Injections } from "./injections.ts";
import { TcpRelay } from "./tcp_relay.ts";

type Json = Record<string, unknown>;

/** One Web API call as the fake received it. */
export interface SlackCall {
  /** The method (`chat.postMessage`). */
  method: string;
  /** The bearer token sent. */
  token: string;
  /** The JSON body. */
  body: Json;
  /** When it arrived (ms since the epoch). */
  at: number;
}

/** An answer to inject for the next call of a method. */
export interface SlackInjected {
  /** HTTP status (default 200). */
  status?: number;
  /** Response headers (`retry-after`). */
  headers?: Record<string, string>;
  /** The JSON body (default `{ok: false, error: "ratelimited"}` for 429). */
  body?: Json;
}

/** The bot the fake Slack knows. */
export const FAKE_SLACK = {
  botToken: "xoxb-fake-bot-token",
  appToken: "xapp-fake-app-token",
  botUserId: "UBOT",
  botId: "BBOT",
  appId: "AAPP",
  teamId: "TTEAM",
  signingSecret: "test-signing-secret",
} as const;

/** A running fake Slack. */
export class FakeSlack {
  /** The Web API base (`api_base` of the provider). */
  readonly apiBase: string;
  /** Every Web API call, in order. */
  readonly calls: SlackCall[] = [];
  /** The envelope ids acknowledged, in order. */
  readonly acks: string[] = [];
  /** Socket Mode connections opened so far (each got a `hello`). */
  connections = 0;
  readonly #server: Deno.HttpServer;
  readonly #relay: TcpRelay;
  readonly #injected = new Injections<SlackInjected>();
  #socket: WebSocket | null = null;
  #envelopes = 0;
  #posted = 0;

  private constructor(server: Deno.HttpServer, relay: TcpRelay, port: number) {
    this.#server = server;
    this.#relay = relay;
    this.apiBase = `http://127.0.0.1:${port}/api`;
  }

  /** Starts the fake on a leased loopback port (its WebSocket behind a {@link TcpRelay}). */
  static async start(): Promise<FakeSlack> {
    const port = await leaseTestPort();
    let fake: FakeSlack | null = null;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port, onListen() {} },
      (request) => fake!.#handle(request),
    );
    fake = new FakeSlack(server, await TcpRelay.start(port), port);
    return fake;
  }

  /** A `providers.<name>` entry of `type: "slack"` that talks to this fake. */
  config(extra: Json = {}): Json {
    return {
      type: "slack",
      signing_secret: FAKE_SLACK.signingSecret,
      bot_token: FAKE_SLACK.botToken,
      app_token: FAKE_SLACK.appToken,
      api_base: this.apiBase,
      ...extra,
    };
  }

  /** The `chat.postMessage` bodies received. */
  get posts(): Json[] {
    return this.calls.filter((c) => c.method === "chat.postMessage").map((c) => c.body);
  }

  /** Makes the next call of `method` answer `answer` (queued in order). */
  inject(method: string, answer: SlackInjected): void {
    this.#injected.add(method, answer);
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/link/") return this.#upgrade(request);
    const method = url.pathname.replace(/^\/api\//, "");
    const token = (request.headers.get("authorization") ?? "").replace(/^Bearer /, "");
    const text = await request.text();
    let body: Json = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = { unparsed: text };
    }
    this.calls.push({ method, token, body, at: Date.now() });
    const injected = this.#injected.take(method);
    if (injected) {
      const status = injected.status ?? 200;
      const answer = injected.body ?? (status === 429 ? { ok: false, error: "ratelimited" } : {});
      return Response.json(answer, { status, headers: injected.headers });
    }
    const bot = token === FAKE_SLACK.botToken;
    switch (method) {
      case "auth.test":
        if (!bot) return Response.json({ ok: false, error: "invalid_auth" });
        return Response.json({
          ok: true,
          url: "https://fake.slack.com/",
          team: "Fake Team",
          user: "courier",
          team_id: FAKE_SLACK.teamId,
          user_id: FAKE_SLACK.botUserId,
          bot_id: FAKE_SLACK.botId,
        });
      case "apps.connections.open":
        if (token !== FAKE_SLACK.appToken) {
          return Response.json({ ok: false, error: "invalid_auth" });
        }
        return Response.json({
          ok: true,
          url: `ws://127.0.0.1:${this.#relay.port}/link/?ticket=t${this.connections + 1}`,
        });
      case "chat.postMessage": {
        if (!bot) return Response.json({ ok: false, error: "invalid_auth" });
        if (typeof body.channel !== "string") {
          return Response.json({ ok: false, error: "channel_not_found" });
        }
        const ts = `1700000000.${String(++this.#posted).padStart(6, "0")}`;
        return Response.json({ ok: true, channel: body.channel, ts, message: { text: body.text } });
      }
      default:
        return Response.json({ ok: false, error: "unknown_method" }, { status: 404 });
    }
  }

  #upgrade(request: Request): Response {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      this.#socket = socket;
      this.connections++;
      socket.send(JSON.stringify({
        type: "hello",
        num_connections: 1,
        debug_info: { host: "fake", approximate_connection_time: 18060 },
        connection_info: { app_id: FAKE_SLACK.appId },
      }));
    };
    socket.onmessage = (event) => {
      try {
        const ack = JSON.parse(String(event.data));
        if (typeof ack.envelope_id === "string") this.acks.push(ack.envelope_id);
      } catch {
        // not an ack
      }
    };
    socket.onclose = () => {
      if (this.#socket === socket) this.#socket = null;
    };
    return response;
  }

  /** Waits until the `n`th Socket Mode connection is open (and said hello). */
  async connected(n = 1): Promise<void> {
    await eventually(() => this.connections >= n && this.#socket?.readyState === WebSocket.OPEN, {
      what: `Socket Mode connection ${n}`,
    });
  }

  /**
   * Sends an envelope over the open socket and returns its `envelope_id`
   * (`events_api` by default: `payload` is an Events API payload).
   */
  sendEnvelope(payload: Json, type = "events_api"): string {
    if (!this.#socket || this.#socket.readyState !== WebSocket.OPEN) {
      throw new Error("no Socket Mode connection is open");
    }
    const envelopeId = `env-${++this.#envelopes}`;
    this.#socket.send(JSON.stringify({
      envelope_id: envelopeId,
      payload,
      type,
      accepts_response_payload: type !== "events_api",
      retry_attempt: 0,
      retry_reason: "",
    }));
    return envelopeId;
  }

  /** Waits for the ack of `envelopeId`. */
  async acked(envelopeId: string): Promise<void> {
    await eventually(() => this.acks.includes(envelopeId), { what: `the ack of ${envelopeId}` });
  }

  /** Asks the client to reconnect, as Slack does before recycling a link. */
  disconnect(reason = "refresh_requested"): void {
    this.#socket?.send(
      JSON.stringify({ type: "disconnect", reason, debug_info: { host: "fake" } }),
    );
  }

  /** Cuts the Socket Mode connection without a word (no disconnect, no close frame). */
  drop(): void {
    this.#relay.cut();
  }

  /** Stops the fake (`await using fake = await Fake….start()` does it at the end of the block). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Stops the fake. */
  async close(): Promise<void> {
    this.#relay.close();
    try {
      this.#socket?.close();
    } catch {
      // already closed
    }
    await this.#server.shutdown();
  }
}

/** Options of {@link slackEvent}. */
export interface SlackEventOptions {
  /** `message` (default) or `app_mention`. */
  type?: string;
  /** The channel (default `C1`). */
  channel?: string;
  /** `channel`, `group`, `im`, `mpim` (message events only; default `channel`). */
  channel_type?: string;
  /** The message ts (default `1700000000.000100`). */
  ts?: string;
  /** The text (default `hello`). */
  text?: string;
  /** The sender (default `U1`). */
  user?: string;
  /** The thread root's ts, for a message in a thread. */
  thread_ts?: string;
  /** More fields of the event (`subtype`, `bot_id`, `app_id`…). */
  extra?: Json;
}

let eventCounter = 0;

/** An Events API `event_callback` payload for a message, as Slack sends it. */
export function slackEvent(options: SlackEventOptions = {}): Json {
  const type = options.type ?? "message";
  const event: Json = {
    type,
    user: options.user ?? "U1",
    text: options.text ?? "hello",
    ts: options.ts ?? "1700000000.000100",
    channel: options.channel ?? "C1",
    event_ts: options.ts ?? "1700000000.000100",
    ...(type === "message" ? { channel_type: options.channel_type ?? "channel" } : {}),
    ...(options.thread_ts ? { thread_ts: options.thread_ts } : {}),
    ...options.extra,
  };
  return {
    token: "legacy-verification-token",
    team_id: FAKE_SLACK.teamId,
    api_app_id: FAKE_SLACK.appId,
    event,
    type: "event_callback",
    event_id: `Ev${++eventCounter}`,
    event_time: 1700000000,
    authorizations: [{
      enterprise_id: null,
      team_id: FAKE_SLACK.teamId,
      user_id: FAKE_SLACK.botUserId,
      is_bot: true,
      is_enterprise_install: false,
    }],
  };
}

/**
 * A request to the Events API webhook signed as Slack signs it: `v0=` HMAC-SHA256 of
 * `v0:{timestamp}:{body}` with the signing secret.
 */
export async function signedSlackRequest(
  secret: string,
  body: string,
  options: { timestamp?: number; headers?: Record<string, string>; contentType?: string } = {},
): Promise<{ request: Request; body: Uint8Array }> {
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = `v0=${toHex(await hmacSha256(secret, `v0:${timestamp}:${body}`))}`;
  const request = new Request("http://127.0.0.1/api/v1/inbound/team", {
    method: "POST",
    headers: {
      "content-type": options.contentType ?? "application/json",
      "x-slack-request-timestamp": timestamp,
      "x-slack-signature": signature,
      ...options.headers,
    },
    body,
  });
  return { request, body: new TextEncoder().encode(body) };
}
