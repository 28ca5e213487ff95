/**
 * What every platform module shares: the provider entry's common fields,
 * HMAC and hashing, constant-time comparison, and the platform HTTP call
 * that turns rate limits and platform errors into {@link ProviderError}s.
 *
 * @module
 */
import { ConfigError, resolveSecret } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  type ChatMessage,
  ProviderError,
  type ProviderType,
  type WebhookOutcome,
} from "./provider.ts";

/** What the mail service hands a platform module when it creates a provider. */
export interface ProviderContext {
  /** The HTTP client (default `fetch`; tests pass one that records calls). */
  fetch?: typeof fetch;
  /** The clock in ms (default `Date.now`). */
  now?: () => number;
  /** The daemon's log (never given secrets or message bodies). */
  log?: Logger;
  /** Reads an environment variable, for `"env:NAME"` secrets (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
  /**
   * The delay before reconnect attempt `attempt` of a long connection
   * (default {@link reconnectDelayMs}; tests pass a short one).
   */
  reconnectDelay?: (attempt: number) => number;
}

/** The fields every `config.json` `providers.<name>` entry may have. */
export interface CommonProviderConfig {
  /** The provider name (the key in `providers`). */
  name: string;
  /** The platform. */
  type: ProviderType;
  /** `webhook` or the platform's long connection. */
  mode: string;
  /** The platform's API base URL (no trailing slash). */
  apiBase: string;
  /** Sender ids whose messages are taken (others are dropped); absent: everyone. */
  allowFrom?: ReadonlySet<string>;
  /** In group chats, take only messages that mention the bot. */
  requireMention: boolean;
}

/** Options of {@link parseCommonConfig}. */
export interface CommonConfigOptions {
  /** The platform's modes; the first is the default. */
  modes: readonly string[];
  /** The platform's API base URL when `api_base` is not given. */
  defaultApiBase: string;
}

/** `config.json providers.<name>.<key>`, for errors. */
export function configWhere(name: string, key?: string): string {
  return `config.json providers.${name}${key ? `.${key}` : ""}`;
}

/**
 * Checks an `http(s)` or `ws(s)` base URL and drops its trailing slashes.
 *
 * @throws {ConfigError} when it is not such a URL.
 */
export function baseUrl(value: unknown, where: string, protocols: readonly string[]): string {
  let url: URL | null = null;
  try {
    url = typeof value === "string" ? new URL(value) : null;
  } catch {
    url = null;
  }
  if (!url || !protocols.includes(url.protocol)) {
    throw new ConfigError(where, `must be a ${protocols.map((p) => p + "//").join(" or ")} URL`);
  }
  return url.href.replace(/\/+$/, "");
}

/**
 * Parses the fields every provider entry shares: `type`, `mode`, `api_base`,
 * `allow_from`, `require_mention`.
 *
 * @throws {ConfigError} naming the field at fault.
 */
export function parseCommonConfig(
  name: string,
  raw: Record<string, unknown>,
  options: CommonConfigOptions,
): CommonProviderConfig {
  const mode = raw.mode ?? options.modes[0];
  if (typeof mode !== "string" || !options.modes.includes(mode)) {
    throw new ConfigError(
      configWhere(name, "mode"),
      `must be one of ${options.modes.map((m) => `"${m}"`).join(", ")}`,
    );
  }
  const apiBase = raw.api_base === undefined
    ? options.defaultApiBase
    : baseUrl(raw.api_base, configWhere(name, "api_base"), ["http:", "https:"]);
  let allowFrom: Set<string> | undefined;
  if (raw.allow_from !== undefined) {
    if (
      !Array.isArray(raw.allow_from) ||
      raw.allow_from.some((v) => typeof v !== "string" && typeof v !== "number")
    ) {
      throw new ConfigError(configWhere(name, "allow_from"), "must be a list of sender ids");
    }
    allowFrom = new Set(raw.allow_from.map(String));
  }
  if (raw.require_mention !== undefined && typeof raw.require_mention !== "boolean") {
    throw new ConfigError(configWhere(name, "require_mention"), "must be true or false");
  }
  return {
    name,
    type: raw.type as ProviderType,
    mode,
    apiBase,
    allowFrom,
    requireMention: raw.require_mention === true,
  };
}

