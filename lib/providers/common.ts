/**
 * What every platform module shares: the provider entry's common fields,
 * HMAC and hashing, constant-time comparison, and the platform HTTP call
 * that turns rate limits and platform errors into {@link ProviderError}s.
 *
 * @module
 */
import { ConfigError, resolveSecret } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import { type ChatMessage, ProviderError, type ProviderType } from "./provider.ts";

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

/**
 * Whether a message passes the provider's `allow_from` and `require_mention`
 * filters (`require_mention` applies to group conversations only), and if
 * not, why (for the log line: ids only, never text).
 */
export function admitMessage(
  config: CommonProviderConfig,
  message: ChatMessage,
): { ok: true } | { ok: false; reason: string } {
  if (config.allowFrom && !config.allowFrom.has(message.sender.id)) {
    return { ok: false, reason: `sender ${message.sender.id} is not in allow_from` };
  }
  if (config.requireMention && message.session.type !== "direct" && !message.extra.mentioned) {
    return { ok: false, reason: `no mention of the bot in group ${message.session.id}` };
  }
  return { ok: true };
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

/** Options of {@link callPlatform}. */
export interface CallPlatformOptions {
  /** The platform, for messages (`Slack`). */
  platform: string;
  /** What the call does, for messages (`chat.postMessage`). */
  what: string;
  /** The HTTP client (default `fetch`). */
  fetch?: typeof fetch;
  /** Give up after this long (ms, default 10000). */
  timeoutMs?: number;
  /** Aborts the call. */
  signal?: AbortSignal;
}

/** Parses a `Retry-After` header (seconds, or an HTTP date) into ms. */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(header.trim())) return Math.round(Number(header) * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Makes one HTTP call to a platform API and returns its JSON body. A
 * network error, a timeout, a 429 (with its `Retry-After`) and a 5xx are
 * retryable {@link ProviderError}s; another non-2xx is not. Whether a 2xx
 * body is a platform error (`ok: false`, `errcode != 0`, `code != 0`) is the
 * caller's to judge.
 *
 * @throws {ProviderError} as above; never with a secret in its message.
 */
export async function callPlatform(
  url: string,
  init: RequestInit,
  options: CallPlatformOptions,
): Promise<Record<string, unknown>> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const label = `${options.platform} ${options.what}`;
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(url, { ...init, signal });
  } catch (error) {
    const why = timeout.aborted ? "timed out" : (error as Error).message;
    throw new ProviderError(`${label} failed: ${why}`, { retryable: true, cause: error });
  }
  const text = await response.text().catch(() => "");
  let body: unknown = null;
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch {
    body = null;
  }
  if (response.status === 429 || response.status >= 500) {
    throw new ProviderError(`${label} failed: HTTP ${response.status}`, {
      retryable: true,
      retryAfterMs: retryAfterMs(response.headers.get("retry-after")),
      platformError: text.slice(0, 500) || undefined,
    });
  }
  if (!response.ok) {
    throw new ProviderError(`${label} failed: HTTP ${response.status}`, {
      retryable: false,
      platformError: text.slice(0, 500) || undefined,
    });
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ProviderError(`${label} answered something that is not a JSON object`, {
      retryable: true,
    });
  }
  return body as Record<string, unknown>;
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
