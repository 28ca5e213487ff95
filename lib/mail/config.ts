import { resolveSecret } from "../config/mod.ts";
import { CourierError } from "../errors/mod.ts";
import { readTextIfExists } from "../fs/mod.ts";
import { isValidProvider } from "./mailbox.ts";

/**
 * Where outbound mail of one provider is delivered. In `config.json` the URL
 * and each header value may be written `"env:NAME"` to read it from the
 * environment variable `NAME` when the daemon starts.
 */
export interface OutboundTarget {
  /** The URL each outbound mail is POSTed to as JSON. */
  url: string;
  /** Extra request headers (e.g. an `authorization` token). */
  headers?: Record<string, string>;
}

/** A `config.json` value that may be `"env:NAME"`: resolved, other values as they are. */
function secretValue<T>(value: T, where: string): T | string {
  return typeof value === "string" && value.startsWith("env:")
    ? resolveSecret(value, { where })
    : value;
}

/** Every setting of the mail service, resolved. */
export interface MailSettings {
  /** Close a debounce bucket this long after its last message (ms, default 5000). */
  debounceWindowMs: number;
  /** Close a debounce bucket at the latest this long after its first message (ms, default 30000). */
  debounceMaxWaitMs: number;
  /**
   * Close a debounce bucket once it holds this many messages (default 200): a
   * flood becomes several readable mails, and rendering one stays cheap.
   */
  maxMessagesPerMail: number;
  /** Default claim length (s, default 300). */
  claimTimeoutS: number;
  /** Failed attempts (agent `fail`s and expired claims) after which an inbound mail is dead (default 3). */
  maxAttempts: number;
  /** Inbound retry backoff after the first failure (ms, default 1000); doubles per failure. */
  backoffBaseMs: number;
  /** Longest inbound retry backoff (ms, default 30000). */
  backoffCapMs: number;
  /** Outbound retry backoff after the first failed delivery (ms, default 1000); doubles. */
  outboundBackoffBaseMs: number;
  /** Longest outbound retry backoff (ms, default 300000: five minutes). */
  outboundBackoffCapMs: number;
  /** Delivery attempts after which an outbound mail is dead (default 12: about 18 minutes). */
  outboundMaxAttempts: number;
  /** Largest request body (bytes, default 1 MiB). */
  maxBodyBytes: number;
  /** Timeout of one outbound delivery (ms, default 10000). */
  deliveryTimeoutMs: number;
  /** Delete done mails this many days after they were finished (`null`, the default: keep). */
  archiveRetentionDays: number | null;
  /** Delete dead mails this many days after they died (`null`, the default: keep). */
  deadletterRetentionDays: number | null;
  /**
   * Remember message ids this many days for deduplication (default 7; `null`:
   * as long as the mails are kept). Never longer than the mails are kept.
   */
  dedupWindowDays: number | null;
  /** Longest wait between retries of a mail write the disk refused (ms, default 5000). */
  writeRetryCapMs: number;
  /** How long a request waits for the folder it needs to be indexed before 503 (ms, default 3000). */
  indexWaitMs: number;
  /** Comment lines on the event stream this often, to keep proxies open (ms, default 15000). */
  eventsHeartbeatMs: number;
  /** Longest a stop may spend flushing mail before it leaves the rest to the journal (ms, default 5000). */
  stopBudgetMs: number;
  /** Where each provider's outbound mail goes. */
  outbound: Record<string, OutboundTarget>;
}

/** The defaults of {@link MailSettings}. */
export const DEFAULT_MAIL_SETTINGS: Readonly<MailSettings> = Object.freeze({
  debounceWindowMs: 5000,
  debounceMaxWaitMs: 30_000,
  maxMessagesPerMail: 200,
  claimTimeoutS: 300,
  maxAttempts: 3,
  backoffBaseMs: 1000,
  backoffCapMs: 30_000,
  outboundBackoffBaseMs: 1000,
  outboundBackoffCapMs: 300_000,
  outboundMaxAttempts: 12,
  maxBodyBytes: 1024 * 1024,
  deliveryTimeoutMs: 10_000,
  archiveRetentionDays: null,
  deadletterRetentionDays: null,
  dedupWindowDays: 7,
  writeRetryCapMs: 5000,
  indexWaitMs: 3000,
  eventsHeartbeatMs: 15_000,
  stopBudgetMs: 5000,
  outbound: {},
});

/** `<home>/config.json` or a `start` option has a bad mail setting. */
export class MailConfigError extends CourierError {
  /**
   * Creates a `MailConfigError`.
   *
   * @param where The file or option.
   * @param message What is wrong.
   */
  constructor(where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = "MailConfigError";
  }
}

const CONFIG_KEYS: Record<string, keyof MailSettings> = {
  debounce_window_ms: "debounceWindowMs",
  debounce_max_wait_ms: "debounceMaxWaitMs",
  max_messages_per_mail: "maxMessagesPerMail",
  claim_timeout_s: "claimTimeoutS",
  max_attempts: "maxAttempts",
  retry_backoff_ms: "backoffBaseMs",
  retry_backoff_cap_ms: "backoffCapMs",
  outbound_retry_backoff_ms: "outboundBackoffBaseMs",
  outbound_retry_backoff_cap_ms: "outboundBackoffCapMs",
  outbound_max_attempts: "outboundMaxAttempts",
  delivery_timeout_ms: "deliveryTimeoutMs",
};

