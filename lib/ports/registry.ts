import { basename, dirname, join } from "node:path";
import { readAllTextSync } from "../fs/mod.ts";
import type { ProcessIdentity } from "../proc/mod.ts";
import { PortRegistryError } from "./errors.ts";
import { isValidPort } from "./range.ts";
import type { SocketCensus } from "./socket_census.ts";
import { isRecord, tryParseJson } from "./json.ts";

/** One port lease, as recorded in `ports.json`. */
export interface Lease {
  /** The leased port. */
  port: number;
  /**
   * The process that holds it (PID, start time and boot, so a reused PID is
   * not the owner), or `null` for a lease held by its TTL alone.
   */
  owner: ProcessIdentity | null;
  /** The host the port was probed on (`127.0.0.1`, `0.0.0.0`…). */
  host: string;
  /** Free text to tell leases apart (`courier daemon`, the `port exec` command). */
  label: string | null;
  /** When it was leased (ISO 8601). */
  created_at: string;
  /** When it expires (ISO 8601), or `null` for no TTL. */
  expires_at: string | null;
  /** Internal: the queued request that created it (absent from leases handed to callers). */
  request?: string;
}

/** The content of `ports.json`. */
export interface RegistryData {
  /** Format version: 1. */
  version: 1;
  /** The leases, sorted by port. */
  leases: Lease[];
  /** The last socket-table census shared between allocations (see `SocketCensus`). */
  sockets?: SocketCensus | null;
}

/** The format version this courier writes. */
export const REGISTRY_VERSION = 1;

/** The paths of a port registry kept in `dir` (`<home>/run` for a courier home). */
export interface RegistryPaths {
  /** `ports.json`: the leases. */
  registry: string;
  /** `ports.lock`: guards each read-modify-write of the registry; never deleted. */
  lock: string;
}

/** The registry and lock paths inside `dir`. */
export function registryPaths(dir: string): RegistryPaths {
  return { registry: join(dir, "ports.json"), lock: join(dir, "ports.lock") };
}

/** An empty registry. */
export function emptyRegistry(): RegistryData {
  return { version: REGISTRY_VERSION, leases: [] };
}

/** A cheap shape check (every lease is checked on every read; `Date.parse` is not cheap). */
function isIso(value: unknown): value is string {
  return typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value);
}

function parseOwner(value: unknown): ProcessIdentity | null | undefined {
  if (value === null) return null;
  if (!isRecord(value)) return undefined;
  const { pid, startTime, bootId } = value;
  if (!Number.isInteger(pid) || (pid as number) <= 0 || typeof startTime !== "string") {
    return undefined;
  }
  if (bootId !== undefined && typeof bootId !== "string") return undefined;
  const owner: ProcessIdentity = { pid: pid as number, startTime };
  if (bootId !== undefined) owner.bootId = bootId;
  return owner;
}

/** Validates one lease record; `null` when it is malformed. */
export function parseLease(value: unknown): Lease | null {
  if (!isRecord(value)) return null;
  const port = value.port;
  if (typeof port !== "number" || !isValidPort(port)) return null;
  const owner = parseOwner(value.owner);
  if (owner === undefined) return null;
  const host = value.host;
  const label = value.label ?? null;
  if (typeof host !== "string" || (label !== null && typeof label !== "string")) return null;
  if (!isIso(value.created_at)) return null;
  const expires = value.expires_at ?? null;
  if (expires !== null && !isIso(expires)) return null;
  const lease: Lease = {
    port,
    owner,
    host,
    label,
    created_at: value.created_at,
    expires_at: expires,
  };
  if (typeof value.request === "string") lease.request = value.request;
  return lease;
}

function parseCensus(value: unknown): SocketCensus | null {
  if (!isRecord(value)) return null;
  const { netns, passive_opens, active_opens, taken_at, ports, time_wait } = value;
  const numbers = (list: unknown): list is number[] =>
    Array.isArray(list) && list.every((p) => typeof p === "number");
  if (
    typeof netns !== "string" || typeof passive_opens !== "number" ||
    typeof active_opens !== "number" || typeof taken_at !== "number" || !numbers(ports)
  ) {
    return null;
  }
  // Without a valid TIME_WAIT list, none is known: every listed port stays busy.
  return {
    netns,
    passive_opens,
    active_opens,
    taken_at,
    ports,
    time_wait: numbers(time_wait) ? time_wait : [],
  };
}

/**
 * What this process parsed of the registry it read last, by line: the lease
 * (or `null`, malformed) for each lease line, the census for the sockets
 * line. Every allocation reads the whole registry under the lock, but
 * between two reads only a few lines change, so each line is parsed once
 * (JSON parsing and checking 200 leases costs about 0.4 ms, a look-up here
 * microseconds). The cache holds the lines of one registry, the last one
 * read. Cached leases are frozen: they are shared by every read, and their
 * line is written back as it was read.
 */
