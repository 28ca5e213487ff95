/**
 * Ports for tests. Every test that needs a port leases one here so that
 * test files running in parallel never collide; 8644 is never used.
 */

/** A free ephemeral port on 127.0.0.1 (bound by the kernel, then released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
