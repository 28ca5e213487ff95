/**
 * The daemon's HTTP building blocks, below every service it hosts: JSON
 * answers and their errors.
 *
 * @module
 */
export * from "./json.ts";