let parsedLines = new Map<string, Lease | null>();
const leaseLines = new WeakMap<Lease, string>();
let censusLine: { text: string; census: SocketCensus | null } | null = null;

const HEADER = `{"version":${REGISTRY_VERSION},"leases":[`;
const SOCKETS = `],"sockets":`;

/**
 * The lease on a lease line (`null`: a malformed lease), from the last
 * read's cache or parsed now, and recorded in `seen`; `undefined` when the
 * line is not JSON at all.
 */
function cachedLease(line: string, seen: Map<string, Lease | null>): Lease | null | undefined {
  let lease = parsedLines.get(line);
  if (lease === undefined) {
    const raw = tryParseJson(line);
    if (raw === undefined) return undefined;
    lease = parseLease(raw);
    if (lease) {
      if (lease.owner) Object.freeze(lease.owner);
      leaseLines.set(Object.freeze(lease), line);
    }
  }
  seen.set(line, lease);
  return lease;
}

/**
 * Parses a registry laid out exactly as {@link formatRegistry} writes it,
 * line by line through the cache; `null` for anything else (which the
 * general parser then reads), so the result is always what the general
 * parser would make of the same text.
 */
function parseFormatted(text: string): ParsedRegistry | null {
  if (!text.startsWith(HEADER + "\n") || !text.endsWith("}\n")) return null;
  const lines = text.slice(HEADER.length + 1, -2).split("\n");
  const last = lines.pop()!;
  if (!last.startsWith(SOCKETS)) return null;
  const leases: Lease[] = [];
  const seen = new Map<string, Lease | null>();
  let dropped = 0;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (!line.startsWith("  ")) return null;
    if (i < lines.length - 1) {
      if (!line.endsWith(",")) return null;
      line = line.slice(2, -1);
    } else {
      line = line.slice(2);
    }
    if (!line.startsWith("{") || !line.endsWith("}")) return null;
    const lease = cachedLease(line, seen);
    if (lease === undefined) return null; // not JSON at all: the general parser says why
    if (lease) leases.push(lease);
    else dropped++;
  }
  const socketsText = last.slice(SOCKETS.length);
  if (censusLine?.text !== socketsText) {
    const raw = tryParseJson(socketsText);
    if (raw === undefined) return null;
    censusLine = { text: socketsText, census: parseCensus(raw) };
  }
  parsedLines = seen;
  return {
    ok: true,
    data: { version: REGISTRY_VERSION, leases, sockets: censusLine.census },
    dropped,
  };
}

/** Result of {@link parseRegistry}. */
export type ParsedRegistry =
  | { ok: true; data: RegistryData; dropped: number }
  | { ok: false; reason: string };

/**
 * Parses the text of `ports.json`. Malformed lease records are dropped (and
 * counted); text that is not JSON or not a registry at all is reported as
 * `ok: false` so the caller can move the file aside.
 *
 * @throws {PortRegistryError} when the registry was written by a newer courier.
 */
export function parseRegistry(text: string, path: string): ParsedRegistry {
  const formatted = parseFormatted(text);
  if (formatted) return formatted;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  if (!isRecord(raw) || !Array.isArray(raw.leases)) {
    return { ok: false, reason: "not a port registry (no leases list)" };
  }
  const version = raw.version ?? REGISTRY_VERSION;
  if (typeof version !== "number") return { ok: false, reason: "bad version field" };
  if (version > REGISTRY_VERSION) {
    throw new PortRegistryError(
      path,
      `format version ${version} was written by a newer courier; upgrade courier to use it`,
    );
  }
  const leases: Lease[] = [];
  let dropped = 0;
  for (const item of raw.leases) {
    const lease = parseLease(item);
    if (lease) leases.push(lease);
    else dropped++;
  }
  return {
    ok: true,
    data: { version: REGISTRY_VERSION, leases, sockets: parseCensus(raw.sockets) },
    dropped,
  };
}

/**
 * Serialises a registry as JSON with one lease per line: readable with
 * `cat`, diffable, and a fraction of the size of fully indented JSON (which
 * matters: every allocation reads and writes it under the lock). A lease
 * read from a registry is written back as the line it was read from.
 */
