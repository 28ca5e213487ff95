/**
 * Port leases: a cross-process port allocator. Leases live in one registry
 * per user (`$XDG_RUNTIME_DIR/courier/ports.json`, else
 * `~/.courier/run/ports.json`; see `userLeaseDir`), guarded by an exclusive
 * lock on `ports.lock` beside it held only for each read-modify-write; a lease lives
 * while its owner process does (and, with a TTL, until it expires).
 *
 * @example
 * ```ts
 * import { allocatePort, releasePort } from "./mod.ts";
 * const port = await allocatePort({ range: { start: 20000, end: 20999 } });
 * // … run something on `port` …
 * await releasePort(port);
 * ```
 *
 * @module
 */
export * from "./allocator.ts";
export * from "./allocator_options.ts";
export * from "./errors.ts";
export * from "./exec.ts";
export * from "./file_lock.ts";
export * from "./lease_dir.ts";
export * from "./queue.ts";
export * from "./range.ts";
export * from "./registry.ts";
export * from "./socket_census.ts";
export type { ProcessIdentity } from "../proc/mod.ts";
