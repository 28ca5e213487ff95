/**
 * Slack Socket Mode: `apps.connections.open` with the app-level token, then
 * a WebSocket to the URL it returns. Slack says `hello`, then sends each
 * event in an envelope that must be acknowledged by its `envelope_id`, and
 * asks for a reconnect with `disconnect` (`warning`, `refresh_requested`,
 * `link_disabled`, `too_many_websockets`) before it recycles the link.
 *
 * `slash_commands` and `interactive` envelopes are acknowledged at once and
 * not taken: courier carries messages, not commands or button presses.
 *
 * @module
 */
import type { Logger } from "../log/mod.ts";
import { type ProviderState, runReconnecting } from "./connection.ts";
import { type ChatMessage, type MessageSink, ProviderError } from "./provider.ts";

type Json = Record<string, unknown>;

/** Options of {@link runSlackSocket}. */
export interface SlackSocketOptions {
  /** The provider name, for log lines. */
  name: string;
  /** Calls `apps.connections.open` (with the app token); its answer holds `url`. */
  openConnection: (signal: AbortSignal) => Promise<Json>;
  /** Runs before each connection (learns the bot's ids); must not throw. */
  prepare: (signal: AbortSignal) => Promise<void>;
  /** The messages of an Events API payload, filtered. */
  parsePayload: (payload: Json) => { messages: ChatMessage[]; note?: string };
  /** Where messages go; an envelope is acknowledged only once it resolved. */
  sink: MessageSink;
  /** Stops the connection. */
  signal: AbortSignal;
  /** The live state to keep. */
  state: ProviderState;
  /** The daemon's log. */
  log: Logger;
  /** The reconnect delay (default `reconnectDelayMs`). */
  delay?: (attempt: number) => number;
}

/**
 * Runs Socket Mode until `options.signal` aborts: reconnects at once after
 * a `disconnect` Slack asked for, with backoff after a failure (a refused
 * `apps.connections.open`, a socket that closed or could not open).
 */
export async function runSlackSocket(options: SlackSocketOptions): Promise<void> {
  const { name, log, state } = options;
  await runReconnecting(async ({ signal, healthy }) => {
    await options.prepare(signal);
    const opened = await options.openConnection(signal);
    if (typeof opened.url !== "string") {
      throw new ProviderError("Slack apps.connections.open answered without a url", {
        retryable: true,
      });
    }
    await runOneSocket(opened.url, options, signal, healthy);
  }, {
    signal: options.signal,
    delay: options.delay,
    onError: (error, waitMs) => {
      state.connectionFailed(error);
      log.warn(
        `provider ${name}: Slack Socket Mode: ${(error as Error).message}; ` +
          `reconnecting in ${Math.round(waitMs / 1000)} s`,
      );
    },
  });
  state.setConnected(false);
}

/**
 * One WebSocket: resolves when Slack asked for a reconnect (or on abort),
 * rejects when the socket failed or closed unasked. Never logs the URL (its
 * ticket is a credential).
 */
function runOneSocket(
  url: string,
  options: SlackSocketOptions,
  signal: AbortSignal,
  healthy: () => void,
): Promise<void> {
  const { name, log, state } = options;
  return new Promise((resolve, reject) => {
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      reject(
        new ProviderError(`Slack Socket Mode URL refused: ${(error as Error).message}`, {
          retryable: true,
        }),
      );
      return;
    }
    let asked = false;
    let failure = "";
    // Envelopes are handled one after another, in the order Slack sent them.
    let queue: Promise<void> = Promise.resolve();
    const onAbort = () => socket.close(1000);
    signal.addEventListener("abort", onAbort, { once: true });

    const ack = (envelopeId: unknown) => {
      if (typeof envelopeId !== "string") return;
      // A closed socket loses the ack: Slack then delivers the envelope again
      // and the message id makes it the same message.
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ envelope_id: envelopeId }));
      }
    };

    const handleEvents = async (envelope: Json) => {
      const payload = envelope.payload;
      const { messages } = typeof payload === "object" && payload !== null
        ? options.parsePayload(payload as Json)
        : { messages: [] };
      if (messages.length === 0) return ack(envelope.envelope_id);
      try {
        await options.sink(messages);
      } catch (error) {
        state.recordError(error);
        log.warn(
          `provider ${name}: Slack envelope not acknowledged (Slack will send it again): ` +
            (error as Error).message,
        );
        return;
      }
      ack(envelope.envelope_id);
    };

    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let message: Json;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      switch (message.type) {
        case "hello":
          state.setConnected(true);
          healthy();
          log.info(`provider ${name}: Slack Socket Mode connected`);
          return;
        case "disconnect":
          asked = true;
          log.info(`provider ${name}: Slack asked to reconnect (${String(message.reason)})`);
          if (message.reason === "link_disabled") {
            log.warn(
              `provider ${name}: Socket Mode is off for this app: turn it on (Settings → ` +
                `Socket Mode) or set mode "webhook"`,
            );
          }
          // Acknowledge what is in hand first, then go.
          queue = queue.then(() => socket.close(1000));
          return;
        case "events_api":
          queue = queue.then(() => handleEvents(message));
          return;
        default:
          // slash_commands, interactive, and whatever comes next: acknowledged, not taken.
          queue = queue.then(() => ack(message.envelope_id));
      }
    };
    socket.onerror = (event) => {
      failure = (event as ErrorEvent).message ?? "WebSocket error";
    };
    socket.onclose = (event) => {
      signal.removeEventListener("abort", onAbort);
      state.setConnected(false);
      if (asked || signal.aborted) return resolve();
      const why = failure ? `: ${failure}` : "";
      reject(
        new ProviderError(`the WebSocket closed (code ${event.code})${why}`, {
          retryable: true,
        }),
      );
    };
  });
}
