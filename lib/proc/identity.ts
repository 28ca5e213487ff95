import { importLazily } from "../lazy/mod.ts";

/**
 * What identifies one process over its whole life: its PID alone does not
 * (PIDs are reused), but PID + start time + boot does.
 */
export interface ProcessIdentity {
  /** The process ID. */
  pid: number;
  /**
   * When the process started: on Linux the `starttime` field of
   * `/proc/<pid>/stat` (clock ticks since boot), elsewhere the `lstart` that
   * `ps` prints.
   */
  startTime: string;
  /** `/proc/sys/kernel/random/boot_id` on Linux, so a reboot never matches. */
  bootId?: string;
}

const isLinux = Deno.build.os === "linux";
let cachedBootId: string | undefined | null = null;

async function bootId(): Promise<string | undefined> {
  if (cachedBootId !== null) return cachedBootId;
  try {
    cachedBootId = (await Deno.readTextFile("/proc/sys/kernel/random/boot_id")).trim();
  } catch {
    cachedBootId = undefined;
  }
  return cachedBootId;
}

/** Parsed `/proc/<pid>/stat`: the fields courier needs. */
export interface ProcStat {
  /** One-letter state (R, S, D, Z, T…). */
  state: string;
  /** Parent PID. */
  ppid: number;
  /** Process group ID. */
  pgrp: number;
  /** The foreground process group of its controlling terminal, -1 without one. */
  tpgid: number;
  /** Start time in clock ticks since boot. */
  startTicks: string;
}

/** Parses the text of `/proc/<pid>/stat` (the command name may hold spaces and parentheses). */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  // Fields after the command name start at field 3 (state).
  const rest = text.slice(close + 2).trim().split(/\s+/);
  if (rest.length < 20) return null;
  return {
    state: rest[0],
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    tpgid: Number(rest[5]),
    startTicks: rest[19],
  };
}

/**
 * Reads the identity of a live process, or `null` when there is no such
 * process (or it is a zombie, already dead but not yet reaped).
 */
export async function readProcessIdentity(pid: number): Promise<ProcessIdentity | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (isLinux) {
    let text: string;
    try {
      text = await Deno.readTextFile(`/proc/${pid}/stat`);
    } catch {
      return null;
    }
    const stat = parseProcStat(text);
    if (!stat || stat.state === "Z" || stat.state === "X") return null;
    return { pid, startTime: stat.startTicks, bootId: await bootId() };
  }
  const out = await runTool("ps", ["-o", "stat=,lstart=", "-p", String(pid)]);
  if (!out || out.code !== 0) return null;
  const line = out.stdout.trim();
  if (!line || line.startsWith("Z")) return null;
  return { pid, startTime: line.replace(/^\S+\s+/, "").trim() };
}

/** A process's place in job control: see {@link readProcessGroup}. */
export interface ProcessGroup {
  /** Its process group ID. */
  pgrp: number;
  /**
   * The foreground process group of its controlling terminal (the group a
   * Ctrl-C there is sent to), -1 when it has no controlling terminal.
   */
  tpgid: number;
}

/**
 * The process group of process `pid` and the foreground process group of its
 * terminal (`/proc/<pid>/stat`, or `ps` off Linux), or `null` when there is
 * no such process or it cannot be told.
 */
export async function readProcessGroup(pid: number): Promise<ProcessGroup | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (isLinux) {
    try {
      const stat = parseProcStat(await Deno.readTextFile(`/proc/${pid}/stat`));
      return stat ? { pgrp: stat.pgrp, tpgid: stat.tpgid } : null;
    } catch {
      return null;
    }
  }
  const out = await runTool("ps", ["-o", "pgid=,tpgid=", "-p", String(pid)]);
  const [pgrp, tpgid] = (out?.code === 0 ? out.stdout.trim() : "").split(/\s+/).map(Number);
  // ps prints 0 or -1 as the terminal's group for a process without one.
  return pgrp > 0 ? { pgrp, tpgid: tpgid > 0 ? tpgid : -1 } : null;
}

/** Whether two identities name the same process (same PID, start and boot). */
export function sameProcess(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.startTime === b.startTime &&
    (a.bootId === undefined || b.bootId === undefined || a.bootId === b.bootId);
}

/**
 * Whether the process recorded as `recorded` is still alive: same PID,
 * same start time. A reused PID does not count.
 */
export async function isProcessAlive(recorded: ProcessIdentity): Promise<boolean> {
  const current = await readProcessIdentity(recorded.pid);
  return current !== null && sameProcess(recorded, current);
}

/**
 * The one-letter state of a process (`R` running, `S` sleeping, `D` disk
 * wait, `T` stopped by a signal, `t` stopped by a tracer, `Z` zombie…),
 * from `/proc/<pid>/stat` or `ps -o stat=`; `null` when there is no such
 * process.
 */
export async function readProcessState(pid: number): Promise<string | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (isLinux) {
    try {
      return parseProcStat(await Deno.readTextFile(`/proc/${pid}/stat`))?.state ?? null;
    } catch {
      return null;
    }
  }
  const out = await runTool("ps", ["-o", "stat=", "-p", String(pid)]);
  return out?.code === 0 ? out.stdout.trim().slice(0, 1) || null : null;
}

/** The command line of a process (`argv` joined by spaces), or `null` if unknown. */
export async function readCommandLine(pid: number): Promise<string | null> {
  if (isLinux) {
    try {
      const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`);
      const args = raw.split("\0").filter((part) => part.length > 0);
      if (args.length > 0) return args.join(" ");
    } catch {
      // fall through to ps
    }
  }
  const out = await runTool("ps", ["-o", "args=", "-p", String(pid)]);
  const line = out?.code === 0 ? out.stdout.trim() : "";
  return line || null;
}

/**
 * How long a process has been running, in seconds, or `null` where it
 * cannot be told (not Linux, or no such process). Uses `/proc/uptime` and
 * the start time in `/proc/<pid>/stat`, which the kernel exports in
 * USER_HZ (100 per second).
 */
export async function processAgeSeconds(pid: number): Promise<number | null> {
  if (!isLinux) return null;
  try {
    const [stat, uptime] = await Promise.all([
      Deno.readTextFile(`/proc/${pid}/stat`),
      Deno.readTextFile("/proc/uptime"),
    ]);
    const parsed = parseProcStat(stat);
    if (!parsed) return null;
    return Number(uptime.split(" ")[0]) - Number(parsed.startTicks) / 100;
  } catch {
    return null;
  }
}

/** `ps` and friends, where /proc does not tell: loaded only then. */
async function runTool(
  ...args: Parameters<typeof import("./run_tool.ts").runTool>
): ReturnType<typeof import("./run_tool.ts").runTool> {
  const tools = await importLazily<typeof import("./run_tool.ts")>(
    "./run_tool.ts",
    import.meta.url,
  );
  return await tools.runTool(...args);
}
