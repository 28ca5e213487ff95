import { canBind, findPortHolder, probeAddresses } from "../net/mod.ts";
import { PortInUseError } from "./errors.ts";

/**
 * Checks that a server can listen on `host:port` before it starts: the
 * address itself and, for loopback and any-address hosts, the IPv6 twin
 * (so `localhost` clients cannot reach another program instead). When the
 * port is taken, names the holding process if it can be found.
 *
 * Sockets in TIME_WAIT do not count: the daemon binds with SO_REUSEADDR.
 * This check is advisory; the daemon's own bind stays authoritative.
 *
 * @throws {PortInUseError} naming the holder when known.
 */
export async function assertPortAvailable(
  port: number,
  options: { host: string; skip?: string[] },
): Promise<void> {
  for (const address of probeAddresses(options.host)) {
    if (options.skip?.includes(address)) continue;
    if (!canBind(port, address)) throw new PortInUseError(port, await findPortHolder(port));
  }
}
