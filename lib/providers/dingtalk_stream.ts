/**
 * DingTalk Stream mode: the long connection that needs no public URL.
 * `POST /v1.0/gateway/connections/open` gives an endpoint and a ticket; the
 * WebSocket to `endpoint?ticket=…` carries SYSTEM frames (`ping`, answered
 * with its data; `disconnect`, after which we reconnect) and CALLBACK frames
 * (robot messages), each acknowledged by its `messageId` only once courier
 * holds the message. An unacknowledged message is delivered again by
 * DingTalk, so nothing is lost when courier stops or fails to store it.
 *
 * @module
 */
import type { Logger } from "../log/mod.ts";
import { callPlatform } from "./common.ts";
import { type ProviderState, runReconnecting } from "./connection.ts";
import { DINGTALK_BOT_TOPIC, dingTalkFault } from "./dingtalk_messages.ts";
import { ProviderError } from "./provider.ts";

/** One frame from the stream gateway. */
export interface StreamFrame {
  /** `SYSTEM`, `EVENT` or `CALLBACK`. */
  type?: string;
  /** `topic`, `messageId`, `contentType`, … */
  headers?: Record<string, unknown>;
  /** The payload, a JSON string. */
  data?: string;
}

/** What {@link openStreamConnection} needs: where the gateway is, and who asks. */
export interface StreamOpenOptions {
  /** The provider name, for log lines and errors. */
  name: string;
  /** The API base (`https://api.dingtalk.com`). */
  apiBase: string;
  /** When set, the WebSocket goes to this origin instead of the endpoint's (proxies, tests). */
  wsBase?: string;
  /** The app's client id (AppKey) and secret. */
  clientId: string;
  /** The app's client secret (AppSecret). */
  clientSecret: string;
  /** Who we are, for DingTalk (`courier/0.1.0`). */
  ua: string;
  /** The HTTP client. */
  fetch: typeof fetch;
}

/** What the stream hands over, and how it reports. */
export interface DingTalkStreamOptions extends StreamOpenOptions {
  /** The daemon's log. */
  log?: Logger;
  /**
   * Takes a robot message (the CALLBACK's `data`): resolves `true` to
   * acknowledge it (stored, or deliberately dropped), `false` to leave it
   * unacknowledged so that DingTalk delivers it again.
   */
  handle(data: string): Promise<boolean>;
  /** The live state to keep (connected, the last error). */
  state: ProviderState;
  /** The reconnect delay (default `reconnectDelayMs`). */
  delay?: (attempt: number) => number;
}

/** The acknowledgement of a CALLBACK (the SDKs' frame). */
export function ackFrame(messageId: string, response: unknown = "OK"): string {
  return JSON.stringify({
    code: 200,
    headers: { contentType: "application/json", messageId },
    message: "OK",
    data: JSON.stringify({ response }),
  });
}

/** Asks the gateway for a connection: the WebSocket URL with its ticket. */
export async function openStreamConnection(
  options: StreamOpenOptions,
  signal?: AbortSignal,
): Promise<string> {
  const body = await callPlatform(
    `${options.apiBase}/v1.0/gateway/connections/open`,
    {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({
        clientId: options.clientId,
        clientSecret: options.clientSecret,
        subscriptions: [{ type: "CALLBACK", topic: DINGTALK_BOT_TOPIC }],
        ua: options.ua,
      }),
    },
    {
      platform: "DingTalk",
      what: "gateway/connections/open",
      fetch: options.fetch,
      signal,
      platformFault: dingTalkFault(`check client_id and client_secret of ${options.name}`),
    },
  );
  const { endpoint, ticket } = body;
  if (typeof endpoint !== "string" || typeof ticket !== "string") {
    throw new Error("DingTalk gateway/connections/open answered without endpoint and ticket");
  }
  const url = new URL(endpoint);
  if (options.wsBase) {
    const base = new URL(options.wsBase);
    url.protocol = base.protocol;
    url.host = base.host;
  }
  url.searchParams.set("ticket", ticket);
  return url.href;
}

