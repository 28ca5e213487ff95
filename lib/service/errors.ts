import { CourierError, ExitCode } from "../errors/mod.ts";

/** `start` found a daemon already running in this home (exit 2). */
export class AlreadyRunningError extends CourierError {
  /** The running daemon's PID, when known. */
  readonly pid?: number;
  /** Its port, when known. */
  readonly port?: number;

  /**
   * Creates an `AlreadyRunningError`.
   *
   * @param pid The running daemon's PID.
   * @param port Its port.
   */
  constructor(pid?: number, port?: number) {
    const what = [pid ? `PID ${pid}` : "", port ? `port ${port}` : ""].filter(Boolean).join(", ");
    super(`Courier is already running${what ? ` (${what})` : ""}`, {
      exitCode: ExitCode.AlreadyRunning,
      details: ["Use 'courier status' to see it, or 'courier restart' to replace it."],
    });
    this.name = "AlreadyRunningError";
    this.pid = pid;
    this.port = port;
  }
}

/** The port is held by another program (exit 4). */
export class PortInUseError extends CourierError {
  /** The port. */
  readonly port: number;
  /** The holder's PID, when it could be found. */
  readonly holderPid?: number;
  /** The holder's command line, when it could be read. */
  readonly holderCommand?: string;

  /**
   * Creates a `PortInUseError`.
   *
   * @param port The busy port.
   * @param holder Who holds it, when known.
   */
  constructor(port: number, holder?: { pid: number; commandLine: string | null } | null) {
    const by = holder
      ? ` by PID ${holder.pid}${holder.commandLine ? ` (${holder.commandLine})` : ""}`
      : "";
    super(`Port ${port} is already in use${by}`, {
      exitCode: ExitCode.PortInUse,
      details: [
        "Choose another port with --port N (or --port auto), or stop the program holding it.",
      ],
    });
    this.name = "PortInUseError";
    this.port = port;
    this.holderPid = holder?.pid;
    this.holderCommand = holder?.commandLine ?? undefined;
  }
}

/** The daemon could not start (exit 1); details carry the last log lines. */
export class StartFailedError extends CourierError {
  /**
   * Creates a `StartFailedError`.
   *
   * @param message Why it failed.
   * @param details Extra lines (daemon stderr, last log lines).
   */
  constructor(message: string, details: string[] = []) {
    super(message, { exitCode: ExitCode.Failure, details });
    this.name = "StartFailedError";
  }
}

/** `stop`/`kill` found no daemon to act on (exit 1). */
export class NotRunningError extends CourierError {
  /**
   * Creates a `NotRunningError`.
   *
   * @param note Extra information (e.g. a stale pid file that was removed).
   */
  constructor(note?: string) {
    super(`Courier is not running${note ? ` (${note})` : ""}`, {
      exitCode: ExitCode.Failure,
      details: ["Start it with 'courier start'."],
    });
    this.name = "NotRunningError";
  }
}

/** A daemon holds the home but is not healthy: stopped by a signal, or not answering (exit 1). */
export class ServiceUnhealthyError extends CourierError {
  /** The daemon's PID. */
  readonly pid: number;

  /**
   * Creates a `ServiceUnhealthyError`.
   *
   * @param pid The daemon's PID.
   * @param options `reason`: what is wrong; `hint`: what to do about it.
   */
  constructor(pid: number, options: { reason: string; hint?: string }) {
    super(`Courier (PID ${pid}) runs but is not healthy: ${options.reason}`, {
      exitCode: ExitCode.Failure,
      details: [options.hint ?? "See 'courier logs', or replace it with 'courier restart'."],
    });
    this.name = "ServiceUnhealthyError";
    this.pid = pid;
  }
}
