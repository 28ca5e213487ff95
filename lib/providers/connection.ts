/**
 * What long connections and senders share: a provider's live state, the
 * reconnect loop with backoff, and splitting a text a platform finds too
 * long.
 *
 * @module
 */
import type { Logger } from "../log/mod.ts";
import {
  type Admission,
  admitMessage,
  type CommonProviderConfig,
  reconnectDelayMs,
  sleepUnlessAborted,
} from "./common.ts";
import { type ChatMessage, ProviderError, type ProviderStatus } from "./provider.ts";

/** Options of {@link ProviderState}. */
export interface ProviderStateOptions {
  /** Whether the provider runs a long connection (else `connected` is `null`). */
  connection: boolean;
  /** The clock in ms (default `Date.now`). */
  now?: () => number;
  /** Where each message the filters drop is logged (its id and why, never its text). */
  log?: Logger;
}

/**
 * A provider's live state, as `courier provider list`, `status` and
 * `/health` show it — its long connection, its last error, the messages its
 * `allow_from`/`require_mention` filters dropped — kept by the platform
 * module and read by {@link Provider.status}. Every platform takes its
 * messages through {@link ProviderState.admit}, so a dropped message is
 * always both counted and logged.
 *
 * @example
 * ```ts
 * const config = parseCommonConfig("team", { type: "slack", allow_from: ["U1"] }, {
 *   modes: ["webhook"],
 *   defaultApiBase: "https://slack.com/api",
 * });
 * const state = new ProviderState(config, { connection: false });
 * console.log(state.snapshot()); // { connected: null, dropped: 0 }
 * ```
 */
export class ProviderState {
  #connected = false;
  #lastError?: string;
  #lastErrorAt?: string;
  #dropped = 0;
  readonly #config: CommonProviderConfig;
  readonly #connection: boolean;
  readonly #now: () => number;
  readonly #log?: Logger;

  /**
   * Creates a `ProviderState` (not connected, no error, nothing dropped).
   *
   * @param config The provider's entry (its name and filters).
   * @param options Whether there is a long connection; the clock; the log.
   */
  constructor(config: CommonProviderConfig, options: ProviderStateOptions) {
    this.#config = config;
    this.#connection = options.connection;
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
  }

  /** Whether the long connection is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Marks the long connection up or down. */
  setConnected(connected: boolean): void {
    this.#connected = connected;
  }

  /** Records an error: an `Error`'s message, or the text given (it must hold no secret). */
  recordError(error: unknown): void {
    this.#lastError = error instanceof Error ? error.message : String(error);
    this.#lastErrorAt = new Date(this.#now()).toISOString();
  }

  /** The long connection failed: down, with `error` as the last error. */
  connectionFailed(error: unknown): void {
    this.#connected = false;
    this.recordError(error);
  }

  /**
   * Whether `message` passes `allow_from` and `require_mention`
   * ({@link admitMessage}); one that does not is counted and logged (its id
   * and why, never its text).
   */
  admit(message: ChatMessage): Admission {
    const admission = admitMessage(this.#config, message);
    if (admission.ok) return admission;
    this.#dropped++;
    this.#log?.info(
      `provider ${this.#config.name}: dropped message ${message.message_id}: ${admission.reason}`,
    );
    return admission;
  }

  /** The state as {@link ProviderStatus} has it. */
  snapshot(): ProviderStatus {
    const status: ProviderStatus = { connected: this.#connection ? this.#connected : null };
    if (this.#lastError !== undefined) {
      status.last_error = this.#lastError;
      status.last_error_at = this.#lastErrorAt;
    }
    status.dropped = this.#dropped;
    return status;
  }
}

/**
 * Waits for `promise`, or rejects with `signal`'s reason as soon as it
 * aborts (what `promise` does then is no longer awaited): a long connection
 * stops at once even while a hand-over to the sink is in progress.
 */
export function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** What {@link runReconnecting} hands each session. */
export interface ReconnectSession {
  /** Aborts when the loop stops. */
  signal: AbortSignal;
  /** Call once the session is healthy (e.g. the platform said hello): the backoff starts over. */
  healthy(): void;
}

/** Options of {@link runReconnecting}. */
export interface RunReconnectingOptions {
  /** Stops the loop (it then resolves). */
  signal: AbortSignal;
  /** The delay before reconnect attempt `attempt` (default {@link reconnectDelayMs}). */
  delay?: (attempt: number) => number;
  /** Told of each failed session and how long the loop waits before the next. */
  onError?: (error: unknown, waitMs: number) => void;
}

/**
 * Runs `session` again and again until `signal` aborts: the heart of every
 * long connection. A session that became healthy and then returned (a
 * planned disconnect) is followed by the next at once. One that threw, or
 * returned without becoming healthy, is followed by the next after
 * {@link reconnectDelayMs} of the failures since the last healthy session,
 * or after the platform's own `retryAfterMs` when the error is a
 * {@link ProviderError} that has one. Resolves when `signal` aborts; never
 * rejects.
 */
export async function runReconnecting(
  session: (session: ReconnectSession) => Promise<void>,
  options: RunReconnectingOptions,
): Promise<void> {
  const { signal } = options;
  let failures = 0;
  while (!signal.aborted) {
    let healthy = false;
    let failure: unknown = null;
    try {
      await session({
        signal,
        healthy: () => {
          healthy = true;
          failures = 0;
        },
      });
      if (healthy || signal.aborted) continue;
      failure = new Error("the connection ended before it was established");
    } catch (error) {
      if (signal.aborted) break;
      failure = error;
    }
    failures++;
    const asked = failure instanceof ProviderError ? failure.retryAfterMs : undefined;
    const waitMs = asked ?? (options.delay ?? reconnectDelayMs)(failures);
    options.onError?.(failure, waitMs);
    try {
      await sleepUnlessAborted(waitMs, signal);
    } catch {
      break;
    }
  }
}

/**
 * Splits `text` into pieces of at most `max` UTF-16 code units (platforms
 * count so), each ending at a line break, else a space, in its second half
 * where there is one (the break itself is dropped), and never inside a
 * surrogate pair.
 */
export function splitText(text: string, max: number): string[] {
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > max) {
    let cut = rest.lastIndexOf("\n", max);
    if (cut < max / 2) cut = rest.lastIndexOf(" ", max);
    let skip = 1;
    if (cut < max / 2 || cut <= 0) {
      cut = max;
      skip = 0;
      const code = rest.charCodeAt(cut - 1);
      if (code >= 0xd800 && code <= 0xdbff) cut--; // keep the surrogate pair whole
    }
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut + skip);
  }
  pieces.push(rest);
  return pieces;
}
