import { ConfigError, readConfigFile } from "../config/mod.ts";
import { splitHost } from "./host.ts";

/** Who, beyond the daemon's own names and non-browser clients, may call the API. */
export interface AccessSettings {
  /** `config.json` `allowed_hosts`: extra `Host` names (`name` or `name:port`). */
  allowedHosts: string[];
  /** `config.json` `allowed_origins`: web origins (`https://app.example`) allowed, with CORS. */
  allowedOrigins: string[];
}

function list(config: Record<string, unknown>, key: string, where: string): string[] {
  const value = config[key];
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new ConfigError(`${where} ${key}`, "must be a list of strings");
  }
  return value as string[];
}

/**
 * Reads `allowed_hosts` and `allowed_origins` from a parsed `config.json`.
 * A host is `name`, `name:port`, `[v6]` or `[v6]:port`; an origin is
 * `http(s)://host[:port]` with nothing after it.
 *
 * @throws {ConfigError} naming the entry at fault.
 */
export function parseAccessSettings(
  config: Record<string, unknown>,
  where = "config.json",
): AccessSettings {
  const allowedHosts = list(config, "allowed_hosts", where).map((entry, i) => {
    const split = splitHost(entry);
    if (!split) {
      throw new ConfigError(
        `${where} allowed_hosts[${i}]`,
        `"${entry}" is not a host name (name, name:port, [v6] or [v6]:port)`,
      );
    }
    return split.port === null ? split.name : `${split.name}:${Number(split.port)}`;
  });
  const allowedOrigins = list(config, "allowed_origins", where).map((entry, i) => {
    let url: URL | null = null;
    try {
      url = new URL(entry);
    } catch {
      url = null;
    }
    if (
      !url || (url.protocol !== "http:" && url.protocol !== "https:") || url.pathname !== "/" ||
      url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "" ||
      /^[a-z]+:\/\/[^/]*\/./i.test(entry)
    ) {
      throw new ConfigError(
        `${where} allowed_origins[${i}]`,
        `"${entry}" is not an origin: write scheme://host[:port], e.g. "https://app.example"`,
      );
    }
    return url.origin;
  });
  return { allowedHosts, allowedOrigins };
}

/**
 * Reads the access settings from `<home>/config.json` (none when it is
 * missing).
 *
 * @throws {ConfigError} when the file or an entry is wrong.
 */
export async function loadAccessSettings(configFile: string): Promise<AccessSettings> {
  return parseAccessSettings(await readConfigFile(configFile), configFile);
}
