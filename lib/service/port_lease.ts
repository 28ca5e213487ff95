import type { HomeLayout } from "../home/mod.ts";
import { allocatePort, releasePort } from "../ports/mod.ts";
import { DEFAULT_PORT } from "./defaults.ts";

/**
 * The port `--port auto` tries first: `$COURIER_PORT` when it is a number
 * (so a user's usual port, or a test's leased one, is kept), else 8644.
 */
export function preferredAutoPort(): number {
  const env = Number(Deno.env.get("COURIER_PORT"));
  return Number.isInteger(env) && env >= 1 && env <= 65535 ? env : DEFAULT_PORT;
}

/**
 * Takes a port lease for a daemon started with `--port auto`: the
 * preferred port ({@link preferredAutoPort}) if it is free for the daemon
 * (sockets of an earlier run in TIME_WAIT do not count), else one
 * from the default lease range, recorded in the user's lease registry (one
 * for all homes: see `userLeaseDir`), labelled with the home and owned by
 * the daemon's own PID, so it returns to the pool when the daemon exits,
 * even by SIGKILL.
 */
export async function leaseDaemonPort(
  layout: HomeLayout,
  host: string,
): Promise<{ port: number; release: () => Promise<void> }> {
  const port = await allocatePort({
    preferred: preferredAutoPort(),
    host,
    ownerPid: Deno.pid,
    label: `courier daemon (home ${layout.root})`,
    // The daemon binds with SO_REUSEADDR: a TIME_WAIT left by its last run does not move it.
    reuseAddress: true,
  });
  return {
    port,
    release: async () => {
      await releasePort(port, { ownerPid: Deno.pid });
    },
  };
}
