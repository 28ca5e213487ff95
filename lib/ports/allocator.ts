import { asFileSystemError, HomePermissionError } from "../errors/mod.ts";
import { canBind, probeAddresses } from "../net/mod.ts";
import { type ProcessIdentity, readProcessIdentity } from "../proc/mod.ts";
import { NoFreePortError, PortOwnerNotFoundError } from "./errors.ts";
import {
  acquireLock,
  DEFAULT_LOCK_TIMEOUT_MS,
  HOLDER_WATCH_BACKSTOP_MS,
  HolderWatch,
  lockTimeoutError,
  withFileLock,
} from "./file_lock.ts";
import { userLeaseDir } from "./lease_dir.ts";
import { OwnerCheck, procAccessError } from "./owners.ts";
import {
  type AllocateOp,
  type Answer,
  currentNetns,
  newRequestId,
  type QueuedRequest,
  type ReleaseOp,
  RequestQueue,
} from "./queue.ts";
import {
  assertPortRange,
  DEFAULT_PORT_RANGE,
  isBlockedByBrowsers,
  isValidPort,
  type PortRange,
} from "./range.ts";
import {
  type Lease,
  readRegistry,
  type RegistryData,
  type RegistryPaths,
  registryPaths,
  type RegistryRead,
  type RegistrySync,
  writeRegistry,
} from "./registry.ts";
import {
  censusCovers,
  readTcpCounters,
  type SocketCensus,
  takeSocketCensus,
  type TcpCounters,
} from "./socket_census.ts";

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

function defaultWarning(message: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`courier: warning: ${message}\n`));
  } catch {
    // no stderr
  }
}

function isExpired(lease: Lease, now: number): boolean {
  // An unreadable expiry counts as expired: better a lease lost than one stuck forever.
  return lease.expires_at !== null && !(Date.parse(lease.expires_at) > now);
}

/** A lease as callers see it: a copy of their own, without the internal request tag. */
function publicLease(lease: Lease): Lease {
  const { request: _request, ...rest } = lease;
  return { ...rest, owner: rest.owner && { ...rest.owner } };
}

/** What one locked read-modify-write of the registry works with. */
interface TransactionState {
  /** The clock at its start. */
  now: number;
  /** Whether the registry must be written back. */
  dirty: boolean;
  /** Leases dropped as dead or expired. */
  pruned: Lease[];
}

/** What {@link PortAllocator}'s read-modify-write of the registry returns. */
interface CommitResult<T> {
  /** The answer to each request served (and to the caller's own, if any). */
  answers: Map<string, Answer>;
  /** The transaction's clock, dirtiness and pruned leases. */
  state: TransactionState;
  /** What the transaction's body returned. */
  value?: T;
  /** Fsyncs the registry written (start it after letting go of the lock), `null` if unchanged. */
  sync: RegistrySync | null;
}

/**
 * Leases TCP ports to processes, safely across processes: no two live
 * leases ever share a port, and a port is leased only when it is free for
 * any program (bindable on the host and its IPv6 twin, and absent from the
 * kernel's socket tables in every state, so even a program binding without
 * `SO_REUSEADDR` succeeds on it).
 *
 * Leases live in `ports.json` in one directory per user (see
 * {@link userLeaseDir}); every change is a read-modify-write
 * under an exclusive `flock` on `ports.lock`. Requests queue in
 * `ports.queue/` while they wait, and whoever holds the lock serves all of
 * them, oldest first, in one write (see `RequestQueue`), so contention costs
 * one registry write per burst rather than one per request. Waiters sleep
 * until a holder lets go (see `HolderWatch`: the kernel reports it, no
 * polling), for at most 30 s. A lease lives while its owner process does
 * (PID and start time, so a reused PID is not the owner) and, with a TTL,
 * until it expires; dead and expired leases are dropped by the next
 * allocation.
 *
 * @example
 * ```ts
 * const allocator = new PortAllocator();
 * const { port } = await allocator.allocate({ preferred: 8080, label: "dev server" });
 * try {
 *   // start a server on `port`…
 * } finally {
 *   await allocator.release(port);
 * }
 * ```
 */
