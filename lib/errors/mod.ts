/**
 * Error classes and exit codes shared by all of courier.
 *
 * @module
 */
export * from "./errors.ts";
export * from "./exit_codes.ts";
export * from "./file_system.ts";
