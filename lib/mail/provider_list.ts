/**
 * `courier provider list`: the chat providers of a home, live from the
 * running daemon's `/health` (connected or not, last error, messages in and
 * out), or, when no daemon answers, as `config.json` has them.
 *
 * @module
 */
import { readConfigFile } from "../config/mod.ts";
import type { HomeLayout } from "../home/mod.ts";
import { readTokenFile } from "../http/token.ts";
import { jsonObject } from "../providers/common.ts";
import { parseProviderEntries } from "../providers/registry.ts";
import { readDaemonState } from "../service/state_file.ts";
import { fetchHealth } from "../service/status.ts";
import type { ProviderReport } from "./providers.ts";

/** One provider of {@link listProviders}. */
export interface ProviderListItem extends Partial<Omit<ProviderReport, "type">> {
  /** The provider name. */
  name: string;
  /** The platform (as `config.json` says, when its entry does not hold). */
  type: string;
  /** Its mode. */
  mode: string;
  /** What is wrong with its `config.json` entry (when not live), in this shell's environment. */
  config_error?: string;
}

/** What {@link listProviders} found. */
export interface ProviderListing {
  /** Whether the providers are the running daemon's (else: `config.json` only). */
  live: boolean;
  /** Why they are not live (no daemon, the mail service still starting…). */
  note?: string;
  /** The providers, in `config.json` order. */
  providers: ProviderListItem[];
}

/** The entries of `config.json` `providers`, each checked on its own in this environment. */
async function configured(layout: HomeLayout): Promise<ProviderListItem[]> {
  const config = await readConfigFile(layout.configFile);
  const all = jsonObject(config.providers) ?? {};
  return Object.entries(all).map(([name, value]) => {
    const raw = jsonObject(value) ?? {};
    try {
      const [entry] = parseProviderEntries({ [name]: value });
      return { name, type: entry.type, mode: entry.mode };
    } catch (error) {
      return {
        name,
        type: String(raw.type ?? "?"),
        mode: String(raw.mode ?? "?"),
        config_error: (error as Error).message,
      };
    }
  });
}

/**
 * The providers of `layout`'s home: the running daemon's report when it
 * answers (`/health` with the API token), else `config.json`'s entries
 * (each checked with this process's environment).
 *
 * @throws {ConfigError} when `config.json` is not JSON.
 */
export async function listProviders(layout: HomeLayout): Promise<ProviderListing> {
  const state = await readDaemonState(layout);
  let note = "courier is not running: the providers as config.json has them";
  if (state) {
    const health = await fetchHealth(state.api_url, {
      token: await readTokenFile(layout.tokenFile).catch(() => undefined),
    });
    const report = health.ok ? jsonObject(health.body.providers) : undefined;
    if (report) {
      return {
        live: true,
        providers: Object.entries(report).map(([name, value]) => ({
          name,
          ...(value as ProviderReport),
        })),
      };
    }
    const mail = health.ok
      ? jsonObject(jsonObject(health.body.services)?.mail) as { state?: string; error?: string }
      : undefined;
    note = !health.ok
      ? `courier does not answer (${health.reason})`
      : mail?.state === "failed"
      ? `courier's mail service failed to start (${mail.error}); see 'courier logs'`
      : mail?.state === "running"
      ? "the running courier has no providers (config.json changed since it started? " +
        "'courier restart' takes it in)"
      : "courier's mail service is still starting";
    note += ": the providers as config.json has them";
  }
  return { live: false, note, providers: await configured(layout) };
}
