/**
 * courier's version, read from `deno.json` at build time.
 *
 * @module
 */
export * from "./version.ts";
