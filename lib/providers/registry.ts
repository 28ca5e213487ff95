/**
 * The platforms by `type`: how to check a `config.json` `providers.<name>`
 * entry (parse it, resolve its `"env:NAME"` secrets) and how to create its
 * provider. The mail service reads `providers` through here.
 *
 * @module
 */
import { ConfigError } from "../config/mod.ts";
import {
  type CommonProviderConfig,
  configWhere,
  jsonObject,
  type ProviderContext,
} from "./common.ts";
import { createDingTalkProvider, parseDingTalkConfig } from "./dingtalk.ts";
import { createLarkProvider, parseLarkConfig } from "./lark.ts";
import type { Provider, ProviderType } from "./provider.ts";
import { createSlackProvider, parseSlackConfig } from "./slack.ts";
import { createTelegramProvider, parseTelegramConfig } from "./telegram.ts";

/** Creates the provider of one `providers.<name>` entry (throws `ConfigError` for a bad one). */
export type ProviderFactory = (
  name: string,
  rawConfig: Record<string, unknown>,
  context?: ProviderContext,
) => Provider;

/** One platform: how to check an entry of its type, and how to create its provider. */
export interface Platform {
  /** Parses and checks an entry, resolving its secrets (throws `ConfigError` naming the key). */
  parse(
    name: string,
    rawConfig: Record<string, unknown>,
    context?: ProviderContext,
  ): CommonProviderConfig;
  /** Creates the provider. */
  create: ProviderFactory;
}

/** Every platform courier speaks, by the `type` of its entries. */
export const PLATFORMS: Readonly<Record<ProviderType, Platform>> = Object.freeze({
  slack: { parse: parseSlackConfig, create: createSlackProvider },
  lark: { parse: parseLarkConfig, create: createLarkProvider },
  dingtalk: { parse: parseDingTalkConfig, create: createDingTalkProvider },
  telegram: { parse: parseTelegramConfig, create: createTelegramProvider },
});

/** A checked `providers.<name>` entry: what is known without creating the provider. */
export interface ProviderEntry {
  /** The provider name (the key in `providers`): the mailbox provider. */
  name: string;
  /** The platform. */
  type: ProviderType;
  /** `webhook`, or the platform's long connection (`socket`, `stream`, `polling`). */
  mode: string;
  /** The entry as written in `config.json` (secrets still as written, `"env:NAME"` or not). */
  raw: Record<string, unknown>;
}

/** Options of {@link parseProviderEntries}. */
export interface ParseProvidersOptions extends ProviderContext {
  /** Checks a provider name (the mail service allows mailbox provider names only). */
  validName?: (name: string) => string | null;
}

/**
 * Checks the `providers` value of `config.json`: an object of entries, each
 * with a known `type` and whatever its platform requires, every `"env:NAME"`
 * secret set. `undefined` (no `providers`) is no entries.
 *
 * @throws {ConfigError} naming the key at fault (never a secret's value).
 */
export function parseProviderEntries(
  value: unknown,
  options: ParseProvidersOptions = {},
): ProviderEntry[] {
  if (value === undefined || value === null) return [];
  const entries = jsonObject(value);
  if (!entries) {
    throw new ConfigError(
      "config.json providers",
      'must map provider names to entries ({"team": {"type": "slack", …}})',
    );
  }
  return Object.entries(entries).map(([name, rawValue]) => {
    const invalid = options.validName?.(name);
    if (invalid) throw new ConfigError(configWhere(name), invalid);
    const raw = jsonObject(rawValue);
    if (!raw) throw new ConfigError(configWhere(name), "must be an object with a type");
    const type = raw.type;
    if (typeof type !== "string" || !Object.hasOwn(PLATFORMS, type)) {
      throw new ConfigError(
        configWhere(name, "type"),
        `must be one of ${Object.keys(PLATFORMS).map((t) => `"${t}"`).join(", ")}`,
      );
    }
    const parsed = PLATFORMS[type as ProviderType].parse(name, raw, options);
    return { name, type: type as ProviderType, mode: parsed.mode, raw };
  });
}

/**
 * Creates the provider of a checked entry.
 *
 * @throws {ConfigError} when the entry no longer holds (an `env:` variable went away).
 */
export function createProvider(entry: ProviderEntry, context: ProviderContext = {}): Provider {
  return PLATFORMS[entry.type].create(entry.name, entry.raw, context);
}

/** Whether a provider runs a long connection in this mode (else the platform POSTs to courier). */
export function isLongConnection(mode: string): boolean {
  return mode !== "webhook";
}
