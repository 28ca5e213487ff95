import { type ProcessGroup, readProcessGroup, readProcessIdentity } from "../proc/mod.ts";
import { PortAllocator } from "./allocator.ts";
import type { AllocatePortOptions } from "./allocator_options.ts";
import { PortExecSpawnError } from "./errors.ts";

/** Signals `port exec` passes on to its child. */
export const FORWARDED_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/** Options of {@link execWithPort}. */
export interface ExecWithPortOptions extends AllocatePortOptions {
  /** The environment variable that carries the port (default `PORT`). */
  env?: string;
  /**
   * Put the port in place of `{port}` in the command and its arguments
   * (default `true`; see {@link substitutePort}).
   */
  substitute?: boolean;
  /** Called once the lease is taken and the child started (tests, progress output). */
  onStart?: (info: { port: number; pid: number }) => void;
  /** Called for each SIGINT or SIGTERM this process gets while the child runs, once handled. */
  onSignal?: (info: SignalOutcome) => void;
}

/** What {@link execWithPort} did with a signal it got. */
export interface SignalOutcome {
  /** The signal. */
  signal: Deno.Signal;
  /** The child's PID. */
  pid: number;
  /**
   * `passed`: sent on to the child; `terminal`: left alone, a Ctrl-C the
   * child got from the terminal itself; `exited`: the child was gone.
   */
  outcome: "passed" | "terminal" | "exited";
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

/**
 * Whether a SIGINT that `port exec` receives has, as far as can be told,
 * reached its child already: both are in the foreground process group of
 * the terminal, which sends a Ctrl-C to the whole group. (A `kill -INT` of
 * `port exec` alone looks the same from inside; see {@link execWithPort}.)
 *
 * @param self The process group of `port exec` and its terminal's foreground group.
 * @param child The child's.
 */
export function interruptReachesChild(
  self: ProcessGroup | null,
  child: ProcessGroup | null,
): boolean {
  return self !== null && child !== null && self.tpgid > 0 && self.pgrp === self.tpgid &&
    child.pgrp === self.pgrp;
}

/**
 * The command line with the port in place of each `{port}`, and `{{port}}`
 * turned into a literal `{port}`. Nothing else changes: other braces
 * (`{x}`, `{{.Name}}`) are left as they are.
 *
 * @example
 * ```ts
 * substitutePort(["python3", "-m", "http.server", "{port}"], 8080);
 * // ["python3", "-m", "http.server", "8080"]
 * ```
 */
export function substitutePort(args: readonly string[], port: number): string[] {
  return args.map((arg) =>
    arg.replace(/\{\{port\}\}|\{port\}/g, (token) => token === "{port}" ? String(port) : "{port}")
  );
}

/** Whether `name` can be an environment variable name (`PORT`, `HTTP_PORT`…). */
export function isEnvName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}

/**
 * Runs `command` with a leased port in its environment (and in place of
 * `{port}` in its command line: {@link substitutePort}) and releases the
 * lease when it exits.
 *
 * The lease is taken first, owned by this process, so it holds while the
 * child starts; once the child runs the lease is handed to it, so that if
 * this process is killed (even with SIGKILL) the lease still lives as long
 * as the child does. The child inherits stdin, stdout and stderr, and runs
 * in this process's process group.
 *
 * SIGTERM sent to this process is passed on to the child, and so is SIGINT,
 * except when it comes (as far as can be told) from the terminal: a Ctrl-C
 * goes to the terminal's whole foreground process group, so when both
 * processes are in it the child has it already, and passing it on would
 * make one Ctrl-C two (which many programs take as "quit now, skip the
 * clean-up"). That is told from the process groups alone, so a `kill -INT`
 * of this process while it runs in a terminal's foreground looks the same:
 * such a first SIGINT is not passed on, a second one is (as `uv run` does).
 * Signals are passed on in the order they were handled.
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
  await using allocator = new PortAllocator(options); // at the end: the registry is on disk
  const label = options.label ?? [command, ...args].join(" ").slice(0, 200);
  const lease = await allocator.allocate({ ...options, ownerPid: Deno.pid, label });
  const port = lease.port;
  let ownerPid = Deno.pid;
  let interrupts = 0;
  let forwarding = Promise.resolve();
  const pass = async (signal: Deno.Signal) => {
    let outcome: SignalOutcome["outcome"] = "passed";
    if (signal === "SIGINT" && ++interrupts === 1) {
      const [self, group] = await Promise.all([
        readProcessGroup(Deno.pid),
        readProcessGroup(child.pid),
      ]);
      if (interruptReachesChild(self, group)) outcome = "terminal";
    }
    if (outcome === "passed") {
      try {
        child.kill(signal);
      } catch {
        outcome = "exited";
      }
    }
    options.onSignal?.({ signal, pid: child.pid, outcome });
  };
  // Listening before the child exists: the first listener takes the runtime a few ms to set
  // up, and a Ctrl-C in that moment would otherwise end this process by the default action.
  // A signal is only handled on a later turn, by when the child is there.
  const listeners = FORWARDED_SIGNALS.map((signal) => {
    const forward = () => {
      forwarding = forwarding.then(() => pass(signal)).catch(() => {});
    };
    Deno.addSignalListener(signal, forward);
    return [signal, forward] as const;
  });
  let child!: Deno.ChildProcess;
  try {
    const [program, ...programArgs] = options.substitute === false
      ? [command, ...args]
      : substitutePort([command, ...args], port);
    child = new Deno.Command(program, {
      args: programArgs,
      env: { [name]: String(port) },
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    for (const [signal, forward] of listeners) Deno.removeSignalListener(signal, forward);
    await allocator.release(port, { ownerPid }).catch(() => {});
    throw new PortExecSpawnError(command, error);
  }
  try {
    // A child that already exited keeps this process as the owner: the lease is released below.
    if (await readProcessIdentity(child.pid)) {
      const moved = await allocator.transfer(port, child.pid).catch(() => null);
      if (moved?.owner?.pid === child.pid) ownerPid = child.pid;
    }
    options.onStart?.({ port, pid: child.pid });
    const status = await child.status;
    await forwarding;
    return { port, code: status.code, signal: status.signal };
  } finally {
    for (const [signal, forward] of listeners) Deno.removeSignalListener(signal, forward);
    await allocator.release(port, { ownerPid });
  }
}
