/**
 * The daemon's log: timestamped lines appended to `log/courier.log`.
 *
 * @module
 */
export * from "./logger.ts";