export function formatRegistry(data: RegistryData): string {
  const leases = [...data.leases].sort((a, b) => a.port - b.port);
  const lines = [HEADER];
  leases.forEach((lease, i) => {
    const line = leaseLines.get(lease) ?? JSON.stringify(lease);
    lines.push(`  ${line}${i < leases.length - 1 ? "," : ""}`);
  });
  const sockets = data.sockets ?? null;
  const socketsText = censusLine?.census === sockets && sockets !== null
    ? censusLine.text
    : JSON.stringify(sockets);
  lines.push(`${SOCKETS}${socketsText}}`);
  return lines.join("\n") + "\n";
}

/** Options of {@link readRegistry}. */
export interface ReadRegistryOptions {
  /** Receives warnings (a corrupt registry moved aside, malformed leases dropped). */
  onWarning: (message: string) => void;
  /** The clock, for the name of a moved-aside file. */
  now?: () => number;
}

/** What {@link readRegistry} read. */
export interface RegistryRead {
  /** The registry. */
  data: RegistryData;
  /**
   * The file it was read from, still open (`null` when there was none):
   * hand it to {@link writeRegistry} as `replaces`, or close it.
   */
  file: Deno.FsFile | null;
}

/**
 * Reads the registry at `path` (call it under the registry lock). A missing
 * file is an empty registry. A file that does not parse is renamed to
 * `<path>.corrupt-<timestamp>` (kept for inspection), a warning is given,
 * and an empty registry is returned, so allocation goes on.
 *
 * The file is left open for the caller: while it is, the file outlives
 * being replaced, so the rename in {@link writeRegistry} does not also free
 * its disk blocks (on a file system that discards freed blocks at once,
 * that was most of a rename's cost, under the lock).
 *
 * Synchronous on purpose, like {@link writeRegistry}: the registry is small
 * and local, and every asynchronous file operation costs a thread hand-off
 * while the lock is held and other processes queue for it.
 */
export function readRegistry(path: string, options: ReadRegistryOptions): RegistryRead {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { data: emptyRegistry(), file: null };
    throw error;
  }
  let parsed: ParsedRegistry;
  try {
    parsed = parseRegistry(readAllTextSync(file), path);
  } catch (error) {
    file.close();
    throw error;
  }
  if (parsed.ok) {
    if (parsed.dropped > 0) {
      options.onWarning(
        `port registry ${path}: dropped ${parsed.dropped} malformed lease record(s)`,
      );
    }
    return { data: parsed.data, file };
  }
  file.close();
  const stamp = new Date(options.now?.() ?? Date.now()).toISOString().replace(/[:.]/g, "-");
  const aside = `${path}.corrupt-${stamp}`;
  Deno.renameSync(path, aside);
  options.onWarning(
    `port registry ${path} could not be read (${parsed.reason}); ` +
      `moved it to ${aside} and started a new one. Leases recorded only there are forgotten; ` +
      `ports still in use stay protected by the bind and socket-table checks.`,
  );
  return { data: emptyRegistry(), file: null };
}

let tempCounter = 0;

/** Flushes a written registry to disk: see {@link writeRegistry}. */
export type RegistrySync = () => Promise<void>;

/**
 * Writes the registry crash-safely (call it under the registry lock): the
 * new content goes to a temporary file beside it, which is renamed over it,
 * so a reader or a crashed writer leaves the old or the new registry, never
 * a mix. Returns the function that fsyncs it: call it once the lock is let
 * go; it runs on a thread of the runtime, and keeps the process alive until
 * it is done. The file the registry was read from (`replaces`, from
 * {@link readRegistry}) is closed then too, which frees its blocks; on
 * failure it is left to the caller.
 *
 * Why fsync after letting go, without making the caller wait: the fsync
 * only matters if the machine itself goes down, and then every lease owner
 * goes down with it (a reboot changes the boot ID; TTL leases soon expire),
 * while under the lock it would make every waiting process sit out the
 * disk's slowest flushes (tens of milliseconds when other programs write
 * heavily), and awaited it would add them to the caller's own allocation.
 * Every other process reads the new registry as soon as it is renamed.
 * Should the machine crash before the fsync, the worst case is a registry
 * that does not parse, which the next reader moves aside and replaces. The
 * directory is not fsynced for the same reason.
 */
export function writeRegistry(
  path: string,
  data: RegistryData,
  options: { replaces?: Deno.FsFile | null } = {},
): RegistrySync {
  const bytes = new TextEncoder().encode(formatRegistry(data));
  const tmp = join(dirname(path), `.${basename(path)}.${Deno.pid}.${++tempCounter}.tmp`);
  const file = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    Deno.renameSync(tmp, path);
  } catch (error) {
    file.close();
    try {
      Deno.removeSync(tmp);
    } catch {
      // renamed or never written
    }
    throw error;
  }
  const replaced = options.replaces ?? null;
  return async () => {
    try {
      await file.syncData();
    } finally {
      file.close();
      replaced?.close();
    }
  };
}
