/**
 * Process exit codes used by every courier command.
 *
 * They are part of the public contract: scripts and dotfiles branch on them,
 * so a value never changes meaning once released.
 *
 * @module
 */

/** Exit codes shared by all commands (see the README's exit-code table). */
export const ExitCode = {
  /** The command did what was asked. */
  Ok: 0,
  /** Generic failure; for `status`: stale state; for `stop`: not running. */
  Failure: 1,
  /** `start`: a daemon is already running in this home. */
  AlreadyRunning: 2,
  /** The home directory cannot be created or written; for `status`: stopped. */
  Permission: 3,
  /** `start`: the port is held by another program; for `status`: unhealthy. */
  PortInUse: 4,
  /** Bad command line (unknown command or option, bad value). */
  Usage: 64,
  /** Mail commands: the daemon refused what was sent (HTTP 400, 413): EX_DATAERR. */
  BadInput: 65,
  /** Mail commands: no such mail (HTTP 404): EX_NOINPUT. */
  NotFound: 66,
  /** Mail commands: no daemon runs in this home (or it cannot be reached): EX_UNAVAILABLE. */
  NotRunning: 69,
  /**
   * Try again later: `mail next` got no mail within `--wait`; any mail
   * command: the daemon is busy (HTTP 503: stopping, indexing, disk refusing writes): EX_TEMPFAIL.
   */
  TryAgain: 75,
  /** Mail commands: the mail is another agent's claim (HTTP 403): EX_NOPERM. */
  Forbidden: 77,
  /**
   * Mail commands: the mail is not in a state for this (HTTP 409): claimed by
   * another agent, waiting for a retry, done, dead. Courier's own (sysexits has none).
   */
  Conflict: 79,
} as const;

/** One of the values of {@link ExitCode}. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];
