/**
 * The daemon's HTTP layer, below every service it hosts: JSON answers, the
 * API token (its file, and the live check that follows rotations), and the
 * one guard chain (Host, Origin, throttle, token, JSON-only) in front of
 * every route.
 *
 * @module
 */
export { CourierError, ExitCode, type ExitCodeValue } from "../errors/mod.ts";
export * from "./access_config.ts";
export * from "./compare.ts";
export * from "./guard.ts";
export * from "./host.ts";
export * from "./json.ts";
export * from "./live_token.ts";
export * from "./origin.ts";
export * from "./throttle.ts";
export * from "./token.ts";
