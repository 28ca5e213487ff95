/**
 * One locked read-modify-write of the port registry: load it, drop dead and
 * expired leases, serve every queued request (a new lease, or the release
 * of one), write it back if anything changed, and leave each requester its
 * answer. `PortAllocator` runs it under the registry lock.
 *
 * @module
 */
import { canBind, probeAddresses } from "../net/mod.ts";
import { CensusView } from "./census_view.ts";
import { OwnerCheck } from "./owners.ts";
import {
  type AllocateOp,
  type Answer,
  currentNetns,
  type QueuedRequest,
  type ReleaseOp,
  type RequestQueue,
} from "./queue.ts";
import { isBlockedByBrowsers } from "./range.ts";
import {
  type Lease,
  type RegistryData,
  type RegistryRead,
  type RegistrySync,
  writeRegistry,
} from "./registry.ts";

/** Whether `lease`'s TTL has run out at `now`. */
export function isExpired(lease: Lease, now: number): boolean {
  // An unreadable expiry counts as expired: better a lease lost than one stuck forever.
  return lease.expires_at !== null && !(Date.parse(lease.expires_at) > now);
}

/** A lease as callers see it: a copy of their own, without the internal request tag. */
export function publicLease(lease: Lease): Lease {
  const { request: _request, ...rest } = lease;
  return { ...rest, owner: rest.owner && { ...rest.owner } };
}

/** What one locked read-modify-write of the registry works with. */
export interface TransactionState {
  /** The clock at its start. */
  now: number;
  /** Whether the registry must be written back. */
  dirty: boolean;
  /** Leases dropped as dead or expired. */
  pruned: Lease[];
}

/** What {@link commitTransaction} returns. */
export interface CommitResult<T> {
  /** The answer to each request served (and to the caller's own, if any). */
  answers: Map<string, Answer>;
  /** The transaction's clock, dirtiness and pruned leases. */
  state: TransactionState;
  /** What the transaction's body returned. */
  value?: T;
  /** Fsyncs the registry written (start it after letting go of the lock), `null` if unchanged. */
  sync: RegistrySync | null;
}

/** What {@link commitTransaction} works with: the registry, its queue and the clock. */
export interface TransactionContext {
  /** The registry file (`ports.json`). */
  registry: string;
  /** The requests waiting for whoever holds the lock. */
  queue: RequestQueue;
  /** The clock for lease times and expiry. */
  now: () => number;
  /** Reads the registry (moving a corrupt one aside). */
  read: () => RegistryRead;
}

/**
 * The read-modify-write itself (call under the lock): load the registry
 * (moving a corrupt one aside), drop dead and expired leases, serve every
 * queued request (and `own`), run `body`, write the registry if anything
 * changed, then leave answers for the other requesters. The caller starts
 * `sync` (the registry's fsync) once it has let go of the lock.
 */
