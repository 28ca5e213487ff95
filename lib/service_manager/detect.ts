import type { EnvReader, Supervisor } from "./names.ts";

/**
 * The variable a service written by `courier service install` sets for
 * `courier start --foreground`: `systemd:<unit>` or `launchd:<label>`.
 *
 * courier does not guess from `INVOCATION_ID`, `JOURNAL_STREAM` or
 * `XPC_SERVICE_NAME`: every process started below any service inherits
 * them (a terminal multiplexer or editor server run by systemd, any macOS
 * app), while this marker exists only where courier's own unit put it, and
 * it names the unit that `courier stop` must tell.
 */
export const SUPERVISOR_ENV = "COURIER_SUPERVISOR";

const VALUE = /^(systemd|launchd):([A-Za-z0-9@._:-]{1,200})$/;

/** The value of {@link SUPERVISOR_ENV} for `supervisor`. */
export function supervisorEnvValue(supervisor: Supervisor): string {
  return `${supervisor.manager}:${supervisor.name}`;
}

/**
 * The service manager running this process, as its unit told it through
 * {@link SUPERVISOR_ENV}, or `null` (not supervised, or a malformed value).
 */
export function supervisorFromEnv(env: EnvReader = Deno.env): Supervisor | null {
  const match = VALUE.exec(env.get(SUPERVISOR_ENV) ?? "");
  return match ? { manager: match[1] as Supervisor["manager"], name: match[2] } : null;
}
