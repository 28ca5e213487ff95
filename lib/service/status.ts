import { assertHomeUsable, type HomeLayout } from "../home/mod.ts";
import { importLazily } from "../lazy/mod.ts";
import { readTokenFile } from "../http/token.ts";
import { httpGet } from "../net/http_get.ts";
import {
  isProcessAlive,
  processAgeSeconds,
  readCommandLine,
  readProcessIdentity,
  readProcessState,
} from "../proc/identity.ts";
import type { Supervisor } from "../service_manager/mod.ts";
import { type DaemonState, readDaemonState, readPidFile } from "./state_file.ts";

/** The state names `courier status` reports. */
export type ServiceStateName = "running" | "starting" | "unhealthy" | "stale" | "stopped";

/** What `courier status` knows about a home's daemon. */
export interface ServiceStatus {
  /** `running` (healthy), `starting`, `unhealthy`, `stale` (files name a dead process) or `stopped`. */
  state: ServiceStateName;
  /** The daemon's PID (for `stale`: the dead PID the files name). */
  pid: number | null;
  /** Host it listens on. */
  host: string | null;
  /** Port it listens on. */
  port: number | null;
  /** Its API URL. */
  api_url: string | null;
  /** Seconds since it started. */
  uptime_s: number | null;
  /** Its version (from `/health` when healthy, else from the state file). */
  version: string | null;
  /** The home. */
  home: string;
  /** The recorded state, when there is one and it names a live daemon. */
  daemon: DaemonState | null;
  /** The service manager running the daemon, when one does. */
  supervisor: Supervisor | null;
  /** Why it is unhealthy or stale, in words. */
  reason?: string;
  /** What to do about it, when it is unhealthy or stale. */
  hint?: string;
  /** The process's state when it is stopped: `T` (by a signal) or `t` (by a debugger). */
  process_state?: string;
  /**
   * The chat providers' long connections (`config.json` `providers` in
   * `socket`, `stream` or `polling` mode), by name, as `/health` reports
   * them: up or not, and the last error.
   */
  connections?: Record<string, ConnectionStatus>;
}

/** A chat provider's long connection as `courier status` shows it. */
export interface ConnectionStatus {
  /** The platform (`slack`). */
  type: string;
  /** The long connection (`socket`, `stream`, `polling`). */
  mode: string;
  /** Whether it is up. */
  connected: boolean;
  /** The last error, if any (never a secret). */
  last_error?: string;
  /** When it happened. */
  last_error_at?: string;
}

/** The long connections in a `/health` answer's `providers` (webhook ones have `connected: null`). */
function connectionsOf(health: Record<string, unknown>): Record<string, ConnectionStatus> | null {
  const providers = health.providers;
  if (typeof providers !== "object" || providers === null) return null;
  const connections: Record<string, ConnectionStatus> = {};
  for (const [name, value] of Object.entries(providers as Record<string, ConnectionStatus>)) {
    if (typeof value?.connected !== "boolean") continue;
    const { type, mode, connected, last_error, last_error_at } = value;
    connections[name] = { type, mode, connected, last_error, last_error_at };
  }
  return Object.keys(connections).length > 0 ? connections : null;
}

/** Seconds after which a lock holder without a state file is no longer "starting". */
export const STARTING_LIMIT_S = 60;

/** Options of {@link getStatus}. */
export interface StatusOptions {
  /** Ask `/health` (default true); without it a live daemon counts as `running`. */
  health?: boolean;
  /** Time allowed for `/health` (default 2000 ms). */
  healthTimeoutMs?: number;
  /** Seconds a lock holder may go without a state file and still be `starting` (default 60). */
  startingLimitS?: number;
}

/**
 * Asks a daemon's `/health`, with the API token when given (then the answer
 * has every field, and a wrong token is an error); returns its JSON on a 200
 * answer, else an error text.
 */
export async function fetchHealth(
  url: string,
  options: { timeoutMs?: number; token?: string } = {},
): Promise<{ ok: true; body: Record<string, unknown> } | { ok: false; reason: string }> {
  try {
    // Not fetch: its first use costs a short-lived CLI process 10-20 ms.
    const response = await httpGet(`${url}/health`, {
      headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      timeoutMs: options.timeoutMs ?? 2000,
    });
    const text = response.body;
    if (response.status === 401) {
      return { ok: false, reason: "/health refused the API token (was the token file replaced?)" };
    }
    if (response.status !== 200) {
      return { ok: false, reason: `/health answered ${response.status}` };
    }
    return { ok: true, body: JSON.parse(text) };
  } catch (error) {
    return { ok: false, reason: `/health did not answer: ${(error as Error).message}` };
  }
}

/** Why a recorded daemon is gone: no process with its PID, or the PID is another program's. */
async function goneReason(pid: number, file: string): Promise<string> {
  const died = `the daemon that wrote ${file} died without cleaning up ` +
    `(killed, or crashed: see 'courier logs')`;
  if (!(await readProcessIdentity(pid))) return `no process has PID ${pid} any more: ${died}`;
  const command = await readCommandLine(pid);
  return `PID ${pid} now belongs to another program (${
    command ?? "command line unknown"
  }): ${died}`;
}

const STALE_HINT = "Run 'courier start' to replace it, or 'courier stop' to clean up.";

/** How long `status` waits for a listening daemon's state file before calling it gone. */
const STATE_FILE_GRACE_MS = 500;

/**
 * Finds out the state of a home's daemon without disturbing it: it reads
 * the PID and state files, checks the recorded process identity (a reused
 * PID is not our daemon) and whether the process is stopped by a signal,
 * reads who holds the instance lock from the kernel's lock table (never by
 * trying to take it), and asks `/health` with the home's API token.
 *
 * @throws {TokenFileError} when a daemon runs but the API token cannot be read.
 * @throws {FileSystemError} when the home is a file, or lies below one.
 */
