import { CourierError } from "../errors/mod.ts";
import type { HomeLayout } from "../home/mod.ts";

/**
 * Takes a port lease for a daemon started with `--port auto` (8644
 * preferred), owned by the daemon's PID, and returns how to give it back.
 */
export function leaseDaemonPort(
  _layout: HomeLayout,
  _host: string,
): Promise<{ port: number; release: () => Promise<void> }> {
  return Promise.reject(new CourierError("--port auto needs port leases, which are not built yet"));
}
