/**
 * `courier doctor`: checks a home and the machine, and says how to fix
 * each problem found.
 *
 * @module
 */
export * from "./checks.ts";
export * from "./mailbox_check.ts";
