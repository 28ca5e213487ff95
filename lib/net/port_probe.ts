import { readSocketTable, type SocketEntry } from "./socket_table.ts";

/** Whether `host` is a loopback address or name. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** Whether `host` means every interface. */
export function isAnyHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}

/**
 * The addresses a server on `host` competes with: the host itself and, for
 * loopback or any-address hosts, the IPv6 twin, since clients of `localhost`
 * may reach either family (a Node server often listens on `::1` alone).
 */
export function probeAddresses(host: string): string[] {
  if (isLoopbackHost(host)) {
    return host === "::1"
      ? ["::1", "127.0.0.1"]
      : [host === "localhost" ? "127.0.0.1" : host, "::1"];
  }
  if (isAnyHost(host)) return ["0.0.0.0", "::"];
  return [host];
}

/**
 * Tries to bind `hostname:port` and releases it at once. Returns `false`
 * when the address is in use or not permitted, `true` when it bound or when
 * the address family is not available on this machine (no IPv6).
 *
 * Note: `Deno.listen` sets `SO_REUSEADDR`, so this succeeds over sockets in
 * TIME_WAIT; see {@link isPortFree} for the stricter check.
 */
export function canBind(port: number, hostname: string): boolean {
  try {
    const listener = Deno.listen({ hostname, port, transport: "tcp" });
    listener.close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrNotAvailable) return true;
    if (
      error instanceof Error && /address family|not supported|EAFNOSUPPORT/i.test(error.message)
    ) {
      return true;
    }
    return false;
  }
}

/** Options of {@link isPortFree}. */
export interface PortFreeOptions {
  /** Host to probe (default `127.0.0.1`); loopback and any also probe IPv6. */
  host?: string;
  /**
   * Also require the port to be absent from the kernel's socket tables in
   * every state (TIME_WAIT, ESTABLISHED…), so that a program binding without
   * `SO_REUSEADDR` succeeds too (default true).
   */
  strict?: boolean;
  /** A socket table already read (saves re-reading it for many ports). */
  table?: SocketEntry[] | null;
}

/**
 * Whether a TCP port is free for any program on `host`: bindable on the host
 * (and its IPv6 twin), and, when `strict`, held by no socket in any state.
 *
 * @example
 * ```ts
 * if (await isPortFree(8644)) console.log("8644 is free");
 * ```
 */
export async function isPortFree(port: number, options: PortFreeOptions = {}): Promise<boolean> {
  const host = options.host ?? "127.0.0.1";
  for (const address of probeAddresses(host)) {
    if (!canBind(port, address)) return false;
  }
  if (options.strict ?? true) {
    const table = options.table !== undefined ? options.table : await readSocketTable();
    if (table?.some((entry) => entry.localPort === port)) return false;
  }
  return true;
}