/** Resolves a required secret of provider `name` (`"env:NAME"` allowed). */
export function secretField(
  name: string,
  raw: Record<string, unknown>,
  key: string,
  context: ProviderContext = {},
): string {
  return resolveSecret(raw[key], { where: configWhere(name, key), env: context.env });
}

/** Resolves an optional secret of provider `name`: `undefined` when the key is absent. */
export function optionalSecretField(
  name: string,
  raw: Record<string, unknown>,
  key: string,
  context: ProviderContext = {},
): string | undefined {
  return raw[key] === undefined ? undefined : secretField(name, raw, key, context);
}

/** Whether a message passes the provider's filters, and if not, why (ids only, never text). */
export type Admission = { ok: true } | { ok: false; reason: string };

/**
 * Whether a message passes the provider's `allow_from` and `require_mention`
 * filters (`require_mention` applies to group conversations only), and if
 * not, why (for the log line: ids only, never text).
 */
export function admitMessage(
  config: CommonProviderConfig,
  message: ChatMessage,
): Admission {
  if (config.allowFrom && !config.allowFrom.has(message.sender.id)) {
    return { ok: false, reason: `sender ${message.sender.id} is not in allow_from` };
  }
  if (config.requireMention && message.session.type !== "direct" && !message.extra.mentioned) {
    return { ok: false, reason: `no mention of the bot in group ${message.session.id}` };
  }
  return { ok: true };
}

/** `value` when it is a JSON object (not an array, not `null`), else `undefined`. */
export function jsonObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

/** `text` parsed as a JSON object, or `undefined` when it is not JSON or not an object. */
export function parseJsonText(text: string): Record<string, unknown> | undefined {
  try {
    return jsonObject(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** A webhook body's JSON object, or `undefined` when it is not UTF-8 JSON holding an object. */
export function parseJsonBody(body: Uint8Array): Record<string, unknown> | undefined {
  try {
    return parseJsonText(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return undefined;
  }
}

/**
 * The outcome of a verified webhook request: the messages to store (answered
 * 200 once they are durable), or, when none is taken, 200 at once with
 * `note` saying why.
 */
export function messagesOutcome(messages: ChatMessage[], note: string): WebhookOutcome {
  if (messages.length === 0) {
    return { kind: "answer", response: new Response(null, { status: 200 }), note };
  }
  return { kind: "messages", messages, respond: () => new Response(null, { status: 200 }) };
}

const encoder = new TextEncoder();

function bytes(data: string | Uint8Array): Uint8Array<ArrayBuffer> {
  return typeof data === "string" ? encoder.encode(data) : new Uint8Array(data);
}

/** HMAC-SHA256 of `data` keyed by `key`. */
export async function hmacSha256(
  key: string | Uint8Array,
  data: string | Uint8Array,
): Promise<Uint8Array> {
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    bytes(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, bytes(data)));
}

/** SHA-256 of `data`. */
export async function sha256(data: string | Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes(data)));
}

/** Lower-case hex of `data`. */
export function toHex(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Standard base64 (with padding) of `data`. */
export function toBase64(data: Uint8Array): string {
  let text = "";
  for (const b of data) text += String.fromCharCode(b);
  return btoa(text);
}

/**
 * Decodes standard base64.
 *
 * @throws {Error} when `text` is not base64.
 */
export function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** Constant-time comparison lives with the daemon's API token in `lib/http`. */
export { timingSafeEqual } from "../http/compare.ts";

/** A platform's own error found in an answer by {@link CallPlatformOptions.platformFault}. */
export interface PlatformFault {
  /** The platform's code and message as it said them (`99991400 request trigger frequency limit`). */
  platformError: string;
  /** Whether trying again later may succeed (default: only for HTTP 429 and 5xx). */
  retryable?: boolean;
  /** How long to wait before trying again (default: the `Retry-After` header). */
  retryAfterMs?: number;
  /** What to do about it, appended to the error's message (`check app_id and app_secret`). */
  hint?: string;
}

/** Options of {@link callPlatform}. */
export interface CallPlatformOptions {
  /** The platform, for messages (`Slack`). */
  platform: string;
  /** What the call does, for messages (`chat.postMessage`). */
  what: string;
  /**
   * Secrets that may appear in the URL (Telegram puts its bot token there):
   * masked as `***` in every error text (a failed request's, a platform's
   * answer); a failed request then does not keep the runtime's own error
   * (it names the URL) as its `cause`.
   */
  redact?: readonly string[];
  /** The HTTP client (default `fetch`). */
  fetch?: typeof fetch;
  /** Give up after this long (ms, default 10000). */
  timeoutMs?: number;
  /** Aborts the call. */
  signal?: AbortSignal;
  /**
   * Finds the platform's own error in an answer of any HTTP status
   * (`ok: false`, `errcode != 0`, `code != 0`; `body` is `null` when the
   * answer is not JSON). When it returns one, the call throws a
   * {@link ProviderError} that carries it instead of returning the body.
   */
  platformFault?: (body: unknown, response: Response) => PlatformFault | undefined;
}

/** Parses a `Retry-After` header (seconds, or an HTTP date) into ms. */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(header.trim())) return Math.round(Number(header) * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** `text` with every occurrence of each secret replaced by `***`. */
export function redactSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) if (secret !== "") out = out.split(secret).join("***");
  return out;
}

