import { readSmallTextSync } from "../fs/mod.ts";
import { currentNetns } from "./queue.ts";
import type { PortRange } from "./range.ts";

/**
 * The kernel's TCP connection counters for this network namespace, cheap to
 * read (~0.05 ms, no hash walk): they tell whether a socket table read
 * earlier can still be trusted.
 */
export interface TcpCounters {
  /** The network namespace (`net:[4026531840]`), `""` where it cannot be told. */
  netns: string;
  /** `PassiveOpens`: connections accepted so far (monotonic, IPv4 and IPv6 alike). */
  passive: number;
  /** `ActiveOpens`: connections initiated so far (monotonic, IPv4 and IPv6 alike). */
  active: number;
  /** The ephemeral port range outgoing connections take their local port from. */
  ephemeral: PortRange;
}

/**
 * The local ports of every TCP socket the kernel lists (`/proc/net/tcp*`, any
 * state: LISTEN, ESTABLISHED, TIME_WAIT…), stamped with the
 * {@link TcpCounters} read just before, so that later allocations can tell
 * whether it still holds.
 *
 * Reading the socket tables walks the kernel's whole connection hash (about
 * 4 ms per file on a machine with 262144 buckets, however few sockets there
 * are): far more than the rest of an allocation. So allocations share one
 * reading, kept in the registry, while it provably still holds; see
 * {@link censusCovers}.
 */
export interface SocketCensus {
  /** The network namespace it was taken in. */
  netns: string;
  /** `PassiveOpens` before the tables were read. */
  passive_opens: number;
  /** `ActiveOpens` before the tables were read. */
  active_opens: number;
  /** When the tables were read (milliseconds since the epoch). */
  taken_at: number;
  /** Sorted distinct local ports of all TCP sockets, IPv4 and IPv6. */
  ports: number[];
  /**
   * Those of `ports` on which every socket is in TIME_WAIT: a server that
   * binds with `SO_REUSEADDR` (Deno, Node, Go…) can take them at once.
   * Absent in censuses of older versions (read as none).
   */
  time_wait?: number[];
}

/** A census older than this is read again whatever the counters say (5 s). */
export const CENSUS_MAX_AGE_MS = 5_000;

function snmpField(text: string, name: string): number | null {
  const lines = text.split("\n").filter((line) => line.startsWith("Tcp:"));
  if (lines.length < 2) return null;
  // /proc/net/snmp: a header line of names, then a line of values.
  const index = lines[0].trim().split(/\s+/).indexOf(name);
  const value = index > 0 ? Number(lines[1].trim().split(/\s+/)[index]) : NaN;
  return Number.isFinite(value) ? value : null;
}

/** Reads the {@link TcpCounters}, or `null` where `/proc` does not offer them (not Linux). */
export function readTcpCounters(): TcpCounters | null {
  try {
    const snmp = readSmallTextSync("/proc/net/snmp");
    const passive = snmpField(snmp, "PassiveOpens");
    const active = snmpField(snmp, "ActiveOpens");
    if (passive === null || active === null) return null;
    let ephemeral: PortRange = { start: 1, end: 65535 }; // unknown: assume every port
    try {
      const [start, end] = readSmallTextSync("/proc/sys/net/ipv4/ip_local_port_range")
        .trim().split(/\s+/).map(Number);
      if (start > 0 && end >= start) ephemeral = { start, end };
    } catch {
      // keep the cautious default
    }
    return { netns: currentNetns() ?? "", passive, active, ephemeral };
  } catch {
    return null;
  }
}

/**
 * Whether `census` still lists every socket that could sit on the
 * `candidates` ports, so that they need not be read again:
 *
 * - same network namespace, and taken less than {@link CENSUS_MAX_AGE_MS} ago;
 * - no connection accepted since (`PassiveOpens` unchanged): an accepted
 *   connection sits on its listener's port, which may be a candidate, and
 *   outlives the listener (ESTABLISHED, then TIME_WAIT);
 * - when a candidate lies in the ephemeral range, no connection initiated
 *   since either (`ActiveOpens` unchanged), since outgoing connections take
 *   their local port from that range. Outside it they do not, so the steady
 *   stream of outgoing connections on a desktop does not force a re-read.
 *
 * A socket that only listens is not tracked here: the bind probe finds it
 * while it listens, and once closed it leaves nothing behind. A census can
 * thus err only towards caution (a port it lists may have been freed since);
 * callers re-read it before giving up a preferred port it alone blocks.
 */
export function censusCovers(
  census: SocketCensus | null | undefined,
  counters: TcpCounters | null,
  options: { now: number; candidates: PortRange[] },
): census is SocketCensus {
  if (!census || !counters) return false;
  if (census.netns !== counters.netns || census.passive_opens !== counters.passive) return false;
  const age = options.now - census.taken_at;
  if (!(age >= 0 && age < CENSUS_MAX_AGE_MS)) return false;
  const { start, end } = counters.ephemeral;
  const ephemeral = options.candidates.some((r) => r.start <= end && r.end >= start);
  return !ephemeral || census.active_opens === counters.active;
}

/**
 * The local port and state of every socket in the text of `/proc/net/tcp`
 * or `/proc/net/tcp6`. Only those two fields are taken from each line (the
 * second field ends in `:PPPP`, hex; the fourth is the state, `06` for
 * TIME_WAIT), which keeps a census of a busy machine cheap;
 * `readSocketTable` in `lib/net` parses every field when more is needed.
 */
export function socketTablePorts(text: string): { port: number; timeWait: boolean }[] {
  const sockets: { port: number; timeWait: boolean }[] = [];
  for (const line of text.split("\n")) {
    // "  12: 0100007F:2710 00000000:0000 0A …" (the header line does not match)
    const match = line.match(/^\s*\d+:\s+[0-9A-Fa-f]+:([0-9A-Fa-f]{4})\s+\S+\s+([0-9A-Fa-f]{2})\s/);
    if (match) sockets.push({ port: parseInt(match[1], 16), timeWait: match[2] === "06" });
  }
  return sockets;
}

/**
 * Reads the kernel's socket tables (IPv4 and IPv6 at once) and returns a
 * census stamped with `counters`, which must have been read before calling
 * this, so that any socket the census might miss moves them. Returns `null`
 * where the tables cannot be read (not Linux): callers then rely on bind
 * probes alone.
 */
export async function takeSocketCensus(
  counters: TcpCounters | null,
  options: { now?: number } = {},
): Promise<SocketCensus | null> {
  const read = (path: string) => Deno.readTextFile(path).catch(() => null);
  // Each file walks the whole connection hash: read both in parallel.
  const [tcp, tcp6] = await Promise.all([read("/proc/net/tcp"), read("/proc/net/tcp6")]);
  if (tcp === null && tcp6 === null) return null;
  const ports = new Set<number>();
  const held = new Set<number>(); // by a socket in another state than TIME_WAIT
  for (
    const { port, timeWait } of [...socketTablePorts(tcp ?? ""), ...socketTablePorts(tcp6 ?? "")]
  ) {
    ports.add(port);
    if (!timeWait) held.add(port);
  }
  const sorted = [...ports].sort((a, b) => a - b);
  return {
    netns: counters?.netns ?? "",
    passive_opens: counters?.passive ?? -1,
    active_opens: counters?.active ?? -1,
    taken_at: options.now ?? Date.now(),
    ports: sorted,
    time_wait: sorted.filter((port) => !held.has(port)),
  };
}
