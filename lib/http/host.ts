/**
 * Which `Host` a request may name: the DNS-rebinding guard. A web page that
 * points its own domain at 127.0.0.1 reaches the daemon with that domain in
 * `Host`; only the daemon's own names pass.
 *
 * @module
 */

/** Names every courier daemon answers to, on any port. */
export const LOOPBACK_HOST_NAMES: readonly string[] = ["127.0.0.1", "localhost", "[::1]"];

/** How often, at most, a wildcard bind reads the machine's addresses again (ms). */
const INTERFACES_RECHECK_MS = 5000;

/**
 * Splits a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`) into its
 * lower-case name and port; `null` when it is not one.
 */
export function splitHost(value: string): { name: string; port: string | null } | null {
  const match = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?$/i.exec(value.trim());
  return match ? { name: match[1].toLowerCase(), port: match[2] ?? null } : null;
}

/**
 * Whether a listening host keeps the daemon on this machine:
 * `127.0.0.0/8`, `::1`, `localhost`.
 */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return name === "localhost" || name === "::1" || /^127(\.\d{1,3}){3}$/.test(name);
}

/** What a `Host` name looks like for a listening address (`::1` → `[::1]`). */
export function hostName(address: string): string {
  const name = address.toLowerCase();
  return name.includes(":") && !name.startsWith("[") ? `[${name}]` : name;
}

/**
 * The warning for a daemon listening beyond loopback, or `null` when it
 * listens on loopback only.
 */
export function exposureWarning(host: string, port: number): string | null {
  if (isLoopbackHost(host)) return null;
  return `Courier listens on ${hostName(host)}:${port}, beyond loopback: other machines can ` +
    `reach its API (the API token is still required). Listen on 127.0.0.1 unless you mean it.`;
}

/** Options of {@link createHostCheck}. */
export interface HostCheckOptions {
  /** The host the daemon listens on (`127.0.0.1`, `0.0.0.0`, a LAN address…). */
  boundHost: string;
  /** `config.json` `allowed_hosts`: `name` (any port) or `name:port`. */
  allowedHosts?: readonly string[];
  /** The machine's addresses, for a wildcard bind (default `Deno.networkInterfaces`). */
  interfaceAddresses?: () => string[];
  /** The clock (ms, default `performance.now`). */
  now?: () => number;
}

function machineAddresses(): string[] {
  try {
    return Deno.networkInterfaces().map((i) => i.address);
  } catch {
    return [];
  }
}

/**
 * Builds the `Host` check: `127.0.0.1`, `localhost` and `[::1]` on any port,
 * the bound host on any port (for `0.0.0.0` or `::`: each of the machine's
 * addresses), and the `allowed_hosts` entries. Everything else, a missing
 * `Host` included, is refused.
 */
export function createHostCheck(options: HostCheckOptions): (host: string | null) => boolean {
  const names = new Set(LOOPBACK_HOST_NAMES);
  const exact = new Set<string>();
  const bound = hostName(options.boundHost);
  const wildcard = bound === "0.0.0.0" || bound === "[::]" || bound === "";
  if (!wildcard) names.add(bound);
  for (const entry of options.allowedHosts ?? []) {
    const split = splitHost(entry);
    if (!split) continue;
    if (split.port === null) names.add(split.name);
    else exact.add(`${split.name}:${Number(split.port)}`);
  }
  const addresses = options.interfaceAddresses ?? machineAddresses;
  const now = options.now ?? (() => performance.now());
  let machine = new Set<string>();
  let machineAt = -Infinity;
  const onMachine = (name: string): boolean => {
    if (!wildcard) return false;
    if (!machine.has(name) && now() - machineAt >= INTERFACES_RECHECK_MS) {
      machineAt = now();
      machine = new Set(
        addresses().map((a) => a.replace(/%.*$/, ""))
          .filter((a) => bound === "[::]" || !a.includes(":")).map(hostName),
      );
    }
    return machine.has(name);
  };
  // Clients repeat the same few Host values: remember the ones that passed (a bounded set;
  // refusals are worked out each time, so a wildcard bind still sees new addresses).
  const passed = new Set<string>();
  return (host) => {
    if (host === null) return false;
    if (passed.has(host)) return true;
    const split = splitHost(host);
    if (!split) return false;
    const ok = names.has(split.name) ||
      (split.port !== null && exact.has(`${split.name}:${Number(split.port)}`)) ||
      onMachine(split.name);
    if (ok) {
      if (passed.size >= 256) passed.clear();
      passed.add(host);
    }
    return ok;
  };
}
