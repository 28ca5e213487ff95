import type { HomeLayout } from "../home/mod.ts";
import { flockHolder } from "../proc/lock_holders.ts";

/** The exclusive instance lock of a home, held by its daemon for its whole life. */
export interface InstanceLock {
  /** Releases the lock (closing the file). The lock file itself stays. */
  release(): void;
}

/**
 * Tries to take the home's instance lock (`run/courier.lock`) without
 * waiting. Returns `null` when another process holds it.
 *
 * The lock file is created once and never deleted: unlinking a locked file
 * would let the next process lock a fresh inode while the old holder still
 * runs, and both would think they were alone. The kernel releases the lock
 * when the holder exits for any reason, SIGKILL included.
 */
export async function tryAcquireInstanceLock(layout: HomeLayout): Promise<InstanceLock | null> {
  const file = await Deno.open(layout.lockFile, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  let locked = false;
  try {
    locked = await file.tryLock(true);
  } catch (error) {
    file.close();
    throw error;
  }
  if (!locked) {
    file.close();
    return null;
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      try {
        file.unlockSync();
      } finally {
        file.close();
      }
    },
  };
}

/**
 * Who holds the home's instance lock, read from the kernel's lock table
 * without touching the lock (so it never disturbs a daemon that is taking
 * it). `null`: nobody; `undefined`: this platform cannot tell.
 */
export async function instanceLockHolder(layout: HomeLayout): Promise<number | null | undefined> {
  return await flockHolder(layout.lockFile);
}
