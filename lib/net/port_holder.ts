import { readCommandLine } from "../proc/identity.ts";
import { runTool } from "../proc/run_tool.ts";
import { readSocketTable, type SocketEntry } from "./socket_table.ts";

/** Who holds a port. */
export interface PortHolder {
  /** The holder's PID. */
  pid: number;
  /** Its command line, when it can be read. */
  commandLine: string | null;
  /** How it was found: `proc`, `lsof` or `ss`. */
  source: "proc" | "lsof" | "ss";
}

/**
 * Finds the process listening on a TCP port: first from the kernel's socket
 * tables (`/proc/net/tcp*`) matched against `/proc/<pid>/fd`, then with
 * `lsof`, then with `ss`. Returns `null` when none of them can tell (another
 * user's process, or no tool available): callers then say nothing more.
 *
 * @example
 * ```ts
 * const holder = await findPortHolder(8644);
 * if (holder) console.log(`held by PID ${holder.pid} (${holder.commandLine})`);
 * ```
 */
export async function findPortHolder(port: number): Promise<PortHolder | null> {
  return await fromProc(port) ?? await fromLsof(port) ?? await fromSs(port);
}

async function withCommandLine(pid: number, source: PortHolder["source"]): Promise<PortHolder> {
  return { pid, commandLine: await readCommandLine(pid), source };
}

async function fromProc(port: number): Promise<PortHolder | null> {
  const table = await readSocketTable();
  if (!table) return null;
  const inodes = new Set(
    table.filter((e) => e.localPort === port && e.state === "LISTEN" && e.inode > 0)
      .map((e) => `socket:[${e.inode}]`),
  );
  if (inodes.size === 0) return null;
  try {
    for await (const proc of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(proc.name)) continue;
      try {
        for await (const fd of Deno.readDir(`/proc/${proc.name}/fd`)) {
          const link = await Deno.readLink(`/proc/${proc.name}/fd/${fd.name}`).catch(() => "");
          if (inodes.has(link)) return await withCommandLine(Number(proc.name), "proc");
        }
      } catch {
        continue; // not ours to read, or gone
      }
    }
  } catch {
    return null;
  }
  return null;
}

async function fromLsof(port: number): Promise<PortHolder | null> {
  const out = await runTool("lsof", ["-nP", `-iTCP:${port}`, "-sTCP:LISTEN", "-t"]);
  const pid = Number(out?.stdout.split("\n")[0]?.trim());
  return Number.isInteger(pid) && pid > 0 ? await withCommandLine(pid, "lsof") : null;
}

async function fromSs(port: number): Promise<PortHolder | null> {
  const out = await runTool("ss", ["-ltnpH", `sport = :${port}`]);
  const match = out?.stdout.match(/pid=(\d+)/);
  return match ? await withCommandLine(Number(match[1]), "ss") : null;
}

/**
 * The TCP sockets process `pid` listens on, from its `/proc/<pid>/fd` and
 * the kernel's socket tables; `null` where that cannot be read (not Linux,
 * or another user's process).
 */
export async function listeningSockets(pid: number): Promise<SocketEntry[] | null> {
  const inodes = new Set<number>();
  try {
    for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
      const link = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
      const inode = link.match(/^socket:\[(\d+)\]$/)?.[1];
      if (inode) inodes.add(Number(inode));
    }
  } catch {
    return null;
  }
  const table = await readSocketTable();
  if (!table) return null;
  return table.filter((e) => e.state === "LISTEN" && inodes.has(e.inode));
}