export class PortAllocator {
  /** The directory holding `ports.json`, `ports.lock` and `ports.queue/`. */
  readonly dir: string;
  /** The registry and lock paths. */
  readonly paths: RegistryPaths;
  readonly #queue: RequestQueue;
  readonly #options: PortAllocatorOptions;
  readonly #now: () => number;
  readonly #warn: (message: string) => void;
  #ready: Promise<void> | null = null;
  #self: Promise<ProcessIdentity | null> | null = null;
  /** Kept open between operations once {@link prepare} ran: see {@link KeptHandles}. */
  #kept: KeptHandles | null = null;
  /** Registry fsyncs still running (see {@link close}). */
  readonly #syncing = new Set<Promise<void>>();

  /**
   * Sets up an allocator; nothing is touched on disk until the first operation.
   *
   * @param options Where the registry lives and how long to wait for its lock.
   */
  constructor(options: PortAllocatorOptions = {}) {
    this.#options = options;
    const dir = options.dir ?? userLeaseDir();
    if (dir === null) {
      throw new HomePermissionError("~/.courier/run (HOME is not set; set COURIER_LEASE_DIR)");
    }
    this.dir = dir;
    this.paths = registryPaths(this.dir);
    this.#queue = new RequestQueue(`${this.paths.registry.replace(/\.json$/, "")}.queue`);
    this.#now = options.now ?? Date.now;
    this.#warn = options.onWarning ?? defaultWarning;
  }

