/**
 * The port allocator's public face: {@link PortAllocator} and the one-call
 * {@link allocatePort} and {@link releasePort}. Each operation waits for
 * its turn at the registry lock (`lock_turn.ts`), where one transaction
 * serves every queued request (`transaction.ts`).
 *
 * @module
 */
import { asFileSystemError, HomePermissionError } from "../errors/mod.ts";
import { type ProcessIdentity, readProcessIdentity } from "../proc/mod.ts";
import {
  type AllocateOptions,
  type AllocatePortOptions,
  DEFAULT_HOST,
  DEFAULT_TTL_MS,
  type LeaseInfo,
  type PortAllocatorOptions,
  type ReleaseOptions,
  type ReleasePortOptions,
} from "./allocator_options.ts";
import { CensusView } from "./census_view.ts";
import { NoFreePortError, PortOwnerNotFoundError } from "./errors.ts";
import { DEFAULT_LOCK_TIMEOUT_MS, withFileLock } from "./file_lock.ts";
import { userLeaseDir } from "./lease_dir.ts";
import { type KeptHandles, serveInTurn } from "./lock_turn.ts";
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
import { assertPortRange, DEFAULT_PORT_RANGE, isValidPort } from "./range.ts";
import {
  type Lease,
  readRegistry,
  type RegistryData,
  type RegistryPaths,
  registryPaths,
  type RegistryRead,
  type RegistrySync,
} from "./registry.ts";
import {
  type CommitResult,
  commitTransaction,
  isExpired,
  publicLease,
  type TransactionContext,
  type TransactionState,
} from "./transaction.ts";

function defaultWarning(message: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`courier: warning: ${message}\n`));
  } catch {
    // no stderr
  }
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
  /** What this allocator's registry transactions work with. */
  readonly #transaction: TransactionContext;

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
    this.#transaction = {
      registry: this.paths.registry,
      queue: this.#queue,
      now: this.#now,
      read: () => this.#read(),
    };
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

  /** {@link #submit}'s work: the request, served in its turn ({@link serveInTurn}). */
  async #serve(op: AllocateOp | ReleaseOp): Promise<Answer> {
    await this.#ensureDirs();
    const requester = await this.#selfIdentity();
    const request: QueuedRequest = {
      id: newRequestId(Date.now()),
      requester,
      netns: currentNetns(),
      op,
    };
    return await serveInTurn(request, {
      lock: this.paths.lock,
      queue: this.#queue,
      timeoutMs: this.#lockTimeout(),
      kept: () => this.#kept,
      commit: (own) => this.#commit(own),
      sync: (sync) => this.#sync(sync),
    });
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

  /** The registry transaction ({@link commitTransaction}; call under the lock). */
  #commit<T>(
    own: QueuedRequest | null,
    body?: (data: RegistryData, state: TransactionState) => T | Promise<T>,
  ): Promise<CommitResult<T>> {
    return commitTransaction(this.#transaction, own, body);
  }
}

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
