/**
 * `<home>/config.json`: reading it, and the secrets in it (`"env:NAME"`).
 *
 * @module
 */
export * from "./config_file.ts";