  /**
   * Leases a free port: `preferred` first, then the range in order. Dead and
   * expired leases are dropped on the way, so a crashed owner's ports come
   * back at once.
   *
   * @returns The new lease (its `port` is the port to use).
   * @throws {NoFreePortError} when every port is leased or held by another program.
   * @throws {PortOwnerNotFoundError} when `ownerPid` names no live process.
   * @throws {PortRegistryLockTimeoutError} when the registry lock is not granted in time.
   *
   * @example
   * ```ts
   * const lease = await new PortAllocator().allocate({ range: { start: 20000, end: 20999 } });
   * console.log(lease.port);
   * ```
   */
  async allocate(options: AllocateOptions = {}): Promise<Lease> {
    const range = options.range ?? DEFAULT_PORT_RANGE;
    assertPortRange(range);
    const preferred = options.preferred;
    if (preferred !== undefined && !isValidPort(preferred)) {
      throw new RangeError(`invalid preferred port ${preferred}: expected 1 to 65535`);
    }
    const owner = await this.#owner(options.ownerPid);
    const ttlMs = options.ttlMs ?? (owner ? undefined : DEFAULT_TTL_MS);
    if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs > 0)) {
      throw new RangeError(`invalid TTL ${ttlMs} ms: expected more than 0`);
    }
    const answer = await this.#submit({
      kind: "allocate",
      owner,
      preferred: preferred ?? null,
      range: { start: range.start, end: range.end },
      host: options.host ?? DEFAULT_HOST,
      ttl_ms: ttlMs ?? null,
      label: options.label ?? null,
      ...(options.reuseAddress ? { reuse_addr: true } : {}),
    });
    if ("lease" in answer) return answer.lease;
    if ("no_free_port" in answer) {
      throw new NoFreePortError(answer.no_free_port.range, answer.no_free_port.usage);
    }
    throw new Error(`unexpected answer to an allocation: ${JSON.stringify(answer)}`);
  }

  /**
   * Drops the lease on `port`: whoever holds it, or only when `ownerPid`
   * holds it (so a process never drops a lease that was re-issued to
   * someone else after its own was released).
   *
   * @returns `true` when a lease was dropped, `false` when there was none to drop.
   *
   * @example
   * ```ts
   * await new PortAllocator().release(10000);
   * ```
   */
  async release(port: number, options: ReleaseOptions = {}): Promise<boolean> {
    if (!isValidPort(port)) throw new RangeError(`invalid port ${port}: expected 1 to 65535`);
    const answer = await this.#submit({
      kind: "release",
      port,
      owner_pid: options.ownerPid ?? null,
    });
    if ("released" in answer) return answer.released;
    throw new Error(`unexpected answer to a release: ${JSON.stringify(answer)}`);
  }

  /**
   * Every lease in the registry with its current state (dead and expired
   * ones included: nothing is dropped).
   *
   * @example
   * ```ts
   * for (const lease of await new PortAllocator().list()) {
   *   console.log(lease.port, lease.owner?.pid ?? "ttl", lease.alive);
   * }
   * ```
   */
  async list(): Promise<LeaseInfo[]> {
    await this.#ensureDirs();
    await this.#selfIdentity(); // fails clearly where process identities cannot be read
    const { leases } = await this.#locked(async () => {
      const now = this.#now();
      const { data, file } = this.#read();
      file?.close();
      const owners = new OwnerCheck();
      await owners.load(data.leases.map((lease) => lease.owner));
      const leases = data.leases.map((lease) => {
        const ownerAlive = lease.owner ? owners.alive(lease.owner) : null;
        const expired = isExpired(lease, now);
        const alive = ownerAlive !== false && !expired;
        return { ...publicLease(lease), owner_alive: ownerAlive, expired, alive };
      }).sort((a, b) => a.port - b.port);
      return { leases, sync: null };
    });
    return leases;
  }

  /**
   * Gets ready for fast allocations: creates the registry directory, reads
   * this process's identity, drops stale leases (like {@link gc}) and, if
   * the socket census shared in the registry is out of date, reads the
   * kernel's socket tables now rather than during the next allocation (a
   * census costs a few milliseconds; it is reused until a connection is
   * accepted, or one could have landed in the candidate range).
   *
   * From then on the allocator also keeps the lock file open and, from the
   * first call that has to wait, a watch on it (a thread of the runtime),
   * rather than opening and closing them on every call: under contention
   * that is about a fifth of an allocation's latency. (The watch is not
   * opened here: it would collect every other process's release until the
   * first wait, and wake that wait once for each.) {@link close} lets go of
   * them (or `await using`). Optional:
   * allocations do all of this as needed; latency-sensitive programs call
   * it at start-up.
   *
   * @example
   * ```ts
   * await using allocator = new PortAllocator();
   * await allocator.prepare();
   * const { port } = await allocator.allocate();
   * ```
   */
  async prepare(): Promise<void> {
    await this.#ensureDirs();
    await this.#selfIdentity();
    this.#kept ??= {
      file: Deno.openSync(this.paths.lock, { read: true }),
      watch: null,
      busy: false,
    };
    await this.#locked(() =>
      this.#commit(null, async (data, state) => {
        await new CensusView(data, state).busy([DEFAULT_PORT_RANGE]);
      })
    );
  }

  /**
   * Drops every lease whose owner has exited or whose TTL has run out
   * (allocations do this too, as they go).
   *
   * @returns The leases dropped.
   *
   * @example
   * ```ts
   * const dropped = await new PortAllocator().gc();
   * console.log(`dropped ${dropped.length} stale leases`);
   * ```
   */
  async gc(): Promise<Lease[]> {
    await this.#ensureDirs();
    // Where process identities cannot be read every owner would look dead: refuse instead.
    await this.#selfIdentity();
    const { state } = await this.#locked(() => this.#commit(null));
    return state.pruned.map(publicLease);
  }

  /**
   * Hands the lease on `port` to another process (`port exec` gives it to its
   * child, so that the lease outlives courier if courier is killed).
   *
   * @returns The updated lease, or `null` when `port` is not leased.
   * @throws {PortOwnerNotFoundError} when `ownerPid` names no live process.
   */
  async transfer(port: number, ownerPid: number): Promise<Lease | null> {
    const owner = await this.#owner(ownerPid);
    await this.#ensureDirs();
    const { value } = await this.#locked(() =>
      this.#commit(null, (data, state) => {
        const index = data.leases.findIndex((l) => l.port === port);
        if (index < 0) return null;
        // Leases read from the registry are shared and frozen: replace it.
        const lease = { ...data.leases[index], owner };
        data.leases[index] = lease;
        state.dirty = true;
        return publicLease(lease);
      })
    );
    return value ?? null;
  }

  /**
   * Lets go of what {@link prepare} keeps open (the lock file and the watch
   * on it), and waits until every registry write of this allocator is on
   * disk. The allocator stays usable; it just no longer keeps them.
   *
   * Operations return as soon as their change is in the registry, where
   * every process sees it; its fsync goes on in the background (it keeps the
   * process alive until done). Call this before `Deno.exit()`, which would
   * cut it short.
   */
  async close(): Promise<void> {
    const kept = this.#kept;
    this.#kept = null;
    if (kept && !kept.busy) { // else the call using them closes them as it ends
      kept.file.close();
      await kept.watch?.close();
    }
    while (this.#syncing.size > 0) await Promise.all(this.#syncing);
  }

  /** Starts the fsync of a registry written, after the lock was let go. */
  #sync(sync: RegistrySync | null | undefined): void {
    if (!sync) return;
    const done: Promise<void> = sync()
      .catch((error) => {
        this.#warn(
          `port registry ${this.paths.registry} could not be flushed to disk ` +
            `(${error instanceof Error ? error.message : error}); it stays correct while ` +
            `this machine runs, but check the disk`,
        );
      })
      .finally(() => this.#syncing.delete(done));
    this.#syncing.add(done);
  }

  /** {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #lockTimeout(): number {
    return this.#options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  }

  #read(): RegistryRead {
    return readRegistry(this.paths.registry, { onWarning: this.#warn, now: this.#now });
  }

  /** The identity of the owner asked for (`undefined`: this process; `null`: none). */
  async #owner(ownerPid: number | null | undefined): Promise<ProcessIdentity | null> {
    if (ownerPid === null) return null;
    if (ownerPid === undefined || ownerPid === Deno.pid) return await this.#selfIdentity();
    if (!Number.isInteger(ownerPid) || ownerPid <= 0) throw new PortOwnerNotFoundError(ownerPid);
    const identity = await readProcessIdentity(ownerPid);
    if (!identity) throw procAccessError() ?? new PortOwnerNotFoundError(ownerPid);
    return identity;
  }

  async #selfIdentity(): Promise<ProcessIdentity> {
    this.#self ??= readProcessIdentity(Deno.pid);
    const self = await this.#self;
    if (!self) {
      this.#self = null;
      throw procAccessError() ?? new PortOwnerNotFoundError(Deno.pid);
    }
    return self;
  }

  /** Creates the registry directory (once per allocator). */
  async #ensureDirs(): Promise<void> {
    this.#ready ??= (async () => {
      await Deno.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await this.#queue.prepare();
      // Create it if missing (waiters open it read-only). Opening an existing
      // one for writing would wake every waiter when it is closed.
      try {
        Deno.openSync(this.paths.lock, { write: true, createNew: true, mode: 0o600 }).close();
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
    })();
    try {
      await this.#ready;
    } catch (error) {
      this.#ready = null;
      throw this.#userError(error);
    }
  }

  /**
   * Runs an operation under the lock and returns its answer. Uncontended,
   * it takes the lock and serves the operation at once (with anything
   * queued). Otherwise it queues the operation and sleeps until a holder
   * lets go: the answer is then either left in the queue by a holder that
   * served it, or this call tries the lock again.
   */
  async #submit(op: AllocateOp | ReleaseOp): Promise<Answer> {
    try {
      return await this.#serve(op);
    } catch (error) {
      throw this.#userError(error);
    }
  }

  /**
   * A full disk, a read-only file system or a missing permission, as the
   * user-facing error that names the registry (or the path the error names);
   * anything else as it is.
   */
  #userError(error: unknown): unknown {
    return asFileSystemError(error, this.paths.registry) ?? error;
  }

  /** {@link #submit}'s work. */
  async #serve(op: AllocateOp | ReleaseOp): Promise<Answer> {
    await this.#ensureDirs();
    const requester = await this.#selfIdentity();
    const request: QueuedRequest = {
      id: newRequestId(Date.now()),
      requester,
      netns: currentNetns(),
      op,
    };
    const path = this.paths.lock;
    const timeoutMs = this.#lockTimeout();
    const deadline = performance.now() + timeoutMs;
    // A prepared allocator's handles serve one call at a time (a flock
    // belongs to the open file, so two calls sharing it would not exclude
    // each other); a concurrent call opens its own.
    const kept = this.#kept && !this.#kept.busy ? this.#kept : null;
    if (kept) kept.busy = true;
    // Read-only: closing it wakes nobody. Holders announce themselves with `beacon`.
    const file = kept?.file ?? Deno.openSync(path, { read: true });
    let watch = kept?.watch ?? null;
    let posted = false;
    let locked = false;
    let beacon: Deno.FsFile | null = null;
    let commit: CommitResult<unknown> | null = null;
    try {
      if (!file.tryLockSync(true)) {
        try {
          this.#queue.post(request);
          posted = true;
        } catch {
          // The queue is an optimisation: wait for the lock itself.
        }
        for (;;) {
          if (file.tryLockSync(true)) break;
          if (posted && watch === null) {
            // Start watching, then look once more: a holder letting go from now on wakes us.
            watch = HolderWatch.open(path);
            if (kept) kept.watch = watch;
            if (watch !== null) continue;
          }
          if (!posted || watch === null) {
            await acquireLock(file, { path, exclusive: true, deadline, timeoutMs });
            break;
          }
          const left = deadline - performance.now();
          if (left <= 0) throw await lockTimeoutError(path, timeoutMs);
          await watch.wait(Math.min(left, HOLDER_WATCH_BACKSTOP_MS));
          // Whoever held the lock meanwhile may have served us.
          const answer = this.#queue.takeAnswer(request.id);
          if (answer) return answer;
        }
      }
      locked = true;
      // We hold the lock. Closing this write handle after letting go (or
      // dying) is what wakes the waiters that watch the lock file.
      beacon = Deno.openSync(path, { write: true });
      commit = await this.#commit(request);
      const answer = commit.answers.get(request.id);
      if (!answer) throw new Error(`request ${request.id} was not served`);
      return answer;
    } finally {
      const keep = kept !== null && this.#kept === kept; // not closed meanwhile
      // Let go of the lock…
      if (!keep) file.close();
      else if (locked) file.unlockSync();
      beacon?.close(); // …then wake the waiters
      if (posted) this.#queue.withdraw(request.id);
      // A wait that timed out still listens, and would keep the process alive: close it.
      if (watch && (!keep || !watch.idle)) {
        await watch.close();
        if (kept) kept.watch = null;
      }
      if (kept) kept.busy = false;
      this.#sync(commit?.sync);
    }
  }

  /**
   * Runs `fn` under the lock, without queueing (reading the leases, gc,
   * prepare, transfer); then, the lock let go, starts its `sync`.
   */
  async #locked<R extends { sync?: RegistrySync | null }>(fn: () => Promise<R>): Promise<R> {
    let result: R;
    try {
      result = await withFileLock(this.paths.lock, fn, { timeoutMs: this.#lockTimeout() });
    } catch (error) {
      throw this.#userError(error);
    }
    this.#sync(result.sync);
    return result;
  }

  /**
   * The read-modify-write itself (call under the lock): load the registry
   * (moving a corrupt one aside), drop dead and expired leases, serve every
   * queued request (and `own`), run `body`, write the registry if anything
   * changed, then leave answers for the other requesters. The caller starts
   * `sync` (the registry's fsync) once it has let go of the lock.
   */
  async #commit<T>(
    own: QueuedRequest | null,
    body?: (data: RegistryData, state: TransactionState) => T | Promise<T>,
  ): Promise<CommitResult<T>> {
    const now = this.#now();
    const { data, file: read } = this.#read();
    let handedOn = false; // the file read is closed by the write's sync, once it is on disk
    try {
      const state: TransactionState = { now, dirty: false, pruned: [] };
      const { pending: requests, answered } = this.#queue.scan(Date.now());
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
              this.#queue.withdraw(request.id); // its requester died waiting
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
            ? this.#serveAllocate(request.id, request.op, data, state, leased, busy)
            : this.#serveRelease(request.op, data, state, leased);
          answers.set(request.id, answer);
          served.push(request);
        }
      };
      await serve(requests);
      // Requests queued while this batch was served join it before the write.
      if (served.length > 0) await serve(this.#queue.scan(Date.now(), seen).pending);
      const value = await body?.(data, state);
      const sync = state.dirty
        ? writeRegistry(this.paths.registry, data, { replaces: read })
        : null;
      handedOn = sync !== null;
      for (const request of served) {
        if (request.id !== own?.id) this.#queue.answer(request, answers.get(request.id)!);
      }
      return { answers, state, value, sync };
    } finally {
      if (!handedOn) read?.close();
    }
  }

  #serveAllocate(
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

  #serveRelease(
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
}

