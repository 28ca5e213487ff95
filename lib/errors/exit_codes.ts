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
} as const;

/** One of the values of {@link ExitCode}. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];
