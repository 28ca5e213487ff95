import { ConfigError, readConfigFile } from "../config/mod.ts";
import type { HomeLayout } from "../home/mod.ts";
import type { Logger } from "../log/mod.ts";
import { findPortHolder } from "../net/mod.ts";
import { type OpenFileLimit, raiseOpenFileLimit } from "../proc/mod.ts";
import { PortInUseError } from "./errors.ts";
import {
  type ConnectionLimits,
  connectionLimitsSupported,
  type CourierHttpServer,
  DEFAULT_CONNECTION_LIMITS,
  serveHttp,
} from "./http_server.ts";

/** The `config.json` keys of the connection limits, and what each sets. */
const CONFIG_KEYS = {
  max_connections: "maxConnections",
  idle_timeout_s: "idleTimeoutMs",
  header_timeout_s: "headerTimeoutMs",
} as const;

/**
 * Reads the connection limits from `config.json`'s object: `max_connections`
 * (a whole number; 0 for no limit), `idle_timeout_s` and `header_timeout_s`
 * (seconds, above 0). Keys that are absent keep their defaults.
 *
 * @throws {ConfigError} naming the key when a value is not valid.
 */
export function connectionLimitsFromConfig(
  config: Record<string, unknown>,
  where = "config.json",
): ConnectionLimits {
  const limits: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS };
  for (const [key, field] of Object.entries(CONFIG_KEYS)) {
    const value = config[key];
    if (value === undefined) continue;
    if (field === "maxConnections") {
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
        throw new ConfigError(
          `${where} ${key}`,
          `must be a whole number (0 for no limit), not ${JSON.stringify(value)}`,
        );
      }
      limits.maxConnections = value === 0 ? Infinity : value;
    } else {
      if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
        throw new ConfigError(
          `${where} ${key}`,
          `must be a number of seconds above 0, not ${JSON.stringify(value)}`,
        );
      }
      limits[field] = Math.round(value * 1000);
    }
  }
  return limits;
}

/**
 * File descriptors kept free of connections for everything else the daemon
 * opens (log, locks, journal, mail files being written): a quarter of the
 * limit, at least 64.
 */
export function reservedDescriptors(limit: number): number {
  return Math.max(64, Math.ceil(limit / 4));
}

/**
 * The most connections the open-file limit leaves room for: the limit less
 * {@link reservedDescriptors} (at least 16), `Infinity` when it is unknown
 * or unlimited.
 */
export function connectionsWithin(limit: OpenFileLimit | null): number {
  if (!limit || !Number.isFinite(limit.soft)) return Infinity;
  return Math.max(16, limit.soft - reservedDescriptors(limit.soft));
}

/** Options of {@link listenHttp}. */
export interface ListenHttpOptions {
  /** Host to listen on. */
  host: string;
  /** Port to listen on. */
  port: number;
  /** The daemon's request handler. */
  handler: Deno.ServeHandler<Deno.NetAddr>;
  /** The home, whose `config.json` may set connection limits. */
  layout: HomeLayout;
  /** The daemon's log. */
  log: Logger;
}

/**
 * Starts the daemon's HTTP server: reads the connection limits from
 * `config.json`, raises the soft open-file limit to the hard one where it
 * can, fits the connection limit under it (saying so in the log when it
 * lowers a configured value) and listens.
 *
 * @throws {PortInUseError} naming the holder when the port is taken.
 * @throws {ConfigError} when `config.json` holds a bad limit.
 */
export async function listenHttp(options: ListenHttpOptions): Promise<CourierHttpServer> {
  const { log } = options;
  const config = await readConfigFile(options.layout.configFile);
  const limits = connectionLimitsFromConfig(config, options.layout.configFile);
  const files = await raiseOpenFileLimit();
  const room = connectionsWithin(files);
  const fileText = files ? `open-file limit ${files.soft}` : "open-file limit unknown";
  if (limits.maxConnections !== Infinity && limits.maxConnections > room) {
    // The default is fitted quietly (the line below says so); a configured value, out loud.
    if (config.max_connections !== undefined) {
      log.warn(
        `max_connections ${limits.maxConnections} lowered to ${room}: this process may open ` +
          `${files?.soft} files (ulimit -n, hard limit ${files?.hard}); raise it (LimitNOFILE= in a systemd unit, ` +
          `ulimit -n in the shell that starts courier) to allow more`,
      );
    }
    limits.maxConnections = room;
  }
  if (limits.maxConnections !== Infinity && !connectionLimitsSupported()) {
    log.warn("this runtime cannot limit connections: serving with Deno.serve, without limits");
  }
  let server: CourierHttpServer;
  try {
    server = serveHttp({
      hostname: options.host,
      port: options.port,
      handler: options.handler,
      limits,
      log,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new PortInUseError(options.port, await findPortHolder(options.port));
    }
    throw error;
  }
  const limit = server.stats().limit;
  log.info(
    limit === Infinity
      ? `http: no connection limit and no timeouts (${fileText})`
      : `http: at most ${limit} connections (${fileText}), idle timeout ` +
        `${limits.idleTimeoutMs / 1000} s, header timeout ${limits.headerTimeoutMs / 1000} s`,
  );
  return server;
}