/** What a prepared {@link PortAllocator} keeps open between operations. */
interface KeptHandles {
  /** The lock file, opened read-only: locked and unlocked, never closed in between. */
  file: Deno.FsFile;
  /** The watch on it (`null` where none can be had, or after a wait timed out). */
  watch: HolderWatch | null;
  /** Whether a call is using them. */
  busy: boolean;
}

/**
 * The kernel's socket census as one registry transaction sees it: the census
 * shared in the registry while it covers the candidates of each request
 * (see `censusCovers`), else read afresh, at most once per transaction, and
 * shared through the registry.
 */
class CensusView {
  readonly #data: RegistryData;
  readonly #state: TransactionState;
  #counters: TcpCounters | null | undefined;
  /** The census's ports, and those without the TIME_WAIT-only ones. */
  #ports: Set<number> | undefined;
  #reusable: Set<number> | undefined;
  /** The census read during this transaction, if one was. */
  #census: SocketCensus | null = null;
  #fresh = false;

  constructor(data: RegistryData, state: TransactionState) {
    this.#data = data;
    this.#state = state;
  }

  /** Whether the census was read during this transaction. */
  get fresh(): boolean {
    return this.#fresh;
  }

  /**
   * The ports held by other programs, `null` where the tables cannot be
   * read; with `reuseAddress`, not those whose only sockets are in TIME_WAIT.
   */
  async busy(
    candidates: PortRange[],
    options: { reuseAddress?: boolean } = {},
  ): Promise<Set<number> | null> {
    if (!this.#fresh) {
      this.#counters ??= readTcpCounters();
      if (!censusCovers(this.#data.sockets, this.#counters, { now: Date.now(), candidates })) {
        return await this.refresh(options);
      }
    }
    return this.#view(options);
  }

  /** Reads the socket tables now (once per transaction) and shares the result. */
  async refresh(options: { reuseAddress?: boolean } = {}): Promise<Set<number> | null> {
    if (!this.#fresh) {
      // The counters are read before the tables, so a socket the tables miss moves them.
      this.#counters = readTcpCounters();
      const census = await takeSocketCensus(this.#counters, { now: Date.now() });
      // Shared only when later readers can tell whether it still holds.
      this.#data.sockets = this.#counters ? census : null;
      this.#state.dirty = true;
      this.#fresh = true;
      this.#census = census;
      this.#ports = this.#reusable = undefined;
    }
    return this.#view(options);
  }

  #view(options: { reuseAddress?: boolean }): Set<number> | null {
    const census = this.#fresh ? this.#census : this.#data.sockets;
    if (!census) return null;
    this.#ports ??= new Set(census.ports);
    if (!options.reuseAddress || !census.time_wait?.length) return this.#ports;
    if (!this.#reusable) {
      const timeWait = new Set(census.time_wait);
      this.#reusable = new Set(census.ports.filter((port) => !timeWait.has(port)));
    }
    return this.#reusable;
  }
}

/** Options of {@link allocatePort}: what to lease and where the registry lives. */
export type AllocatePortOptions = AllocateOptions & PortAllocatorOptions;

/**
 * Leases a free port and returns it (a one-call {@link PortAllocator.allocate}).
 * The lease is owned by this process unless `ownerPid` says otherwise, and
 * ends when the owner exits or {@link releasePort} is called.
 *
 * @example
 * ```ts
 * const port = await allocatePort({ preferred: 8644, range: { start: 8645, end: 8699 } });
 * Deno.serve({ port }, () => new Response("hi"));
 * ```
 */
export async function allocatePort(options: AllocatePortOptions = {}): Promise<number> {
  await using allocator = new PortAllocator(options); // returns once the registry is on disk
  return (await allocator.allocate(options)).port;
}

/** Options of {@link releasePort}: whose lease to drop and where the registry lives. */
export type ReleasePortOptions = ReleaseOptions & PortAllocatorOptions;

/**
 * Drops the lease on `port` (a one-call {@link PortAllocator.release}).
 *
 * @returns `true` when there was a lease.
 *
 * @example
 * ```ts
 * // Drop it only if this process still holds it:
 * await releasePort(10000, { ownerPid: Deno.pid });
 * ```
 */
export async function releasePort(
  port: number,
  options: ReleasePortOptions = {},
): Promise<boolean> {
  await using allocator = new PortAllocator(options); // returns once the registry is on disk
  return await allocator.release(port, options);
}
