/**
 * The chat providers of `config.json` (`providers`), as the mail service
 * checks them before the daemon binds: a bad entry or a missing `env:`
 * variable refuses the start, naming the key. Light on purpose: the
 * platform modules load only when `providers` is there.
 *
 * @module
 */
import { ConfigError, readConfigFile } from "../config/mod.ts";
import type { ProviderEntry } from "../providers/registry.ts";
import { isValidProvider } from "./mailbox.ts";
import { importLazily } from "../lazy/mod.ts";

export type { ProviderEntry } from "../providers/registry.ts";

/** Options of {@link loadProviderEntries}. */
export interface LoadProviderEntriesOptions {
  /** Provider names that already have an `outbound` webhook in `config.json`. */
  outboundNames?: Iterable<string>;
  /** Reads an environment variable, for `"env:NAME"` secrets (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
}

/**
 * Reads and checks `config.json` `providers` (none: `[]`). A provider name
 * must be a mailbox provider name (1-64 letters, digits, `-`, `_`), and may
 * not also have an `outbound` webhook (which would deliver its mail is then
 * unclear).
 *
 * @throws {ConfigError} naming the file or key at fault, never a secret's value.
 */
export async function loadProviderEntries(
  configFile: string,
  options: LoadProviderEntriesOptions = {},
): Promise<ProviderEntry[]> {
  const config = await readConfigFile(configFile);
  if (config.providers === undefined) return [];
  const { parseProviderEntries } = await importLazily<typeof import("../providers/registry.ts")>(
    "../providers/registry.ts",
    import.meta.url,
  );
  const entries = parseProviderEntries(config.providers, {
    env: options.env,
    validName: (name) =>
      isValidProvider(name) ? null : 'a provider name holds 1-64 letters, digits, "-" or "_"',
  });
  const outbound = new Set(options.outboundNames ?? []);
  for (const entry of entries) {
    if (outbound.has(entry.name)) {
      throw new ConfigError(
        `config.json outbound.${entry.name}`,
        `"${entry.name}" is a chat provider (providers.${entry.name}), which sends its own ` +
          "outbound mail: remove one of the two",
      );
    }
  }
  return entries;
}

const INBOUND_ROUTE = /^\/api\/v1\/inbound\/([A-Za-z0-9_-]{1,64})$/;

/** The provider name of a `POST /api/v1/inbound/<name>` request, else `null`. */
export function inboundProviderName(request: Request, url: URL): string | null {
  if (request.method !== "POST") return null;
  return INBOUND_ROUTE.exec(url.pathname)?.[1] ?? null;
}
