/**
 * Ports for tests. Every test that needs a port leases one here, from one
 * registry shared by all test processes, so that test files running in
 * parallel never collide; 8644 is never used.
 */
import { join } from "node:path";
import { readSocketTable } from "../../lib/net/mod.ts";
import { PortAllocator, type PortRange } from "../../lib/ports/mod.ts";

/** The registry every test process leases from. */
export const TEST_LEASE_DIR: string = join(
  Deno.env.get("TMPDIR") ?? "/tmp",
  "courier-test-port-leases",
);

/** Where test ports come from: below the ephemeral range, far from 8644. */
export const TEST_PORT_RANGE: Readonly<PortRange> = Object.freeze({ start: 20000, end: 29999 });

let allocator: PortAllocator | null = null;

/**
 * Leases a port for this test process: no other test process (or program)
 * gets it while this one lives. The lease ends when the process exits, or
 * with {@link releaseTestPort}.
 *
 * @example
 * ```ts
 * const port = await leaseTestPort();
 * const server = Deno.serve({ port, onListen() {} }, () => new Response("ok"));
 * ```
 */
export async function leaseTestPort(): Promise<number> {
  allocator ??= new PortAllocator({ dir: TEST_LEASE_DIR });
  const label = `test ${Deno.mainModule.split("/").pop()}`;
  const { port } = await allocator.allocate({ range: { ...TEST_PORT_RANGE }, label });
  await allocator.close(); // the registry's fsync is done: no operation outlives the call
  return port;
}

/** Gives back a port from {@link leaseTestPort} before the process exits. */
export async function releaseTestPort(port: number): Promise<void> {
  allocator ??= new PortAllocator({ dir: TEST_LEASE_DIR });
  await allocator.release(port, { ownerPid: Deno.pid });
  await allocator.close();
}

/** Leaves a socket in TIME_WAIT on local port `port` (the server side closes first). */
export async function makeTimeWait(port: number): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  const server = await listener.accept();
  server.close();
  await client.read(new Uint8Array(1)); // end of stream: the server's FIN
  client.close();
  listener.close();
  // The server side enters TIME_WAIT once the client's FIN is acknowledged.
  for (let i = 0; i < 200; i++) {
    const table = await readSocketTable();
    if (table?.some((e) => e.localPort === port && e.state === "TIME_WAIT")) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no TIME_WAIT socket appeared on port ${port}`);
}
