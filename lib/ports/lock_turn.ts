/**
 * Waiting for a turn at the registry lock: a request takes the lock at once
 * when it is free; otherwise it queues and sleeps until a holder lets go
 * (see `HolderWatch`), and is then either answered by the holder that
 * served it or tries the lock again.
 *
 * @module
 */
import {
  acquireLock,
  HOLDER_WATCH_BACKSTOP_MS,
  HolderWatch,
  lockTimeoutError,
} from "./file_lock.ts";
import type { Answer, QueuedRequest, RequestQueue } from "./queue.ts";
import type { RegistrySync } from "./registry.ts";
import type { CommitResult } from "./transaction.ts";

/** What a prepared `PortAllocator` keeps open between operations. */
export interface KeptHandles {
  /** The lock file, opened read-only: locked and unlocked, never closed in between. */
  file: Deno.FsFile;
  /** The watch on it (`null` where none can be had, or after a wait timed out). */
  watch: HolderWatch | null;
  /** Whether a call is using them. */
  busy: boolean;
}

/** What {@link serveInTurn} works with: the allocator's lock, queue and kept handles. */
export interface TurnOptions {
  /** The lock file (`ports.lock`). */
  lock: string;
  /** The requests waiting for whoever holds the lock. */
  queue: RequestQueue;
  /** How long to wait for the lock, in milliseconds. */
  timeoutMs: number;
  /** The handles the allocator keeps now (`null`: none, or closed meanwhile). */
  kept: () => KeptHandles | null;
  /** Serves `request` (and whatever else is queued) under the lock. */
  commit: (request: QueuedRequest) => Promise<CommitResult<unknown>>;
  /** Starts the fsync of a registry written, once the lock is let go. */
  sync: (sync: RegistrySync | null | undefined) => void;
}

/**
 * Serves `request` under the registry lock and returns its answer.
 * Uncontended, it takes the lock and serves the request at once (with
 * anything queued). Otherwise it queues the request and sleeps until a
 * holder lets go: the answer is then either left in the queue by a holder
 * that served it, or this call tries the lock again.
 *
 * @throws {PortRegistryLockTimeoutError} when no turn came within `timeoutMs`.
 */
export async function serveInTurn(
  request: QueuedRequest,
  options: TurnOptions,
): Promise<Answer> {
  const path = options.lock;
  const timeoutMs = options.timeoutMs;
  const deadline = performance.now() + timeoutMs;
  // A prepared allocator's handles serve one call at a time (a flock
  // belongs to the open file, so two calls sharing it would not exclude
  // each other); a concurrent call opens its own.
  const held = options.kept();
  const kept = held && !held.busy ? held : null;
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
        options.queue.post(request);
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
        const answer = options.queue.takeAnswer(request.id);
        if (answer) return answer;
      }
    }
    locked = true;
    // We hold the lock. Closing this write handle after letting go (or
    // dying) is what wakes the waiters that watch the lock file.
    beacon = Deno.openSync(path, { write: true });
    commit = await options.commit(request);
    const answer = commit.answers.get(request.id);
    if (!answer) throw new Error(`request ${request.id} was not served`);
    return answer;
  } finally {
    const keep = kept !== null && options.kept() === kept; // not closed meanwhile
    // Let go of the lock…
    if (!keep) file.close();
    else if (locked) file.unlockSync();
    beacon?.close(); // …then wake the waiters
    if (posted) options.queue.withdraw(request.id);
    // A wait that timed out still listens, and would keep the process alive: close it.
    if (watch && (!keep || !watch.idle)) {
      await watch.close();
      if (kept) kept.watch = null;
    }
    if (kept) kept.busy = false;
    options.sync(commit?.sync);
  }
}
