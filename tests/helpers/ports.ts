/**
 * Ports for tests. Every test that needs a port leases one here, from one
 * registry shared by all test processes, so that test files running in
 * parallel never collide; 8644 is never used.
 */
import { join } from "node:path";
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
  return (await allocator.allocate({ range: { ...TEST_PORT_RANGE }, label })).port;
}

/** Gives back a port from {@link leaseTestPort} before the process exits. */
export async function releaseTestPort(port: number): Promise<void> {
  allocator ??= new PortAllocator({ dir: TEST_LEASE_DIR });
  await allocator.release(port, { ownerPid: Deno.pid });
}
