/**
 * A port is leased only when it is free for any program: sockets in
 * TIME_WAIT (which `Deno.listen`, with SO_REUSEADDR, binds over) and
 * listeners on the IPv6 loopback alone must both make it pass.
 */
import assert from "node:assert/strict";
import { canBind } from "../lib/net/mod.ts";
import { PortAllocator } from "../lib/ports/mod.ts";
import { leaseTestPort, makeTimeWait } from "./helpers/ports.ts";

async function withAllocator(fn: (allocator: PortAllocator) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "courier-ports-" });
  try {
    await using allocator = new PortAllocator({ dir }); // closed: its fsyncs are done
    await fn(allocator);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const only = (port: number) => ({ start: port, end: port });

async function python(code: string): Promise<number | null> {
  try {
    const out = await new Deno.Command("python3", {
      args: ["-c", code],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.code;
  } catch {
    return null; // no python3 here
  }
}

function ipv6Available(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("a port in TIME_WAIT is skipped, even right after a census was taken, unless the user reuses addresses", async () => {
  const [busy, spare] = [await leaseTestPort(), await leaseTestPort()];
  await withAllocator(async (allocator) => {
    // A first allocation takes (and shares) a socket census without the TIME_WAIT in it.
    const first = await allocator.allocate({ range: only(spare) });
    assert.equal(first.port, spare);
    await allocator.release(spare);

    await makeTimeWait(busy);
    // Deno.listen sets SO_REUSEADDR and binds over TIME_WAIT: a bind probe alone would pass…
    assert.equal(canBind(busy, "127.0.0.1"), true);
    // …while a program binding without it (Python's default) fails.
    const bound = await python(
      `import socket\ns = socket.socket()\ns.bind(("127.0.0.1", ${busy}))`,
    );
    if (bound !== null) assert.notEqual(bound, 0);

    const lease = await allocator.allocate({ preferred: busy, range: only(spare) });
    assert.equal(lease.port, spare);
    const error = await allocator.allocate({ range: only(busy) }).catch((e) => e);
    assert.match(String(error?.message), /1 held by other programs/);
    // A user that binds with SO_REUSEADDR too (as `courier start --port auto`) may have it.
    const reuse = await allocator.allocate({
      preferred: busy,
      range: only(busy),
      reuseAddress: true,
    });
    assert.equal(reuse.port, busy);
  });
});

Deno.test({
  name: "a port listening only on ::1 is skipped for a 127.0.0.1 lease",
  ignore: !ipv6Available(),
  fn: async () => {
    const [busy, spare] = [await leaseTestPort(), await leaseTestPort()];
    const listener = Deno.listen({ hostname: "::1", port: busy });
    try {
      assert.equal(canBind(busy, "127.0.0.1"), true); // IPv4 alone looks free
      await withAllocator(async (allocator) => {
        const lease = await allocator.allocate({ preferred: busy, range: only(spare) });
        assert.equal(lease.port, spare);
      });
    } finally {
      listener.close();
    }
  },
});

Deno.test("a port bound by another program is skipped, and comes back once it is closed", async () => {
  const [busy, spare] = [await leaseTestPort(), await leaseTestPort()];
  await withAllocator(async (allocator) => {
    const listener = Deno.listen({ hostname: "0.0.0.0", port: busy });
    try {
      const lease = await allocator.allocate({ preferred: busy, range: only(spare) });
      assert.equal(lease.port, spare);
    } finally {
      listener.close();
    }
    // Closed without a connection: nothing lingers, and the preferred port is given at once
    // even though the census shared in the registry still lists it.
    const again = await allocator.allocate({ preferred: busy, range: only(spare) });
    assert.equal(again.port, busy);
  });
});