/** How long a closing connection waits for the messages it handed over (ms). */
const SETTLE_MS = 5000;

/** Resolves once every task settled, or after `SETTLE_MS` (a stuck sink must not block a stop). */
async function settle(tasks: Iterable<Promise<void>>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => timer = setTimeout(resolve, SETTLE_MS));
  await Promise.race([Promise.allSettled([...tasks]), late]);
  clearTimeout(timer);
}

/**
 * Serves one WebSocket until it closes, and waits for every message it took
 * to settle: resolves when the close was planned (a `disconnect` the
 * gateway asked for, or a stop), rejects when it was not. `healthy` is
 * called at the first frame (the connection works: the backoff starts over).
 */
function serveSocket(
  url: string,
  options: DingTalkStreamOptions,
  signal: AbortSignal,
  healthy: () => void,
): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const { state } = options;
  const socket = new WebSocket(url);
  const inflight = new Set<Promise<void>>();
  let received = false, planned = false, reason = "closed by the gateway";
  const send = (frame: string) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(frame);
  };
  const close = () => {
    planned = true;
    if (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN) {
      socket.close(1000);
    }
  };
  const onAbort = () => close();
  signal.addEventListener("abort", onAbort, { once: true });
  socket.onopen = () => state.setConnected(true);
  socket.onerror = (event) => {
    reason = (event as ErrorEvent).message || "WebSocket error";
  };
  socket.onmessage = (event) => {
    if (!received) {
      received = true;
      healthy();
    }
    let frame: StreamFrame;
    try {
      frame = JSON.parse(String(event.data));
    } catch {
      options.log?.warn(`${options.name}: the stream sent a frame that is not JSON`);
      return;
    }
    const headers = frame.headers ?? {};
    if (frame.type === "SYSTEM") {
      if (headers.topic === "ping") {
        send(JSON.stringify({ code: 200, headers, message: "OK", data: frame.data }));
      } else if (headers.topic === "disconnect") {
        // The gateway is about to drop us: finish what we hold (acks included), then reconnect.
        settle(inflight).then(close);
      }
      return;
    }
    const messageId = headers.messageId;
    if (frame.type !== "CALLBACK" || headers.topic !== DINGTALK_BOT_TOPIC) {
      options.log?.info(`${options.name}: ignored a ${frame.type} frame on ${headers.topic}`);
      return;
    }
    if (typeof messageId !== "string") return;
    const task = options.handle(typeof frame.data === "string" ? frame.data : "")
      .then((ack) => {
        if (ack) send(ackFrame(messageId));
      })
      .finally(() => inflight.delete(task));
    inflight.add(task);
  };
  socket.onclose = () => {
    signal.removeEventListener("abort", onAbort);
    state.setConnected(false);
    settle(inflight).then(() => {
      if (planned) return resolve();
      reject(new ProviderError(`the stream connection ended (${reason})`, { retryable: true }));
    });
  };
  return promise;
}

/**
 * Runs the stream until `signal` aborts ({@link runReconnecting}): opens a
 * connection and serves it; after a `disconnect` the gateway asked for it
 * opens the next at once, after a failure (a refused open, a connection
 * that closed unasked) after a backoff (`options.delay`, by default 1 s
 * doubling to 60 s, from 1 s again after a connection that worked). Never
 * throws; errors go to `options.state` and the log.
 */
export async function runDingTalkStream(
  options: DingTalkStreamOptions,
  signal: AbortSignal,
): Promise<void> {
  const { name, log, state } = options;
  await runReconnecting(async ({ signal, healthy }) => {
    const url = await openStreamConnection(options, signal);
    await serveSocket(url, options, signal, healthy);
    if (!signal.aborted) {
      log?.info(`${name}: stream disconnect requested by the gateway; reconnecting`);
    }
  }, {
    signal,
    delay: options.delay,
    onError: (error, waitMs) => {
      state.connectionFailed(error);
      log?.warn(
        `${name}: stream: ${(error as Error).message}; ` +
          `reconnecting in ${Math.round(waitMs / 1000)} s`,
      );
    },
  });
  state.setConnected(false);
}