/**
 * A text that came from elsewhere (a platform's answer, the runtime's
 * error) as it may be kept in an error or a log: each of `secrets` masked
 * as `***`, and every URL replaced by `<url>` (Telegram's hold the bot
 * token, webhook URLs theirs).
 */
export function scrubText(text: string, secrets: readonly string[] = []): string {
  return redactSecrets(text, secrets).replace(/\b(?:https?|wss?):\/\/\S+/gi, "<url>");
}

/**
 * Why a `fetch` failed, in words, without the URL the runtime puts in its
 * message (`error sending request for url (…)`) and without `secrets`.
 */
export function describeFetchError(error: unknown, secrets: readonly string[] = []): string {
  const cause = (error as { cause?: unknown })?.cause;
  const raw = cause instanceof Error ? cause.message : String((error as Error)?.message ?? error);
  const text = raw.replace(/error sending request for url \([^)]*\):?\s*/i, "");
  return scrubText(text, secrets) || "network error";
}

/** The fields a platform puts its short error in (Slack, Telegram, Lark, DingTalk, DingTalk v1). */
const ERROR_FIELDS = ["error", "description", "msg", "errmsg", "message"];

/**
 * The platform's own short error in an answer's JSON body, if it has one:
 * Slack's `error` (`ratelimited`), Telegram's `description`, Lark's `msg`,
 * DingTalk's `errmsg` or `message`; scrubbed ({@link scrubText}) and at
 * most 500 characters.
 */
export function platformErrorText(
  body: unknown,
  secrets: readonly string[] = [],
): string | undefined {
  const fields = jsonObject(body);
  for (const key of ERROR_FIELDS) {
    const said = fields?.[key];
    if (typeof said === "string" && said.trim() !== "") {
      return scrubText(said.trim(), secrets).slice(0, 500);
    }
  }
  return undefined;
}

/**
 * Sends one HTTP request to a platform API within `options.timeoutMs` and
 * returns the response, whatever its status (its body is read within the
 * same time limit). A network error, a timeout or a cancel is a retryable
 * {@link ProviderError} that says which, never with the URL or a secret.
 *
 * @throws {ProviderError} when no answer came.
 */
