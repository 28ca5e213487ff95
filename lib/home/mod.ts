/**
 * Where courier keeps its state: the home directory and its layout.
 *
 * @module
 */
export * from "./layout.ts";
