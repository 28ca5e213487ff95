import { CourierError, ExitCode } from "../errors/mod.ts";
import type { PortRange } from "./range.ts";

/** Why {@link NoFreePortError} found no port: how the range's ports are taken. */
export interface PortRangeUsage {
  /** Ports in the range. */
  total: number;
  /** Ports of the range with a live courier lease. */
  leased: number;
  /** Ports of the range held by other programs (bound, or in the kernel's socket tables). */
  busy: number;
}

/** Every port of the range is leased or held by another program. */
export class NoFreePortError extends CourierError {
  /** The range that was searched. */
  readonly range: PortRange;
  /** How its ports are taken. */
  readonly usage: PortRangeUsage;

  /**
   * Says which range was searched and how its ports are taken.
   *
   * @param range The range that was searched.
   * @param usage How many of its ports are leased and how many held by other programs.
   */
  constructor(range: PortRange, usage: PortRangeUsage) {
    super(
      `No available ports in range ${range.start}-${range.end}: ` +
        `${usage.leased} of ${usage.total} leased by courier, ` +
        `${usage.busy} held by other programs`,
      {
        exitCode: ExitCode.Failure,
        details: [
          "Free some with 'courier port gc' or 'courier port release PORT', " +
          "or choose a wider range with --range START-END.",
        ],
      },
    );
    this.name = "NoFreePortError";
    this.range = { ...range };
    this.usage = { ...usage };
  }
}

/** The port registry lock was not granted in time. */
export class PortRegistryLockTimeoutError extends CourierError {
  /** The lock file. */
  readonly lockPath: string;
  /** How long we waited, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * Names the lock file, how long we waited, and the holder when known.
   *
   * @param lockPath The lock file waited on.
   * @param timeoutMs How long we waited.
   * @param options `holder`: the PID holding the lock, when known.
   */
  constructor(lockPath: string, timeoutMs: number, options: { holder?: number | null } = {}) {
    const holder = options.holder
      ? `PID ${options.holder} holds it; if that process is stuck, stop it. `
      : "";
    super(
      `port registry lock timeout: waited ${timeoutMs / 1000}s for ${lockPath}`,
      {
        exitCode: ExitCode.Failure,
        details: [`${holder}Never delete the lock file; retry once the holder is done.`],
      },
    );
    this.name = "PortRegistryLockTimeoutError";
    this.lockPath = lockPath;
    this.timeoutMs = timeoutMs;
  }
}

/** A lease was asked for on behalf of a process that does not exist. */
export class PortOwnerNotFoundError extends CourierError {
  /** The PID that was given. */
  readonly pid: number;

  /**
   * Names the PID that was given.
   *
   * @param pid The PID that names no live process.
   */
  constructor(pid: number) {
    super(`no process with PID ${pid}: a lease must be owned by a live process`, {
      exitCode: ExitCode.Failure,
      details: [
        "Pass the PID of the server that will use the port, or omit --pid for a TTL lease.",
      ],
    });
    this.name = "PortOwnerNotFoundError";
    this.pid = pid;
  }
}

/** The port registry exists but cannot be used (written by a newer courier). */
export class PortRegistryError extends CourierError {
  /** The registry file. */
  readonly path: string;

  /**
   * Names the registry file and what is wrong with it.
   *
   * @param path The registry file.
   * @param message What is wrong with it.
   */
  constructor(path: string, message: string) {
    super(`port registry ${path}: ${message}`, { exitCode: ExitCode.Failure });
    this.name = "PortRegistryError";
    this.path = path;
  }
}

/** `port exec` could not start its command. */
export class PortExecSpawnError extends CourierError {
  /** The command that could not start. */
  readonly command: string;
  /** `true` when it was not found (shells exit 127), `false` when it could not be run (126). */
  readonly notFound: boolean;

  /**
   * Names the command and why it could not start.
   *
   * @param command The command.
   * @param cause The spawn error.
   */
  constructor(command: string, cause: unknown) {
    const notFound = cause instanceof Deno.errors.NotFound;
    super(
      notFound
        ? `command not found: ${command}`
        : `cannot run ${command}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { exitCode: ExitCode.Failure, cause },
    );
    this.name = "PortExecSpawnError";
    this.command = command;
    this.notFound = notFound;
  }
}
