import { runTool } from "./run_tool.ts";

/** Options of {@link findProcesses}. */
export interface FindProcessesOptions {
  /** Only processes of this user ID (default: the current user). */
  uid?: number;
}

function currentUid(): number | undefined {
  try {
    return Deno.uid() ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * PIDs of processes whose full command line matches `pattern` (an extended
 * regular expression, as `pgrep -f` takes), this process excluded.
 *
 * Uses `pgrep -f -u UID`; without `pgrep` it scans `/proc/<pid>/cmdline`, and
 * without `/proc` it asks `ps`. A command line is only a hint: callers must
 * confirm each candidate by something a look-alike cannot copy.
 */
export async function findProcesses(
  pattern: string,
  options: FindProcessesOptions = {},
): Promise<number[]> {
  const uid = options.uid ?? currentUid();
  const userArgs = uid === undefined ? [] : ["-u", String(uid)];
  const found = new Set<number>();
  const pgrep = await runTool("pgrep", [...userArgs, "-f", pattern]);
  if (pgrep && (pgrep.code === 0 || pgrep.code === 1)) {
    for (const line of pgrep.stdout.split("\n")) if (line.trim()) found.add(Number(line));
  } else {
    const regex = new RegExp(pattern);
    const fromProc = await scanProc(regex, uid);
    const rows = fromProc ?? await scanPs(regex, uid);
    rows.forEach((pid) => found.add(pid));
  }
  found.delete(Deno.pid);
  return [...found].filter((pid) => Number.isInteger(pid) && pid > 0).sort((a, b) => a - b);
}

async function scanProc(regex: RegExp, uid: number | undefined): Promise<number[] | null> {
  const pids: number[] = [];
  try {
    for await (const entry of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        if (uid !== undefined) {
          const info = await Deno.stat(`/proc/${entry.name}`);
          if (info.uid !== uid) continue;
        }
        const cmdline = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`))
          .split("\0").filter(Boolean).join(" ");
        if (regex.test(cmdline)) pids.push(Number(entry.name));
      } catch {
        continue; // exited meanwhile, or not ours to read
      }
    }
  } catch {
    return null;
  }
  return pids;
}

async function scanPs(regex: RegExp, uid: number | undefined): Promise<number[]> {
  const args = uid === undefined ? ["-A", "-o", "pid=,args="] : [
    "-U",
    String(uid),
    "-o",
    "pid=,args=",
  ];
  const out = await runTool("ps", args);
  if (!out) return [];
  const pids: number[] = [];
  for (const line of out.stdout.split("\n")) {
    const match = line.trim().match(/^(\d+)\s+(.*)$/);
    if (match && regex.test(match[2])) pids.push(Number(match[1]));
  }
  return pids;
}
