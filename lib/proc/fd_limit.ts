import { runTool } from "./run_tool.ts";

/** A process's limit on open file descriptors (`RLIMIT_NOFILE`); `Infinity` for unlimited. */
export interface OpenFileLimit {
  /** The limit in force (the soft limit). */
  soft: number;
  /** The ceiling the soft limit may be raised to without privileges (the hard limit). */
  hard: number;
}

function limitValue(text: string): number {
  if (text === "unlimited" || text === "infinity") return Infinity;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= 0 ? n : NaN;
}

/**
 * Parses the `Max open files` line of `/proc/<pid>/limits`, or `null` when
 * there is none.
 */
export function parseOpenFileLimit(limits: string): OpenFileLimit | null {
  const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
  const [soft, hard] = (line?.slice("Max open files".length).trim().split(/\s+/) ?? [])
    .map(limitValue);
  return Number.isNaN(soft ?? NaN) || Number.isNaN(hard ?? NaN) ? null : { soft, hard };
}

/**
 * This process's limit on open files: from `/proc/self/limits` on Linux,
 * else from `ulimit -Sn` and `ulimit -Hn` of a shell it starts (a child
 * inherits the limits). `null` when it cannot be told.
 */
export async function readOpenFileLimit(): Promise<OpenFileLimit | null> {
  try {
    return parseOpenFileLimit(await Deno.readTextFile("/proc/self/limits"));
  } catch {
    // no /proc: ask a shell
  }
  const out = await runTool("sh", ["-c", "ulimit -Sn; ulimit -Hn"]);
  const [soft, hard] = (out?.code === 0 ? out.stdout.trim().split(/\s+/) : []).map(limitValue);
  return soft === undefined || hard === undefined || Number.isNaN(soft) || Number.isNaN(hard)
    ? null
    : { soft, hard };
}

/**
 * Raises this process's soft limit on open files to its hard limit, as
 * programs that do not use `select()` should (the Deno runtime does so
 * itself at start-up; this covers runtimes that do not). Deno has no
 * `setrlimit`, so it asks `prlimit --pid` (util-linux) where that exists;
 * elsewhere, or when it fails, the limit stays as it was.
 *
 * @returns The limit now in force, `null` when it cannot be read.
 */
export async function raiseOpenFileLimit(): Promise<OpenFileLimit | null> {
  const limit = await readOpenFileLimit();
  if (!limit || limit.soft >= limit.hard || !Number.isFinite(limit.hard)) return limit;
  const out = await runTool("prlimit", [`--pid=${Deno.pid}`, `--nofile=${limit.hard}`]);
  if (!out || out.code !== 0) return limit;
  return await readOpenFileLimit() ?? limit;
}
