import { dirname } from "../fs/mod.ts";
import {
  findProcesses,
  heldLockFiles,
  type ProcessIdentity,
  readCommandLine,
  readKernelLocks,
  readProcessIdentity,
} from "../proc/mod.ts";

/** A courier daemon found on this machine. */
export interface DaemonProcess {
  /** Its PID. */
  pid: number;
  /** Its identity (checked again before it is signalled). */
  identity: ProcessIdentity;
  /** The home whose instance lock it holds. */
  home: string;
  /** Whether that home's lock file has been deleted (an orphan whose home is gone). */
  homeDeleted: boolean;
  /** Its command line, for reports. */
  commandLine: string | null;
}

/** Command lines that may be courier daemons (a hint only; see {@link findDaemons}). */
export const DAEMON_PATTERN = "(courier|main\\.ts)( .*)? (daemon|start|restart)( |$)";

const LOCK_SUFFIX = "/run/courier.lock";

function currentUid(): number | null {
  try {
    return Deno.uid();
  } catch {
    return null;
  }
}

/** Options of {@link findDaemons}. */
export interface FindDaemonsOptions {
  /** Only daemons whose home lies within this directory. */
  within?: string;
}

/**
 * Finds every courier daemon of the current user, in any home, including
 * orphans that no PID file names.
 *
 * Candidates come from `pgrep` (or a `/proc` scan) on the command line and
 * from the kernel's lock table; each is then confirmed by what a look-alike
 * cannot copy: it must hold the exclusive lock on a `run/courier.lock` file.
 * An editor on `courier.ts`, a script named `courier-daemon` or a process
 * whose argv copies a daemon's holds no such lock and is never returned.
 */
export async function findDaemons(options: FindDaemonsOptions = {}): Promise<DaemonProcess[]> {
  const candidates = new Set(await findProcesses(DAEMON_PATTERN));
  const locks = await readKernelLocks();
  for (const lock of locks ?? []) {
    if (lock.kind === "FLOCK" && lock.mode === "WRITE" && lock.pid > 0) candidates.add(lock.pid);
  }
  candidates.delete(Deno.pid);
  const uid = currentUid();
  const found: DaemonProcess[] = [];
  await Promise.all([...candidates].map(async (pid) => {
    if (uid !== null && locks !== null) {
      const owner = await Deno.stat(`/proc/${pid}`).then((info) => info.uid, () => null);
      if (owner !== uid) return;
    }
    const held = await heldLockFiles(pid, LOCK_SUFFIX);
    if (!held || held.length === 0) return;
    const identity = await readProcessIdentity(pid);
    if (!identity) return;
    const deleted = held[0].endsWith(" (deleted)");
    const home = dirname(dirname(held[0].replace(/ \(deleted\)$/, "")));
    if (options.within) {
      const root = options.within.replace(/\/+$/, "");
      if (home !== root && !home.startsWith(root + "/")) return;
    }
    found.push({
      pid,
      identity,
      home,
      homeDeleted: deleted,
      commandLine: await readCommandLine(pid),
    });
  }));
  return found.sort((a, b) => a.pid - b.pid);
}
