/**
 * `courier provider check NAME`: the provider of a `config.json` entry,
 * created in this process (no daemon needed), asked to prove its
 * credentials at the platform's identity endpoint.
 *
 * @module
 */
import { ConfigError, readConfigFile } from "../config/mod.ts";
import { CourierError, ExitCode } from "../errors/mod.ts";
import { jsonObject, type ProviderContext } from "./common.ts";
import type { ProviderType } from "./provider.ts";
import { createProvider, parseProviderEntries } from "./registry.ts";

/** `config.json` has no provider of that name. */
export class UnknownProviderError extends CourierError {
  /**
   * Creates an `UnknownProviderError`.
   *
   * @param name The name asked for.
   * @param known The names `config.json` has.
   */
  constructor(name: string, known: readonly string[]) {
    super(
      `no provider "${name}" in config.json ` +
        (known.length ? `(it has ${known.join(", ")})` : "(it has no providers)"),
      {
        exitCode: ExitCode.Usage,
        details: ["Add it under \"providers\" (see 'Chat platforms' in the README)."],
      },
    );
    this.name = "UnknownProviderError";
  }
}

/** What {@link checkProvider} found. */
export interface ProviderCheck {
  /** The provider name. */
  name: string;
  /** The platform. */
  type: ProviderType;
  /** Its mode. */
  mode: string;
  /** Whether the credentials work. */
  ok: boolean;
  /** Who the platform says the bot is, or exactly what is wrong with the credentials. */
  detail: string;
}

/** Options of {@link checkProvider}. */
export interface CheckProviderOptions extends ProviderContext {
  /** Give up on the platform after this long (ms, default 20000). */
  timeoutMs?: number;
}

/**
 * Reads provider `name` from `configFile`, creates it with this process's
 * environment (for `"env:NAME"` secrets) and calls its `check()`: Slack
 * `auth.test` (and `apps.connections.open` in socket mode), Telegram
 * `getMe` and `getWebhookInfo`, Lark the tenant access token and
 * `bot/v3/info`, DingTalk the access token.
 *
 * @throws {UnknownProviderError} when `config.json` has no such provider.
 * @throws {ConfigError} when its entry is wrong or an `env:` variable is not set.
 */
export async function checkProvider(
  configFile: string,
  name: string,
  options: CheckProviderOptions = {},
): Promise<ProviderCheck> {
  const config = await readConfigFile(configFile);
  const all = config.providers === undefined ? {} : jsonObject(config.providers);
  if (!all) throw new ConfigError("config.json providers", "must map provider names to entries");
  if (!Object.hasOwn(all, name)) throw new UnknownProviderError(name, Object.keys(all));
  const [entry] = parseProviderEntries({ [name]: all[name] }, options);
  const provider = createProvider(entry, options);
  const timeoutMs = options.timeoutMs ?? 20_000;
  const signal = AbortSignal.timeout(timeoutMs);
  let result;
  try {
    result = await provider.check(signal);
  } catch (error) {
    result = { ok: false, detail: (error as Error).message };
  }
  if (!result.ok && signal.aborted) {
    result = { ok: false, detail: `${result.detail} (no answer within ${timeoutMs / 1000} s)` };
  }
  return { name, type: entry.type, mode: entry.mode, ...result };
}
