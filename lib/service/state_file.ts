import { importLazily } from "../lazy/mod.ts";
import type { HomeLayout } from "../home/mod.ts";
import type { ProcessIdentity } from "../proc/mod.ts";
import type { Supervisor } from "../service_manager/mod.ts";

/** What a running daemon records in `run/courier.json`. */
export interface DaemonState {
  /** The daemon's PID. */
  pid: number;
  /** The host it listens on. */
  host: string;
  /** The port it listens on. */
  port: number;
  /** Where clients reach its API (`http://127.0.0.1:8644`). */
  api_url: string;
  /** ISO time it started. */
  started_at: string;
  /** courier version of the daemon. */
  version: string;
  /** The home it serves (absolute). */
  home: string;
  /** Who the daemon is: PID + start time + boot, checked before every signal. */
  identity: ProcessIdentity;
  /** The executable that runs it (`Deno.execPath()`). */
  exe: string;
  /** Whether the port was taken through a port lease (`--port auto`). */
  port_leased?: boolean;
  /** The service manager running it (`courier service install`); `stop` goes through it. */
  supervisor?: Supervisor;
  /**
   * The options it was started with, as `start` takes them (`port` may be
   * `auto`): `restart` starts the next daemon with them unless told otherwise.
   */
  start_options?: Record<string, string>;
}

/** The URL a client uses to reach a server bound to `host:port`. */
export function apiUrl(host: string, port: number): string {
  let connect = host;
  if (host === "0.0.0.0" || host === "") connect = "127.0.0.1";
  else if (host === "::") connect = "::1";
  if (connect.includes(":")) connect = `[${connect}]`;
  return `http://${connect}:${port}`;
}

function isState(value: unknown): value is DaemonState {
  const v = value as DaemonState;
  return typeof v === "object" && v !== null && Number.isInteger(v.pid) &&
    typeof v.port === "number" && typeof v.api_url === "string" &&
    typeof v.identity === "object" && v.identity !== null &&
    typeof v.identity.startTime === "string";
}

/**
 * Reads the daemon state of a home, or `null` when there is none or it is
 * not valid (a state file is written atomically, so an invalid one was not
 * written by courier and is treated as absent).
 */
export async function readDaemonState(layout: HomeLayout): Promise<DaemonState | null> {
  try {
    const value = JSON.parse(await Deno.readTextFile(layout.stateFile));
    return isState(value) ? value : null;
  } catch {
    return null;
  }
}

/** Writes the daemon state atomically (temp file, fsync, rename). */
export async function writeDaemonState(layout: HomeLayout, state: DaemonState): Promise<void> {
  // Only the daemon writes it: readers (`status`) do not load the writer.
  const { writeJsonAtomic } = await importLazily<typeof import("../fs/atomic_write.ts")>(
    "../fs/atomic_write.ts",
    import.meta.url,
  );
  await writeJsonAtomic(layout.stateFile, state, { mode: 0o600 });
}

/**
 * Reads the PID file: the PID, `null` when absent, or `0` when it exists but
 * is empty or unreadable (a daemon between create and write).
 */
export async function readPidFile(layout: HomeLayout): Promise<number | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(layout.pidFile);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    return 0;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

/**
 * Creates the PID file atomically with `createNew` (O_EXCL): it fails if the
 * file exists, so two writers can never both believe they own it. The PID
 * and a newline are written and fsynced before this returns; if that fails
 * (a full disk), the file is removed again.
 *
 * @throws {Deno.errors.AlreadyExists} when the file exists.
 */
export async function createPidFile(layout: HomeLayout, pid: number): Promise<void> {
  const file = await Deno.open(layout.pidFile, { write: true, createNew: true, mode: 0o644 });
  try {
    await file.write(new TextEncoder().encode(`${pid}\n`));
    await file.syncData();
  } catch (error) {
    // An empty PID file (a full disk) would look like a daemon that died: take it back.
    file.close();
    await Deno.remove(layout.pidFile).catch(() => {});
    throw error;
  }
  file.close();
}

/**
 * Removes the PID and state files if they still name `pid` (or name
 * nothing valid), so a newer daemon's files are never removed by mistake.
 * Returns the paths removed.
 */
export async function removeRunFiles(layout: HomeLayout, pid: number): Promise<string[]> {
  const removed: string[] = [];
  const filePid = await readPidFile(layout);
  if (filePid !== null && (filePid === pid || filePid === 0)) {
    await Deno.remove(layout.pidFile).then(() => removed.push(layout.pidFile), () => {});
  }
  const state = await readDaemonState(layout);
  const stateExists = await Deno.stat(layout.stateFile).then(() => true, () => false);
  if (stateExists && (state === null || state.pid === pid)) {
    await Deno.remove(layout.stateFile).then(() => removed.push(layout.stateFile), () => {});
  }
  return removed;
}
