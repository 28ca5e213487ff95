import { runTool } from "./run_tool.ts";

/** One line of `/proc/locks`. */
export interface KernelLock {
  /** `FLOCK`, `POSIX`, `OFDLCK`… */
  kind: string;
  /** `READ` or `WRITE`. */
  mode: string;
  /** The PID that took the lock (-1 for OFD locks). */
  pid: number;
  /** The locked file's inode number. */
  inode: number;
}

/** Parses the text of `/proc/locks`; lines it does not understand are skipped. */
export function parseProcLocks(text: string): KernelLock[] {
  const locks: KernelLock[] = [];
  for (const line of text.split("\n")) {
    // "1: FLOCK  ADVISORY  WRITE 1735 fe:00:2146368 0 EOF"; blocked waiters have "->".
    const match = line.match(/^\d+:\s+(\S+)\s+\S+\s+(\S+)\s+(-?\d+)\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s/);
    if (!match) continue;
    locks.push({ kind: match[1], mode: match[2], pid: Number(match[3]), inode: Number(match[4]) });
  }
  return locks;
}

/**
 * How many times at most {@link readKernelLocks} reads `/proc/locks` while
 * the readings keep differing.
 */
const MAX_LOCK_READINGS = 4;

/**
 * Reads `/proc/locks`, or returns `null` where the kernel does not offer it.
 *
 * The kernel hands the table out a page (about 60 locks) per `read`, and
 * resumes the next page by position: when a lock listed earlier goes away
 * between two reads, the first lock of the next page is skipped. On a busy
 * machine (every Deno process holds a few SQLite locks) a lock held all
 * along was missing from 2% of readings. So the table is read until two
 * readings in a row agree (at most {@link MAX_LOCK_READINGS} times), and the
 * union of all the readings is returned: a lock in it may have been let go
 * meanwhile (callers check the holder anyway), a lock held all along is
 * missing only if every reading skipped it.
 */
export async function readKernelLocks(): Promise<KernelLock[] | null> {
  const readings: string[] = [];
  try {
    while (readings.length < MAX_LOCK_READINGS) {
      readings.push(await Deno.readTextFile("/proc/locks"));
      const n = readings.length;
      if (n >= 2 && readings[n - 1] === readings[n - 2]) break;
    }
  } catch {
    if (readings.length === 0) return null;
  }
  const seen = new Set<string>();
  const locks: KernelLock[] = [];
  for (const lock of [...new Set(readings)].flatMap(parseProcLocks)) { // agreeing readings once
    const key = `${lock.kind} ${lock.mode} ${lock.pid} ${lock.inode}`;
    if (seen.has(key)) continue;
    seen.add(key);
    locks.push(lock);
  }
  return locks;
}

/** The file a process has open, as the kernel names it. */
export interface OpenFile {
  /** The path (may end in ` (deleted)`). */
  path: string;
  /** Inode of the open file. */
  inode: number;
  /** Device of the open file. */
  dev: number;
}

/**
 * The files a process has open whose path ends with `suffix` (Linux:
 * `/proc/<pid>/fd`). Returns `null` when the table cannot be read.
 */
export async function openFilesMatching(pid: number, suffix: string): Promise<OpenFile[] | null> {
  const found: OpenFile[] = [];
  try {
    for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
      const fdPath = `/proc/${pid}/fd/${entry.name}`;
      let target: string;
      try {
        target = await Deno.readLink(fdPath);
      } catch {
        continue;
      }
      const clean = target.replace(/ \(deleted\)$/, "");
      if (!clean.endsWith(suffix)) continue;
      try {
        const info = await Deno.stat(fdPath);
        found.push({ path: target, inode: info.ino ?? -1, dev: info.dev });
      } catch {
        continue;
      }
    }
  } catch {
    return null;
  }
  return found;
}

/**
 * The PID holding an exclusive `flock` on `path`, read from `/proc/locks`
 * without touching the lock (so it never disturbs the holder or a process
 * about to take it). Returns `null` when nobody holds it, and `undefined`
 * when this platform cannot tell.
 */
export async function flockHolder(path: string): Promise<number | null | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    return null; // no file, no lock: no need to read the kernel's table (slow when busy)
  }
  const locks = await readKernelLocks();
  if (locks === null) return undefined;
  for (const lock of locks) {
    if (lock.kind !== "FLOCK" || lock.mode !== "WRITE" || lock.inode !== info.ino) continue;
    // Inode numbers repeat across file systems: confirm the holder has this very file open.
    const open = await openFilesMatching(lock.pid, path.split("/").pop() ?? path);
    if (open === null || open.some((file) => file.inode === info.ino && file.dev === info.dev)) {
      return lock.pid;
    }
  }
  return null;
}

/**
 * The courier lock files (paths ending in `suffix`) that process `pid` holds
 * an exclusive lock on. On Linux this reads `/proc/locks` and
 * `/proc/<pid>/fd`; elsewhere it asks `lsof`. Returns `null` when it cannot
 * be told (then the caller must not assume either way).
 */
export async function heldLockFiles(pid: number, suffix: string): Promise<string[] | null> {
  const locks = await readKernelLocks();
  if (locks !== null) {
    const open = await openFilesMatching(pid, suffix);
    if (open === null) return null;
    const held = new Set(
      locks.filter((l) => l.kind === "FLOCK" && l.mode === "WRITE" && l.pid === pid)
        .map((l) => l.inode),
    );
    return open.filter((file) => held.has(file.inode)).map((file) => file.path);
  }
  // lsof -F: 'f' fd, 'l' lock status (W = write lock on the whole file), 'n' name.
  const out = await runTool("lsof", ["-a", "-p", String(pid), "-F", "fln"]);
  if (!out) return null;
  const paths: string[] = [];
  let lock = "";
  for (const line of out.stdout.split("\n")) {
    if (line.startsWith("f")) lock = "";
    else if (line.startsWith("l")) lock = line.slice(1);
    else if (line.startsWith("n") && line.endsWith(suffix) && lock === "W") {
      paths.push(line.slice(1));
    }
  }
  return paths;
}
