import { CourierError } from "../errors/mod.ts";
import { readSmallTextSync } from "../fs/mod.ts";
import {
  parseProcStat,
  type ProcessIdentity,
  readProcessIdentity,
  sameProcess,
} from "../proc/mod.ts";

const isLinux = Deno.build.os === "linux";

/**
 * The error to give when `/proc` exists but may not be read: Deno 2.9 lets
 * only `--allow-all` read any `/proc` path, and without it no process can be
 * told apart from another. `null` when `/proc` is readable (or absent).
 */
export function procAccessError(): CourierError | null {
  if (!isLinux) return null;
  try {
    Deno.readTextFileSync("/proc/self/stat");
    return null;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) return null;
    return new CourierError(
      "port leases need to read /proc (process identities, socket tables), " +
        "which Deno only allows with --allow-all: run with -A",
      { cause: error },
    );
  }
}
let bootId: string | undefined | null = null;

function bootIdSync(): string | undefined {
  if (bootId === null) {
    try {
      bootId = Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
    } catch {
      bootId = undefined;
    }
  }
  return bootId;
}

/**
 * `readProcessIdentity` without leaving the thread, for Linux: it runs while
 * the registry lock is held, where each asynchronous read would cost a
 * thread hand-off per owner. Same result as `readProcessIdentity`.
 */
function readIdentitySync(pid: number): ProcessIdentity | null {
  let text: string;
  try {
    text = readSmallTextSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  const stat = parseProcStat(text);
  if (!stat || stat.state === "Z" || stat.state === "X") return null;
  return { pid, startTime: stat.startTicks, bootId: bootIdSync() };
}

/** Liveness of lease owners, each PID read once per registry operation. */
export class OwnerCheck {
  readonly #identities = new Map<number, ProcessIdentity | null>();

  /** Reads the current identity of every PID among `recorded` (nulls are skipped). */
  async load(recorded: Iterable<ProcessIdentity | null>): Promise<void> {
    const pids = new Set<number>();
    for (const identity of recorded) {
      if (identity && !this.#identities.has(identity.pid)) pids.add(identity.pid);
    }
    await this.#read([...pids]);
  }

  async #read(pids: number[]): Promise<void> {
    if (isLinux) {
      for (const pid of pids) this.#identities.set(pid, readIdentitySync(pid));
      return;
    }
    const found = await Promise.all(pids.map((pid) => readProcessIdentity(pid)));
    pids.forEach((pid, i) => this.#identities.set(pid, found[i]));
  }

  /** Whether `owner` is still that very process (call {@link OwnerCheck.load} first). */
  alive(owner: ProcessIdentity): boolean {
    const current = this.#identities.get(owner.pid);
    return current !== undefined && current !== null && sameProcess(owner, current);
  }
}
