/**
 * What callers of the port allocator pass and get: its options, what to
 * lease or release, and a lease's state as listed.
 *
 * @module
 */
import type { PortRange } from "./range.ts";
import type { Lease } from "./registry.ts";

/** How long a lease with no owner lives when no TTL is given: 300 s. */
export const DEFAULT_TTL_MS = 300_000;

/** The host ports are probed on when none is given. */
export const DEFAULT_HOST = "127.0.0.1";

/** Where a {@link PortAllocator} keeps its registry, and how it behaves. */
export interface PortAllocatorOptions {
  /**
   * The directory that holds `ports.json`, `ports.lock` and `ports.queue/`
   * (default: this user's, see {@link userLeaseDir}: one registry per user,
   * so that no two of the user's processes get the same port).
   */
  dir?: string;
  /** How long to wait for the registry lock, in milliseconds (default 30 000). */
  lockTimeoutMs?: number;
  /** Receives warnings, e.g. a corrupt registry moved aside (default: printed on stderr). */
  onWarning?: (message: string) => void;
  /**
   * The clock for lease times and expiry, in milliseconds since the epoch
   * (default `Date.now`; tests pass their own).
   */
  now?: () => number;
}

/** What to lease. */
export interface AllocateOptions {
  /** A port to try before the range (it may lie outside the range). */
  preferred?: number;
  /** The ports to choose from, inclusive (default 10000-10999). */
  range?: PortRange;
  /**
   * The host the port must be free on (default `127.0.0.1`). Loopback and
   * any-address hosts are also probed on their IPv6 twin.
   */
  host?: string;
  /**
   * The PID of the process that holds the lease: the lease ends when that
   * process does (a reused PID does not count). Default `Deno.pid`; `null`
   * for a lease held by its TTL alone.
   */
  ownerPid?: number | null;
  /**
   * Time to live in milliseconds. Default: none for an owned lease,
   * {@link DEFAULT_TTL_MS} for one with no owner.
   */
  ttlMs?: number;
  /** Free text shown by `courier port list`. */
  label?: string;
  /**
   * The port's user binds with `SO_REUSEADDR`, as `Deno.listen`, Node and
   * Go servers do: a port whose only sockets are in TIME_WAIT is free for it
   * (default `false`: it is not, for programs that bind without it, such as
   * Python's). `courier start --port auto` sets it, so a restarted daemon
   * keeps its port.
   */
  reuseAddress?: boolean;
}

/** Options of {@link PortAllocator.release}. */
export interface ReleaseOptions {
  /** Drop the lease only if this PID owns it. */
  ownerPid?: number;
}

/** A lease with its current state, as {@link PortAllocator.list} reports it. */
export interface LeaseInfo extends Lease {
  /** Whether the owner process is still alive, `null` for a lease with no owner. */
  owner_alive: boolean | null;
  /** Whether its TTL has run out. */
  expired: boolean;
  /** Whether the lease still holds its port: owner alive (if any) and not expired. */
  alive: boolean;
}

/** Options of {@link allocatePort}: what to lease and where the registry lives. */
export type AllocatePortOptions = AllocateOptions & PortAllocatorOptions;

/** Options of {@link releasePort}: whose lease to drop and where the registry lives. */
export type ReleasePortOptions = ReleaseOptions & PortAllocatorOptions;
