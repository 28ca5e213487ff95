/**
 * Small file helpers: crash-safe writes, tolerant reads, and writes that
 * write everything.
 *
 * @module
 */
export * from "./aside.ts";
export * from "./atomic_write.ts";
export * from "./read.ts";
export * from "./write.ts";