export async function fetchPlatform(
  url: string,
  init: RequestInit,
  options: CallPlatformOptions,
): Promise<Response> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  try {
    return await (options.fetch ?? fetch)(url, { ...init, signal });
  } catch (error) {
    const why = options.signal?.aborted
      ? "cancelled"
      : timeout.aborted
      ? "timed out"
      : describeFetchError(error, options.redact);
    throw new ProviderError(`${options.platform} ${options.what} failed: ${why}`, {
      retryable: true,
      cause: options.redact ? new Error(why) : error,
    });
  }
}

/**
 * Makes one HTTP call to a platform API and returns its JSON body. A
 * network error, a timeout, a 429 (with its `Retry-After`) and a 5xx are
 * retryable {@link ProviderError}s; another non-2xx is not. Whether a body
 * is a platform error (`ok: false`, `errcode != 0`, `code != 0`) is the
 * caller's to judge, here with `options.platformFault` or afterwards.
 *
 * @throws {ProviderError} as above; never with a secret in its message.
 */
export async function callPlatform(
  url: string,
  init: RequestInit,
  options: CallPlatformOptions,
): Promise<Record<string, unknown>> {
  const label = `${options.platform} ${options.what}`;
  const response = await fetchPlatform(url, init, options);
  const text = await response.text().catch(() => "");
  let body: unknown = null;
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch {
    body = null;
  }
  const fault = options.platformFault?.(body, response);
  if (fault) {
    const platformError = scrubText(fault.platformError, options.redact).slice(0, 500);
    throw new ProviderError(
      `${label} failed: ${platformError}${fault.hint ? `; ${fault.hint}` : ""}`,
      {
        retryable: fault.retryable ?? (response.status === 429 || response.status >= 500),
        retryAfterMs: fault.retryAfterMs ?? retryAfterMs(response.headers.get("retry-after")),
        platformError,
      },
    );
  }
  if (!response.ok) {
    // The platform's short error when its body has one (Slack's `ratelimited`), else its text.
    const said = platformErrorText(body, options.redact);
    const retryable = response.status === 429 || response.status >= 500;
    throw new ProviderError(
      `${label} failed: HTTP ${response.status}${said ? ` (${said})` : ""}`,
      {
        retryable,
        retryAfterMs: retryable ? retryAfterMs(response.headers.get("retry-after")) : undefined,
        platformError: said ?? (scrubText(text, options.redact).slice(0, 500) || undefined),
      },
    );
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ProviderError(`${label} answered something that is not a JSON object`, {
      retryable: true,
    });
  }
  return body as Record<string, unknown>;
}

/** A platform's HTTP answer, whatever its status (from {@link requestPlatform}). */
export interface PlatformResponse {
  /** The HTTP status. */
  status: number;
  /** The response headers. */
  headers: Headers;
  /** The body when it is a JSON object, else `null`. */
  body: Record<string, unknown> | null;
}

/**
 * Makes one HTTP call to a platform API and returns its status and JSON
 * body whatever the status, for platforms that put their error in the body
 * of a 4xx (Telegram's `error_code`, `description`, `parameters`).
 *
 * @throws {ProviderError} when no answer came ({@link fetchPlatform}).
 */
export async function requestPlatform(
  url: string,
  init: RequestInit,
  options: CallPlatformOptions,
): Promise<PlatformResponse> {
  const response = await fetchPlatform(url, init, options);
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    body = null; // not JSON, or the body did not arrive in time
  }
  return { status: response.status, headers: response.headers, body: jsonObject(body) ?? null };
}

/**
 * The delay before reconnect attempt `attempt` (1, 2, …) of a long
 * connection: 1 s doubling to 60 s, with ±20% jitter so many clients do not
 * reconnect in step.
 */
export function reconnectDelayMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(60_000, 1000 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Resolves after `ms`, or at once (rejecting) when `signal` aborts. */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
