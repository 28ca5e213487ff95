/**
 * Processes: identity that survives PID reuse, signals sent only to the
 * right process, discovery with optional helper tools, lock holders, and how
 * courier runs itself.
 *
 * @module
 */
export * from "./fd_limit.ts";
export * from "./find_processes.ts";
export * from "./identity.ts";
export * from "./lock_holders.ts";
export * from "./run_tool.ts";
export * from "./self_command.ts";
export * from "./signals.ts";
