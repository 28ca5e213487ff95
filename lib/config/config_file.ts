import { CourierError } from "../errors/mod.ts";
import { readTextIfExists } from "../fs/mod.ts";

/** `<home>/config.json` (or a value in it) is wrong. */
export class ConfigError extends CourierError {
  /** The file or option at fault. */
  readonly where: string;

  /**
   * Creates a `ConfigError`.
   *
   * @param where The file (and key) or option at fault.
   * @param message What is wrong and how to fix it.
   */
  constructor(where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = "ConfigError";
    this.where = where;
  }
}

/**
 * Reads `config.json`: its JSON object, or `{}` when the file is missing or
 * empty.
 *
 * @throws {ConfigError} when it is not JSON or not an object.
 */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  const text = await readTextIfExists(path);
  if (text === null || text.trim() === "") return {};
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(path, `not valid JSON (${(error as Error).message})`);
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new ConfigError(path, "must hold a JSON object");
  }
  return config as Record<string, unknown>;
}

/** Options of {@link resolveSecret}. */
export interface ResolveSecretOptions {
  /** Where the value stands, for errors (`config.json providers.team.bot_token`). */
  where: string;
  /** Reads an environment variable (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
}

/**
 * Resolves a secret from `config.json`: `"env:NAME"` reads the environment
 * variable `NAME`; any other string is the secret itself. The secret is
 * never part of an error message.
 *
 * @example
 * ```ts
 * const token = resolveSecret("env:SLACK_BOT_TOKEN", { where: "providers.team.bot_token" });
 * ```
 *
 * @throws {ConfigError} when it is not a non-empty string, or names an unset variable.
 */
export function resolveSecret(value: unknown, options: ResolveSecretOptions): string {
  if (typeof value !== "string" || value === "") {
    throw new ConfigError(options.where, `must be a non-empty string (or "env:NAME")`);
  }
  if (!value.startsWith("env:")) return value;
  const name = value.slice("env:".length);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new ConfigError(options.where, `"env:${name}" does not name an environment variable`);
  }
  const secret = (options.env ?? ((n) => Deno.env.get(n)))(name);
  if (secret === undefined || secret === "") {
    throw new ConfigError(
      options.where,
      `the environment variable ${name} is not set; set it before starting courier`,
    );
  }
  return secret;
}
