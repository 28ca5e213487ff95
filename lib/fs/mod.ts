/**
 * Small file helpers: crash-safe writes and tolerant reads.
 *
 * @module
 */
export * from "./atomic_write.ts";
export * from "./read.ts";
