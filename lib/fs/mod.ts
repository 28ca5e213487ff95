/**
 * Small file helpers: crash-safe writes, tolerant reads, writes that
 * write everything, and POSIX path helpers.
 *
 * @module
 */
export * from "./aside.ts";
export * from "./atomic_write.ts";
export * from "./path.ts";
export * from "./read.ts";
export * from "./write.ts";