/** Settings in days where `null` (or leaving them out) means forever. */
const RETENTION_KEYS: Record<
  string,
  "archiveRetentionDays" | "deadletterRetentionDays" | "dedupWindowDays"
> = {
  archive_retention_days: "archiveRetentionDays",
  deadletter_retention_days: "deadletterRetentionDays",
  dedup_window_days: "dedupWindowDays",
};

function number(where: string, name: string, value: unknown): number {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
    throw new MailConfigError(where, `"${name}" must be a non-negative number, not ${value}`);
  }
  return n;
}

function outboundTargets(where: string, value: unknown): Record<string, OutboundTarget> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MailConfigError(where, `"outbound" must map provider names to {"url": ...}`);
  }
  const targets: Record<string, OutboundTarget> = {};
  for (const [provider, target] of Object.entries(value)) {
    if (!isValidProvider(provider)) {
      throw new MailConfigError(
        where,
        `outbound provider "${provider}" may hold only letters, digits, - and _`,
      );
    }
    const url = secretValue((target as OutboundTarget)?.url, `${where} outbound.${provider}.url`);
    let parsed: URL | null = null;
    try {
      parsed = typeof url === "string" ? new URL(url) : null;
    } catch {
      parsed = null;
    }
    if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
      throw new MailConfigError(where, `outbound.${provider}.url must be an http(s) URL`);
    }
    let headers = (target as OutboundTarget).headers;
    if (
      headers !== undefined &&
      (typeof headers !== "object" || headers === null ||
        Object.values(headers).some((v) => typeof v !== "string"))
    ) {
      throw new MailConfigError(where, `outbound.${provider}.headers must map names to strings`);
    }
    if (headers) {
      const at = `${where} outbound.${provider}.headers`;
      headers = Object.fromEntries(
        Object.entries(headers).map(([name, value]) => [name, secretValue(value, `${at}.${name}`)]),
      );
    }
    targets[provider] = headers ? { url: parsed.href, headers } : { url: parsed.href };
  }
  return targets;
}

const DAY_MS = 86_400_000;

/**
 * How long message ids are remembered for deduplication (ms): the dedup
 * window, but never longer than mails are kept (the longer of the two
 * retentions, when both are set). `Infinity` for forever.
 */
export function dedupWindowMs(settings: MailSettings): number {
  const { archiveRetentionDays: archive, deadletterRetentionDays: dead, dedupWindowDays } =
    settings;
  const kept = archive !== null && dead !== null ? Math.max(archive, dead) : Infinity;
  return Math.min(dedupWindowDays ?? Infinity, kept) * DAY_MS;
}

/** Options of {@link loadMailSettings}. */
export interface LoadMailSettingsOptions {
  /** Values given on `start` (`debounceWindowMs`, `debounceMaxWaitMs`); they win. */
  startOptions?: Record<string, string | number | boolean | undefined>;
  /** Settings given by the program embedding the service; they beat the config file. */
  overrides?: Partial<MailSettings>;
}

/**
 * Resolves the mail settings: `start` options, then programmatic overrides,
 * then `<home>/config.json` (`debounce_window_ms`, `debounce_max_wait_ms`,
 * `outbound: {"<provider>": {"url": ...}}`…), then the defaults.
 *
 * @throws {MailConfigError} when the file is not JSON or a value is wrong.
 */
export async function loadMailSettings(
  configFile: string,
  options: LoadMailSettingsOptions = {},
): Promise<MailSettings> {
  const settings: MailSettings = { ...DEFAULT_MAIL_SETTINGS, outbound: {} };
  const text = await readTextIfExists(configFile);
  if (text !== null && text.trim() !== "") {
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch (error) {
      throw new MailConfigError(configFile, `not valid JSON (${(error as Error).message})`);
    }
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      throw new MailConfigError(configFile, "must hold a JSON object");
    }
    const values = config as Record<string, unknown>;
    for (const [key, field] of Object.entries(CONFIG_KEYS)) {
      if (values[key] !== undefined) {
        (settings[field] as number) = number(configFile, key, values[key]);
      }
    }
    for (const [key, field] of Object.entries(RETENTION_KEYS)) {
      const value = values[key];
      if (value === null) settings[field] = null;
      if (value === undefined || value === null) continue;
      const days = number(configFile, key, value);
      if (days <= 0) {
        throw new MailConfigError(
          configFile,
          `"${key}" must be a number of days above 0 (leave it out to keep mails forever)`,
        );
      }
      settings[field] = days;
    }
    if (values.outbound !== undefined) {
      settings.outbound = outboundTargets(configFile, values.outbound);
    }
  }
  for (const [field, value] of Object.entries(options.overrides ?? {})) {
    if (value !== undefined) (settings as unknown as Record<string, unknown>)[field] = value;
  }
  const start = options.startOptions ?? {};
  if (start.debounceWindowMs !== undefined) {
    settings.debounceWindowMs = number(
      "--debounce-window",
      "debounce window",
      start.debounceWindowMs,
    );
  }
  if (start.debounceMaxWaitMs !== undefined) {
    settings.debounceMaxWaitMs = number(
      "--debounce-max-wait",
      "debounce max wait",
      start.debounceMaxWaitMs,
    );
  }
  if (settings.maxMessagesPerMail < 1) settings.maxMessagesPerMail = 1;
  settings.maxAttempts = Math.max(1, Math.floor(settings.maxAttempts));
  settings.outboundMaxAttempts = Math.max(1, Math.floor(settings.outboundMaxAttempts));
  return settings;
}
