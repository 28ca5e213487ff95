import { readProcessIdentity } from "../proc/mod.ts";
import { type AllocatePortOptions, PortAllocator } from "./allocator.ts";
import { PortExecSpawnError } from "./errors.ts";

/** Signals `port exec` passes on to its child. */
export const FORWARDED_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/** Options of {@link execWithPort}. */
export interface ExecWithPortOptions extends AllocatePortOptions {
  /** The environment variable that carries the port (default `PORT`). */
  env?: string;
  /** Called once the lease is taken and the child started (tests, progress output). */
  onStart?: (info: { port: number; pid: number }) => void;
}

/** How the child of {@link execWithPort} ended. */
export interface ExecResult {
  /** The port it was given. */
  port: number;
  /** Its exit code; 128 + the signal number when a signal ended it (as shells report). */
  code: number;
  /** The signal that ended it, if any. */
  signal: Deno.Signal | null;
}

/** Whether `name` can be an environment variable name (`PORT`, `HTTP_PORT`…). */
export function isEnvName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}

/**
 * Runs `command` with a leased port in its environment and releases the
 * lease when it exits.
 *
 * The lease is taken first, owned by this process, so it holds while the
 * child starts; once the child runs the lease is handed to it, so that if
 * this process is killed (even with SIGKILL) the lease still lives as long
 * as the child does. The child inherits stdin, stdout and stderr; SIGINT and
 * SIGTERM sent to this process are passed on to it.
 *
 * @throws {PortExecSpawnError} when the command cannot be started (the lease is released).
 *
 * @example
 * ```ts
 * const { code } = await execWithPort("npm", ["run", "dev"], { env: "PORT" });
 * Deno.exit(code);
 * ```
 */
export async function execWithPort(
  command: string,
  args: string[],
  options: ExecWithPortOptions = {},
): Promise<ExecResult> {
  const name = options.env ?? "PORT";
  if (!isEnvName(name)) throw new RangeError(`invalid environment variable name "${name}"`);
  const allocator = new PortAllocator(options);
  const label = options.label ?? [command, ...args].join(" ").slice(0, 200);
  const lease = await allocator.allocate({ ...options, ownerPid: Deno.pid, label });
  const port = lease.port;
  let ownerPid = Deno.pid;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      env: { [name]: String(port) },
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    await allocator.release(port, { ownerPid }).catch(() => {});
    throw new PortExecSpawnError(command, error);
  }
  const listeners = FORWARDED_SIGNALS.map((signal) => {
    const forward = () => {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
    };
    Deno.addSignalListener(signal, forward);
    return [signal, forward] as const;
  });
  try {
    // A child that already exited keeps this process as the owner: the lease is released below.
    if (await readProcessIdentity(child.pid)) {
      const moved = await allocator.transfer(port, child.pid).catch(() => null);
      if (moved?.owner?.pid === child.pid) ownerPid = child.pid;
    }
    options.onStart?.({ port, pid: child.pid });
    const status = await child.status;
    return { port, code: status.code, signal: status.signal };
  } finally {
    for (const [signal, forward] of listeners) Deno.removeSignalListener(signal, forward);
    await allocator.release(port, { ownerPid });
  }
}