export async function commitTransaction<T>(
  context: TransactionContext,
  own: QueuedRequest | null,
  body?: (data: RegistryData, state: TransactionState) => T | Promise<T>,
): Promise<CommitResult<T>> {
  const now = context.now();
  const { data, file: read } = context.read();
  let handedOn = false; // the file read is closed by the write's sync, once it is on disk
  try {
    const state: TransactionState = { now, dirty: false, pruned: [] };
    const { pending: requests, answered } = context.queue.scan(Date.now());
    const answers = new Map<string, Answer>();
    // Our own request may have been served by a holder in the instant before we got the lock.
    const earlier = own ? answered.get(own.id) : undefined;
    if (own && earlier) answers.set(own.id, earlier);
    else if (own && !requests.some((r) => r.id === own.id)) requests.push(own);

    const owners = new OwnerCheck();
    await owners.load([
      ...data.leases.map((lease) => lease.owner),
      ...requests.map((r) => r.requester),
    ]);
    const kept: Lease[] = [];
    const leased = new Set<number>();
    for (const lease of data.leases) {
      const dead = (lease.owner !== null && !owners.alive(lease.owner)) ||
        isExpired(lease, now) || leased.has(lease.port);
      if (dead) {
        state.pruned.push(lease);
      } else {
        kept.push(lease);
        leased.add(lease.port);
      }
    }
    data.leases = kept;
    state.dirty ||= state.pruned.length > 0;

    const netns = currentNetns();
    const served: QueuedRequest[] = [];
    const seen = new Set<string>();
    const census = new CensusView(data, state);
    const serve = async (batch: QueuedRequest[]) => {
      const fresh = batch.filter((r) => !seen.has(r.id));
      fresh.forEach((r) => seen.add(r.id));
      await owners.load(fresh.map((r) => r.requester));
      for (const request of fresh) {
        if (request.id !== own?.id) {
          if (!owners.alive(request.requester)) {
            context.queue.withdraw(request.id); // its requester died waiting
            continue;
          }
          if (request.netns !== netns) continue; // ports are probed in the holder's namespace
        }
        let busy: Set<number> | null = null;
        if (request.op.kind === "allocate") {
          const op = request.op;
          const preferred = op.preferred;
          const candidates = preferred === null
            ? [op.range]
            : [op.range, { start: preferred, end: preferred }];
          busy = await census.busy(candidates, { reuseAddress: op.reuse_addr === true });
          // A preferred port that only an older census says is taken may
          // have been freed since: read the tables again rather than pass it over.
          if (
            preferred !== null && !census.fresh && busy?.has(preferred) &&
            !leased.has(preferred) &&
            probeAddresses(op.host).every((address) => canBind(preferred, address))
          ) {
            busy = await census.refresh({ reuseAddress: op.reuse_addr === true });
          }
        }
        const answer = request.op.kind === "allocate"
          ? serveAllocate(request.id, request.op, data, state, leased, busy)
          : serveRelease(request.op, data, state, leased);
        answers.set(request.id, answer);
        served.push(request);
      }
    };
    await serve(requests);
    // Requests queued while this batch was served join it before the write.
    if (served.length > 0) await serve(context.queue.scan(Date.now(), seen).pending);
    const value = await body?.(data, state);
    const sync = state.dirty ? writeRegistry(context.registry, data, { replaces: read }) : null;
    handedOn = sync !== null;
    for (const request of served) {
      if (request.id !== own?.id) context.queue.answer(request, answers.get(request.id)!);
    }
    return { answers, state, value, sync };
  } finally {
    if (!handedOn) read?.close();
  }
}

function serveAllocate(
  id: string,
  op: AllocateOp,
  data: RegistryData,
  state: TransactionState,
  leased: Set<number>,
  busy: Set<number> | null,
): Answer {
  // Served already by a holder that died before leaving the answer.
  const earlier = data.leases.find((lease) => lease.request === id);
  if (earlier) return { lease: publicLease(earlier) };
  const { range, preferred } = op;
  const addresses = probeAddresses(op.host);
  const free = (port: number): boolean =>
    !leased.has(port) && !busy?.has(port) &&
    addresses.every((address) => canBind(port, address));
  let chosen = preferred !== null && free(preferred) ? preferred : null;
  let leasedInRange = 0;
  let busyInRange = 0;
  let blockedInRange = 0;
  for (let port = range.start; chosen === null && port <= range.end; port++) {
    // Never handed out from a range: a browser (or fetch) could not reach what listens there.
    if (isBlockedByBrowsers(port) && port !== preferred) blockedInRange++;
    else if (leased.has(port)) leasedInRange++;
    else if (port !== preferred && free(port)) chosen = port;
    else busyInRange++;
  }
  if (chosen === null) {
    const total = range.end - range.start + 1 - blockedInRange;
    return {
      no_free_port: { range, usage: { total, leased: leasedInRange, busy: busyInRange } },
    };
  }
  const lease: Lease = {
    port: chosen,
    owner: op.owner,
    host: op.host,
    label: op.label,
    created_at: new Date(state.now).toISOString(),
    expires_at: op.ttl_ms !== null ? new Date(state.now + op.ttl_ms).toISOString() : null,
    request: id,
  };
  data.leases.push(lease);
  leased.add(chosen);
  state.dirty = true;
  return { lease: publicLease(lease) };
}

function serveRelease(
  op: ReleaseOp,
  data: RegistryData,
  state: TransactionState,
  leased: Set<number>,
): Answer {
  const matches = (lease: Lease) =>
    lease.port === op.port && (op.owner_pid === null || lease.owner?.pid === op.owner_pid);
  const before = data.leases.length;
  data.leases = data.leases.filter((lease) => !matches(lease));
  const dropped = data.leases.length < before;
  if (dropped) {
    leased.delete(op.port);
    state.dirty = true;
  }
  return { released: dropped || state.pruned.some(matches) };
}
