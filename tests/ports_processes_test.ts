/**
 * Port leases across real processes: parallel allocations never collide, a
 * killed owner's ports come back at once while a live owner's do not, and a
 * stuck lock holder makes allocations fail after their timeout.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { NoFreePortError, PortAllocator } from "../lib/ports/mod.ts";
import { courierCommand } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const WORKER = new URL("./fixtures/port_worker.ts", import.meta.url).pathname;

/** A fixture process leasing ports; it holds them until {@link Worker.finish}. */
class Worker {
  readonly child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #buffer = "";

  constructor(args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-all", WORKER, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#lines = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stdin = this.child.stdin.getWriter();
  }

  /** The next JSON line it prints. */
  async next<T>(): Promise<T> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error(`worker ${this.child.pid} exited early`);
      this.#buffer += value;
    }
    const newline = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, newline);
    this.#buffer = this.#buffer.slice(newline + 1);
    return JSON.parse(line);
  }

  /** Tells it to release its leases and waits for it to say so and exit. */
  async finish(): Promise<Deno.CommandStatus> {
    await this.#stdin.write(new TextEncoder().encode("done\n")).catch(() => {});
    await this.#stdin.close().catch(() => {});
    await this.next().catch(() => {}); // {"released":N}, unless it failed earlier
    const status = await this.child.status;
    await this.#lines.cancel().catch(() => {});
    return status;
  }

  /** Kills it with SIGKILL (it is our child) and waits until it is gone. */
  async kill(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.child.status;
    await this.#stdin.close().catch(() => {});
    await this.#lines.cancel().catch(() => {});
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "courier-ports-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parallel allocations from many processes never collide", async () => {
  await withDir(async (dir) => {
    const workers = Array.from({ length: 8 }, () => new Worker([dir, "5", "42000", "42999"]));
    try {
      const held = await Promise.all(
        workers.map((w) => w.next<{ pid: number; ports: number[] }>()),
      );
      const ports = held.flatMap((h) => h.ports);
      assert.equal(ports.length, 40);
      assert.equal(new Set(ports).size, 40, `duplicate ports: ${ports.sort()}`);
      const leases = await new PortAllocator({ dir }).list();
      assert.equal(leases.length, 40);
      assert.ok(leases.every((lease) => lease.alive));
      for (const h of held) {
        const owned = leases.filter((lease) => lease.owner?.pid === h.pid).map((l) => l.port);
        assert.deepEqual(owned.sort(), [...h.ports].sort());
      }
    } finally {
      const statuses = await Promise.all(workers.map((w) => w.finish()));
      assert.ok(statuses.every((s) => s.success));
    }
    assert.deepEqual(await new PortAllocator({ dir }).list(), []);
  });
});

Deno.test("parallel 'courier port allocate' runs print distinct ports", async () => {
  await withDir(async (dir) => {
    const runs = await Promise.all(Array.from({ length: 6 }, () => {
      const { command, args } = courierCommand([
        "--home",
        dir,
        "port",
        "allocate",
        "--range",
        "43000-43999",
      ]);
      return new Deno.Command(command, {
        args,
        env: { COURIER_LEASE_DIR: dir },
        stdout: "piped",
        stderr: "piped",
      }).output();
    }));
    const printed = runs.map((run) => new TextDecoder().decode(run.stdout));
    assert.ok(runs.every((run) => run.success), printed.join(""));
    assert.ok(printed.every((text) => /^\d+\n$/.test(text)));
    assert.equal(new Set(printed).size, 6);
    const leases = await new PortAllocator({ dir }).list();
    assert.equal(leases.length, 6);
    assert.ok(leases.every((lease) => lease.owner === null && lease.expires_at !== null));
  });
});

Deno.test("a killed owner's port is reclaimed by the next allocation; a live owner's is not", async () => {
  const port = await leaseTestPort();
  await withDir(async (dir) => {
    const range = { start: port, end: port };
    const live = new Worker([dir, "1", String(port), String(port)]);
    const held = await live.next<{ pid: number; ports: number[] }>();
    assert.deepEqual(held.ports, [port]);
    await using allocator = new PortAllocator({ dir }); // closed: its fsyncs are done
    try {
      const error = await allocator.allocate({ range }).catch((e) => e);
      assert.ok(error instanceof NoFreePortError, String(error));
      assert.equal(error.usage.leased, 1);
    } finally {
      await live.kill();
    }
    // No TTL to wait out: the owner is gone, so the port is free again at once.
    const lease = await allocator.allocate({ range });
    assert.equal(lease.port, port);
    assert.equal(lease.owner?.pid, Deno.pid);
  });
});

Deno.test("a stuck lock holder makes allocations fail with a lock timeout, naming it", async () => {
  await withDir(async (dir) => {
    {
      await using allocator = new PortAllocator({ dir });
      await allocator.gc(); // creates the registry directory and lock file
    }
    const lock = await Deno.open(join(dir, "ports.lock"), { read: true, write: true });
    try {
      await lock.lock(true);
      const worker = new Worker([dir, "1", "44000", "44010", "300"]);
      const result = await worker.next<{ error: string; message: string; details: string[] }>();
      const status = await worker.finish();
      assert.equal(status.code, 1);
      assert.equal(result.error, "PortRegistryLockTimeoutError");
      assert.match(result.message, /^port registry lock timeout: waited 0\.3s for .*ports\.lock$/);
      assert.match(result.details.join("\n"), new RegExp(`PID ${Deno.pid} holds it`));
    } finally {
      lock.close();
    }
    // Once the holder lets go, allocations work again.
    await using allocator = new PortAllocator({ dir });
    const lease = await allocator.allocate({ range: { start: 44000, end: 44010 } });
    assert.ok(lease.port >= 44000 && lease.port <= 44010);
  });
});