export async function getStatus(
  layout: HomeLayout,
  options: StatusOptions = {},
): Promise<ServiceStatus> {
  // The reads and the home check at once (a `status` in every shell's prompt counts each ms);
  // a home that is no directory is said first.
  const reads = Promise.all([readDaemonState(layout), readPidFile(layout)]);
  reads.catch(() => {});
  await assertHomeUsable(layout);
  const [state, pidFromFile] = await reads;
  // Read meanwhile; needed (and any error of it thrown) only when /health is asked.
  const token = state && options.health !== false ? readTokenFile(layout.tokenFile) : null;
  token?.catch(() => {});
  // The kernel's lock table (slow to read on a busy machine) only when no live daemon is named.
  // Loaded only then: `status` of a running daemon never needs them.
  const holder = async () => {
    const { instanceLockHolder } = await importLazily<typeof import("./instance_lock.ts")>(
      "./instance_lock.ts",
      import.meta.url,
    );
    return await instanceLockHolder(layout);
  };
  const status: ServiceStatus = {
    state: "stopped",
    pid: null,
    host: null,
    port: null,
    api_url: null,
    uptime_s: null,
    version: null,
    home: layout.root,
    daemon: null,
    supervisor: null,
  };
  const starting = async (pid: number): Promise<ServiceStatus> => {
    // The lock is held but the state file is not (yet) there: a daemon is starting,
    // unless it already serves (its state file was removed) or has held the lock for
    // longer than any start may take.
    const alive = await readProcessIdentity(pid);
    if (!alive) return status;
    const { listeningSockets } = await importLazily<typeof import("../net/port_holder.ts")>(
      "../net/port_holder.ts",
      import.meta.url,
    );
    const listening = await listeningSockets(pid);
    const socket = listening?.find((s) => s.family === 4) ?? listening?.[0];
    if (socket) {
      // A daemon writes its state right after it listens: give it that moment.
      const deadline = performance.now() + STATE_FILE_GRACE_MS;
      while (performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        if (await readDaemonState(layout)) return await getStatus(layout, options);
      }
      return {
        ...status,
        state: "unhealthy",
        pid,
        port: socket.localPort,
        reason: `PID ${pid} holds ${layout.lockFile} and listens on port ${socket.localPort}, ` +
          `but its state file ${layout.stateFile} is gone (removed while it ran?)`,
        hint: "Run 'courier restart' to replace it, or 'courier stop' to stop it.",
      };
    }
    const age = await processAgeSeconds(pid);
    if (age !== null && age > (options.startingLimitS ?? STARTING_LIMIT_S)) {
      return {
        ...status,
        state: "unhealthy",
        pid,
        reason: `PID ${pid} holds ${layout.lockFile} but has written no state in ${
          Math.round(age)
        } s (were its files removed?)`,
        hint: "Run 'courier restart' to replace it, or 'courier stop' to stop it.",
      };
    }
    return { ...status, state: "starting", pid };
  };
  if (state) {
    const [alive, processState] = await Promise.all([
      isProcessAlive(state.identity),
      readProcessState(state.pid),
    ]);
    if (!alive) {
      const pid = await holder();
      if (pid) return await starting(pid);
      return {
        ...status,
        state: "stale",
        pid: state.pid,
        reason: await goneReason(state.pid, layout.stateFile),
        hint: STALE_HINT,
      };
    }
    const live: ServiceStatus = {
      ...status,
      state: "running",
      pid: state.pid,
      host: state.host,
      port: state.port,
      api_url: state.api_url,
      uptime_s: Math.round((Date.now() - Date.parse(state.started_at)) / 1000),
      version: state.version,
      daemon: state,
      supervisor: state.supervisor ?? null,
    };
    if (processState === "T" || processState === "t") {
      const by = processState === "t" ? "a debugger holds it" : "it was sent SIGSTOP (or Ctrl-Z)";
      return {
        ...live,
        state: "unhealthy",
        process_state: processState,
        reason: `PID ${state.pid} is stopped (state ${processState}): ${by} and answers nothing`,
        hint: `Resume it with 'kill -CONT ${state.pid}', or replace it with 'courier restart'.`,
      };
    }
    if (options.health === false) return live;
    const health = await fetchHealth(state.api_url, {
      timeoutMs: options.healthTimeoutMs,
      token: await token!,
    });
    if (!health.ok) {
      return {
        ...live,
        state: "unhealthy",
        reason: health.reason,
        hint: "See 'courier logs', or replace it with 'courier restart'.",
      };
    }
    const uptime = Number(health.body.uptime_s);
    const connections = connectionsOf(health.body);
    return {
      ...live,
      version: String(health.body.version ?? state.version),
      uptime_s: Number.isFinite(uptime) ? Math.round(uptime) : live.uptime_s,
      ...(connections ? { connections } : {}),
    };
  }
  const pid = await holder();
  if (pid) return await starting(pid);
  if (pidFromFile !== null) {
    return {
      ...status,
      state: "stale",
      pid: pidFromFile || null,
      reason: pidFromFile
        ? `${layout.pidFile} names PID ${pidFromFile} but no daemon holds ${layout.lockFile}; ` +
          (await goneReason(pidFromFile, layout.pidFile)).replace(/^[^:]*: /, "")
        : `${layout.pidFile} exists but no daemon holds ${layout.lockFile}`,
      hint: STALE_HINT,
    };
  }
  return status;
}
