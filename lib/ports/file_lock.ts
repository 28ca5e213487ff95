import { flockHolder } from "../proc/lock_holders.ts";
import { PortRegistryLockTimeoutError } from "./errors.ts";

/** How long a registry operation waits for the lock by default: 30 s. */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/** Options of {@link withFileLock}. */
export interface FileLockOptions {
  /** Give up after this many milliseconds (default {@link DEFAULT_LOCK_TIMEOUT_MS}). */
  timeoutMs?: number;
}

/** Opens (creating if needed) a lock file. It is never deleted: that would let two holders in. */
export function openLockFile(path: string): Deno.FsFile {
  return Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
}

/**
 * Takes a `flock` on an open lock file, exclusive or shared, waiting at
 * most until `deadline` (a `performance.now()` time).
 *
 * An uncontended lock is taken with one non-blocking call. Otherwise the
 * wait is the kernel's: `FsFile.lock` blocks in a worker thread and is
 * granted the moment the holder lets go, with no polling interval. The wait
 * is raced against the deadline; on timeout the pending request is
 * abandoned with the handle, which the caller must close (if the kernel
 * grants the request later, closing the handle drops it at once).
 *
 * @throws {PortRegistryLockTimeoutError} when the deadline passes first.
 */
export async function acquireLock(
  file: Deno.FsFile,
  options: { path: string; exclusive: boolean; deadline: number; timeoutMs: number },
): Promise<void> {
  if (file.tryLockSync(options.exclusive)) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const granted = file.lock(options.exclusive).then(() => true);
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, options.deadline - performance.now()));
  });
  let locked: boolean;
  try {
    locked = await Promise.race([granted, timedOut]);
  } finally {
    clearTimeout(timer);
  }
  if (!locked) {
    granted.catch(() => {}); // settles once the kernel grants it, after the handle is closed
    throw await lockTimeoutError(options.path, options.timeoutMs);
  }
}

/** A {@link PortRegistryLockTimeoutError} naming the lock's holder when it can be told. */
export async function lockTimeoutError(
  path: string,
  timeoutMs: number,
): Promise<PortRegistryLockTimeoutError> {
  return new PortRegistryLockTimeoutError(path, timeoutMs, {
    holder: await flockHolder(path).catch(() => null),
  });
}

/**
 * How long a {@link HolderWatch} waits at most before looking again without
 * an event: only matters if a holder was killed in the instant between
 * taking the lock and opening its write handle, or events were lost.
 */
export const HOLDER_WATCH_BACKSTOP_MS = 500;

/**
 * Wakes when a holder of the registry lock lets go, without waiting on the
 * lock itself.
 *
 * Every holder keeps a write handle on the lock file open while it holds
 * the lock and closes it right after letting go; the kernel reports that
 * close (inotify `IN_CLOSE_WRITE`, which Deno calls an `access` event), and
 * reports it too when the holder dies. Waiters that sleep on this event
 * instead of on a blocked `flock` never hold a lock they are not awake to
 * use: on a busy machine, a lock granted to a sleeping process stays taken
 * until that process is scheduled, and every other process waits with it.
 * Linux only; {@link HolderWatch.open} returns `null` elsewhere.
 */
export class HolderWatch {
  readonly #watcher: Deno.FsWatcher;
  readonly #events: AsyncIterator<Deno.FsEvent>;
  #pending: Promise<unknown> | null = null;

  private constructor(watcher: Deno.FsWatcher) {
    this.#watcher = watcher;
    this.#events = watcher[Symbol.asyncIterator]();
  }

  /** Starts watching the lock file at `path`, or returns `null` where that is not possible. */
  static open(path: string): HolderWatch | null {
    if (Deno.build.os !== "linux") return null;
    try {
      return new HolderWatch(Deno.watchFs(path, { recursive: false }));
    } catch {
      return null;
    }
  }

  /**
   * Whether no wait is left pending (one that timed out still listens for
   * the next event, and keeps the process alive until it comes or the
   * watch is closed).
   */
  get idle(): boolean {
    return this.#pending === null;
  }

  /**
   * Resolves at the next event since the watch began (events that came
   * before this call count, so none is missed), or after `ms`.
   */
  async wait(ms: number): Promise<void> {
    this.#pending ??= this.#events.next().catch(() => undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const woke = await Promise.race([
      this.#pending.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
    clearTimeout(timer);
    if (woke) this.#pending = null;
  }

  /** Stops watching (and waits for a pending wait on the watcher to wind down). */
  async close(): Promise<void> {
    try {
      this.#watcher.close();
    } catch {
      // already closed
    }
    await this.#pending;
  }
}

/**
 * Runs `fn` while holding an exclusive `flock` on `path` (see
 * {@link acquireLock}; the file is created if missing and never deleted),
 * waiting at most `timeoutMs` for it.
 *
 * @throws {PortRegistryLockTimeoutError} when the lock is not granted in time.
 *
 * @example
 * ```ts
 * await withFileLock("/tmp/demo.lock", async () => {
 *   // read-modify-write here
 * });
 * ```
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const file = openLockFile(path);
  try {
    await acquireLock(file, {
      path,
      exclusive: true,
      deadline: performance.now() + timeoutMs,
      timeoutMs,
    });
    return await fn();
  } finally {
    // Closing the last handle releases the lock; no separate unlock round trip.
    file.close();
  }
}
