/**
 * Port leases through the library, in this process: choice of port, errors,
 * release, list, gc, TTLs, owner identity, and registries that are corrupt,
 * malformed or from a newer courier.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  censusCovers,
  formatRegistry,
  interruptReachesChild,
  NoFreePortError,
  parsePortRange,
  parseRegistry,
  PortAllocator,
  type PortAllocatorOptions,
  PortRegistryError,
  type QueuedRequest,
  readRegistry,
  type RegistryData,
  RequestQueue,
  socketTablePorts,
  writeRegistry,
} from "../lib/ports/mod.ts";
import { readProcessIdentity } from "../lib/proc/mod.ts";
import { leaseTestPort } from "./helpers/ports.ts";

/** Runs `fn` with an allocator on a fresh registry directory, removed afterwards. */
async function withAllocator(
  fn: (allocator: PortAllocator, dir: string) => Promise<void>,
  options: PortAllocatorOptions = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "courier-ports-" });
  await using allocator = new PortAllocator({ dir, ...options });
  try {
    await fn(allocator, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Ports leased for this test in the shared test registry, so no other test uses them. */
async function testPorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await leaseTestPort());
  return ports.sort((a, b) => a - b);
}

const only = (port: number) => ({ start: port, end: port });

Deno.test("allocate takes the preferred port first, then the range, and never repeats a port", async () => {
  const [a, b] = await testPorts(2);
  await withAllocator(async (allocator) => {
    const first = await allocator.allocate({ preferred: b, range: only(a) });
    assert.equal(first.port, b);
    assert.equal(first.owner?.pid, Deno.pid);
    assert.equal(first.expires_at, null);
    const second = await allocator.allocate({ preferred: b, range: only(a) });
    assert.equal(second.port, a);
    await assert.rejects(
      allocator.allocate({ preferred: b, range: only(a) }),
      (error: unknown) => {
        assert.ok(error instanceof NoFreePortError);
        assert.equal(error.exitCode, 1);
        assert.deepEqual(error.usage, { total: 1, leased: 1, busy: 0 });
        assert.match(error.message, new RegExp(`^No available ports in range ${a}-${a}`));
        assert.match(error.message, /1 of 1 leased by courier, 0 held by other programs/);
        return true;
      },
    );
  });
});

Deno.test("a range never hands out a port browsers and fetch refuse (10080)", async () => {
  await withAllocator(async (allocator) => {
    await assert.rejects(
      allocator.allocate({ range: { start: 10080, end: 10080 } }),
      (error: unknown) => {
        assert.ok(error instanceof NoFreePortError);
        assert.deepEqual(error.usage, { total: 0, leased: 0, busy: 0 });
        return true;
      },
    );
  });
});

Deno.test("the no-free-port error counts ports held by other programs apart from leases", async () => {
  const [a, b] = await testPorts(2);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: b });
  try {
    await withAllocator(async (allocator) => {
      await allocator.allocate({ range: only(a) });
      const range = { start: Math.min(a, b), end: Math.max(a, b) };
      const error = await allocator.allocate({ range: only(b) }).catch((e) => e);
      assert.ok(error instanceof NoFreePortError);
      assert.deepEqual(error.usage, { total: 1, leased: 0, busy: 1 });
      // Over both ports: one leased, one held by the listener (ports in between are not ours to count).
      const both = await allocator.allocate({ range }).catch((e) => e);
      if (both instanceof NoFreePortError) {
        assert.equal(both.usage.leased, 1);
        assert.ok(both.usage.busy >= 1);
      } else {
        assert.ok(both.port > range.start && both.port < range.end);
      }
    });
  } finally {
    listener.close();
  }
});

Deno.test("many allocations at once from one process get distinct ports", async () => {
  await withAllocator(async (allocator) => {
    const leases = await Promise.all(
      Array.from({ length: 20 }, () => allocator.allocate({ range: { start: 41000, end: 41999 } })),
    );
    assert.equal(new Set(leases.map((l) => l.port)).size, 20);
    assert.equal((await allocator.list()).length, 20);
  });
});

Deno.test("release drops a lease, says whether there was one, and respects ownerPid", async () => {
  const [a] = await testPorts(1);
  await withAllocator(async (allocator) => {
    await allocator.allocate({ range: only(a), label: "web" });
    const [listed] = await allocator.list();
    assert.equal(listed.port, a);
    assert.equal(listed.label, "web");
    assert.equal(listed.owner_alive, true);
    assert.equal(listed.alive, true);
    assert.equal(await allocator.release(a, { ownerPid: Deno.pid + 1 }), false);
    assert.equal((await allocator.list()).length, 1);
    assert.equal(await allocator.release(a), true);
    assert.equal(await allocator.release(a), false);
    assert.deepEqual(await allocator.list(), []);
  });
});

Deno.test("a TTL lease expires; gc and the next allocation drop it", async () => {
  const [a] = await testPorts(1);
  let now = Date.UTC(2030, 0, 1);
  await withAllocator(async (allocator) => {
    const lease = await allocator.allocate({ range: only(a), ownerPid: null });
    assert.equal(lease.owner, null);
    assert.equal(Date.parse(lease.expires_at!) - Date.parse(lease.created_at), 300_000);
    const short = await allocator.allocate({ range: only(a), ownerPid: null, ttlMs: 1000 })
      .catch((e) => e);
    assert.ok(short instanceof NoFreePortError); // still leased
    now += 300_001;
    const [listed] = await allocator.list();
    assert.equal(listed.expired, true);
    assert.equal(listed.alive, false);
    const again = await allocator.allocate({ range: only(a), ownerPid: null, ttlMs: 1000 });
    assert.equal(again.port, a);
    now += 1000;
    const dropped = await allocator.gc();
    assert.deepEqual(dropped.map((l) => l.port), [a]);
    assert.deepEqual(await allocator.list(), []);
  }, { now: () => now });
});

Deno.test("a lease whose PID now belongs to another process is reclaimed", async () => {
  const [a] = await testPorts(1);
  await withAllocator(async (allocator, dir) => {
    const self = await readProcessIdentity(Deno.pid);
    assert.ok(self);
    const data: RegistryData = {
      version: 1,
      leases: [{
        port: a,
        owner: { ...self, startTime: "1" }, // same PID, started at another time
        host: "127.0.0.1",
        label: "old",
        created_at: new Date().toISOString(),
        expires_at: null,
      }],
    };
    await Deno.writeTextFile(join(dir, "ports.json"), formatRegistry(data));
    const [listed] = await allocator.list();
    assert.equal(listed.owner_alive, false);
    const lease = await allocator.allocate({ range: only(a) });
    assert.equal(lease.port, a);
    assert.equal(lease.owner?.startTime, self.startTime);
  });
});

Deno.test("transfer hands a lease to another live process", async () => {
  const [a] = await testPorts(1);
  await withAllocator(async (allocator) => {
    await allocator.allocate({ range: only(a) });
    const moved = await allocator.transfer(a, Deno.ppid);
    assert.equal(moved?.owner?.pid, Deno.ppid);
    assert.equal((await allocator.list())[0].owner?.pid, Deno.ppid);
    assert.equal(await allocator.transfer(a + 1, Deno.ppid), null);
  });
});

Deno.test("a registry that does not parse is moved aside with a warning, and allocation goes on", async () => {
  const [a] = await testPorts(1);
  const warnings: string[] = [];
  await withAllocator(async (allocator, dir) => {
    await Deno.writeTextFile(join(dir, "ports.json"), '{"version":1,"leases":[{"port":');
    const lease = await allocator.allocate({ range: only(a) });
    assert.equal(lease.port, a);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /could not be read .*moved it to .*ports\.json\.corrupt-/);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    const aside = names.filter((n) => /^ports\.json\.corrupt-\d{4}-\d\d-\d\dT[\d-]+Z$/.test(n));
    assert.equal(aside.length, 1);
    assert.equal(
      await Deno.readTextFile(join(dir, aside[0])),
      '{"version":1,"leases":[{"port":',
    );
    const parsed = parseRegistry(await Deno.readTextFile(join(dir, "ports.json")), "ports.json");
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.data.leases.map((l) => l.port), [a]);
  }, { onWarning: (message) => warnings.push(message) });
});

Deno.test("malformed lease records are dropped with a warning; the rest are kept", async () => {
  const [a, b] = await testPorts(2);
  const warnings: string[] = [];
  await withAllocator(async (allocator, dir) => {
    const good = {
      port: a,
      owner: null,
      host: "127.0.0.1",
      label: null,
      created_at: new Date().toISOString(),
      expires_at: new Date(Date.now() + 60_000).toISOString(),
    };
    const text = JSON.stringify({
      version: 1,
      leases: [good, { port: "x" }, { ...good, port: 0 }],
    });
    await Deno.writeTextFile(join(dir, "ports.json"), text);
    const lease = await allocator.allocate({ preferred: a, range: only(b) });
    assert.equal(lease.port, b); // a is still leased
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /dropped 2 malformed lease record/);
  }, { onWarning: (message) => warnings.push(message) });
});

Deno.test("a registry written by a newer courier is left untouched", async () => {
  await withAllocator(async (allocator, dir) => {
    const text = JSON.stringify({ version: 2, leases: [] });
    await Deno.writeTextFile(join(dir, "ports.json"), text);
    await assert.rejects(allocator.allocate({ range: { start: 41000, end: 41010 } }), (error) => {
      assert.ok(error instanceof PortRegistryError);
      assert.match(error.message, /newer courier/);
      return true;
    });
    assert.equal(await Deno.readTextFile(join(dir, "ports.json")), text);
  });
});

Deno.test("invalid arguments are refused before anything is written", async () => {
  await withAllocator(async (allocator, dir) => {
    await assert.rejects(allocator.allocate({ range: { start: 10, end: 5 } }), RangeError);
    await assert.rejects(allocator.allocate({ preferred: 70000 }), RangeError);
    await assert.rejects(allocator.allocate({ ownerPid: null, ttlMs: 0 }), RangeError);
    await assert.rejects(allocator.release(0), RangeError);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("parsePortRange accepts START-END and explains what is wrong otherwise", () => {
  assert.deepEqual(parsePortRange("10000-10999"), { start: 10000, end: 10999 });
  assert.deepEqual(parsePortRange(" 80 - 80 "), { start: 80, end: 80 });
  assert.match(parsePortRange("10000") as string, /START-END/);
  assert.match(parsePortRange("0-10") as string, /1 to 65535/);
  assert.match(parsePortRange("1-65536") as string, /1 to 65535/);
  assert.match(parsePortRange("20-10") as string, /greater than END/);
});

Deno.test("socketTablePorts reads the local port and TIME_WAIT state of every line of /proc/net/tcp*", () => {
  const text = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:2710 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1",
    "   1: 0100007F:2711 0100007F:C350 06 00000000:00000000 03:00000EDC 00000000     0        0 0 3",
    "   2: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0",
  ].join("\n");
  assert.deepEqual(socketTablePorts(text), [
    { port: 10000, timeWait: false },
    { port: 10001, timeWait: true },
    { port: 8080, timeWait: false },
  ]);
});

Deno.test("a socket census holds until a connection is accepted, or an outgoing one could land in range", () => {
  const census = { netns: "n", passive_opens: 5, active_opens: 9, taken_at: 1000, ports: [] };
  const counters = { netns: "n", passive: 5, active: 9, ephemeral: { start: 32768, end: 60999 } };
  const low = [{ start: 10000, end: 10999 }];
  const high = [{ start: 40000, end: 40010 }];
  assert.ok(censusCovers(census, counters, { now: 2000, candidates: low }));
  // Outgoing connections take ephemeral local ports: they matter only for ranges there.
  assert.ok(censusCovers(census, { ...counters, active: 10 }, { now: 2000, candidates: low }));
  assert.ok(!censusCovers(census, { ...counters, active: 10 }, { now: 2000, candidates: high }));
  // An accepted connection may sit on any port.
  assert.ok(!censusCovers(census, { ...counters, passive: 6 }, { now: 2000, candidates: low }));
  assert.ok(!censusCovers(census, { ...counters, netns: "m" }, { now: 2000, candidates: low }));
  assert.ok(!censusCovers(census, counters, { now: 1000 + 60_000, candidates: low }));
  assert.ok(!censusCovers(null, counters, { now: 2000, candidates: low }));
  assert.ok(!censusCovers(census, null, { now: 2000, candidates: low }));
});

Deno.test("formatRegistry writes one lease per line and parses back to the same registry", () => {
  const data: RegistryData = {
    version: 1,
    leases: [
      {
        port: 10001,
        owner: { pid: 42, startTime: "123", bootId: "b" },
        host: "127.0.0.1",
        label: "b",
        created_at: "2030-01-01T00:00:00.000Z",
        expires_at: null,
      },
      {
        port: 10000,
        owner: null,
        host: "0.0.0.0",
        label: null,
        created_at: "2030-01-01T00:00:00.000Z",
        expires_at: "2030-01-01T00:05:00.000Z",
      },
    ],
    sockets: null,
  };
  const text = formatRegistry(data);
  assert.equal(text.split("\n").filter((line) => line.includes('"port"')).length, 2);
  const parsed = parseRegistry(text, "ports.json");
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.data.leases.map((l) => l.port), [10000, 10001]);
  assert.deepEqual(parsed.data.leases[1], data.leases[0]);
  assert.equal(parseRegistry("[]", "ports.json").ok, false);
});

Deno.test("parseRegistry reads its own layout line by line and any other JSON layout alike", () => {
  const lease = (port: number) => ({
    port,
    owner: { pid: 42, startTime: "123", bootId: "b" },
    host: "127.0.0.1",
    label: null,
    created_at: "2030-01-01T00:00:00.000Z",
    expires_at: null,
  });
  const sockets = {
    netns: "n",
    passive_opens: 1,
    active_opens: 2,
    taken_at: 3,
    ports: [22],
    time_wait: [],
  };
  const data: RegistryData = { version: 1, leases: [lease(10002), lease(10001)], sockets };
  const text = formatRegistry(data);
  const first = parseRegistry(text, "ports.json");
  const again = parseRegistry(text, "ports.json"); // from the cache this time
  const sorted = { ...data, leases: [lease(10001), lease(10002)] };
  const pretty = parseRegistry(JSON.stringify(sorted, null, 2), "ports.json");
  for (const parsed of [first, again, pretty]) {
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.data.leases, [lease(10001), lease(10002)]);
    assert.deepEqual(parsed.data.sockets, sockets);
    assert.equal(parsed.dropped, 0);
  }
  // What was read is written back unchanged.
  assert.ok(first.ok);
  assert.equal(formatRegistry(first.data), text);
  // Shared between reads, so frozen: a change must replace the lease.
  assert.throws(() => {
    (first.data.leases[0] as { port: number }).port = 1;
  }, TypeError);
  // A malformed lease line is dropped; a line that is not JSON makes the file unreadable.
  const lines = text.split("\n");
  const malformed = [lines[0], '  {"port":"x"},', ...lines.slice(1)].join("\n");
  const withMalformed = parseRegistry(malformed, "ports.json");
  assert.ok(withMalformed.ok);
  assert.equal(withMalformed.dropped, 1);
  assert.equal(withMalformed.data.leases.length, 2);
  const broken = [lines[0], "  {not json},", ...lines.slice(1)].join("\n");
  assert.equal(parseRegistry(broken, "ports.json").ok, false);
  // A line without its comma is not the layout, and not valid JSON either.
  assert.equal(parseRegistry(text.replace("},\n", "}\n"), "ports.json").ok, false);
});

Deno.test("the registry read stays open until the registry that replaces it is on disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "courier-registry-" });
  try {
    const path = join(dir, "ports.json");
    const options = { onWarning: (message: string) => assert.fail(message) };
    assert.equal(readRegistry(path, options).file, null); // no registry yet: nothing to hold
    const lease = {
      port: 20000,
      owner: null,
      host: "127.0.0.1",
      label: null,
      created_at: "2030-01-01T00:00:00.000Z",
      expires_at: "2030-01-01T00:05:00.000Z",
    };
    await writeRegistry(path, { version: 1, leases: [lease], sockets: null })();
    const read = readRegistry(path, options);
    assert.deepEqual(read.data.leases, [lease]);
    assert.ok(read.file);
    const sync = writeRegistry(path, { version: 1, leases: [], sockets: null }, {
      replaces: read.file,
    });
    // Replaced, but still open (its blocks are not freed under the lock)…
    const current = readRegistry(path, options);
    current.file?.close();
    assert.deepEqual(current.data.leases, []);
    assert.equal(read.file.statSync().size > 0, true);
    // …until the new registry is on disk.
    await sync();
    assert.throws(() => read.file!.statSync(), Deno.errors.BadResource);
    readRegistry(path, options).file?.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a queued request's answer counts only once its line is complete", async () => {
  const dir = await Deno.makeTempDir({ prefix: "courier-queue-" });
  try {
    const queue = new RequestQueue(dir);
    const self = await readProcessIdentity(Deno.pid);
    assert.ok(self);
    const request: QueuedRequest = {
      id: `${String(Date.now()).padStart(13, "0")}-${Deno.pid}-1`,
      requester: self,
      netns: null,
      op: { kind: "release", port: 20000, owner_pid: null },
    };
    queue.post(request);
    assert.deepEqual(queue.scan(Date.now()).pending, [request]);
    // A holder appending its answer, caught halfway: not an answer yet, still pending.
    const file = join(dir, `${request.id}.req`);
    await Deno.writeTextFile(file, '{"released":', { append: true });
    assert.equal(queue.takeAnswer(request.id), null);
    assert.equal(queue.scan(Date.now()).pending.length, 1);
    await Deno.writeTextFile(file, "true}\n", { append: true });
    assert.deepEqual(queue.takeAnswer(request.id), { released: true });
    const scan = queue.scan(Date.now());
    assert.deepEqual(scan.pending, []);
    assert.deepEqual([...scan.answered], [[request.id, { released: true }]]);
    queue.withdraw(request.id);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a malformed or abandoned request in the queue is never served, and is cleaned up", async () => {
  const [a] = await testPorts(1);
  await withAllocator(async (allocator, dir) => {
    await allocator.prepare();
    const queue = join(dir, "ports.queue");
    // A minute-old request file that is not a valid request, and one from a process long gone.
    const bad = "0000000000001-1-1";
    await Deno.writeTextFile(
      join(queue, `${bad}.req`),
      JSON.stringify({ id: bad, requester: { pid: 1, startTime: "x" }, op: { kind: "allocate" } }),
    );
    const dead = `${String(Date.now()).padStart(13, "0")}-999999999-1`;
    const op = {
      kind: "allocate",
      owner: null,
      preferred: a,
      range: only(a),
      host: "127.0.0.1",
      ttl_ms: 1000,
      label: null,
    };
    await Deno.writeTextFile(
      join(queue, `${dead}.req`),
      JSON.stringify({ id: dead, requester: { pid: 999999999, startTime: "1" }, netns: null, op }),
    );
    // An answer file of an older courier (answers are appended to requests now) whose
    // request was withdrawn.
    await Deno.writeTextFile(join(queue, `${dead}9.ans`), JSON.stringify({ released: true }));
    const lease = await allocator.allocate({ range: only(a) });
    assert.equal(lease.port, a); // the dead requester's request did not take it
    assert.deepEqual([...Deno.readDirSync(queue)], []);
  });
});

Deno.test("a prepared allocator waits for a holder with its kept watch, serves concurrent calls, and closes cleanly", async () => {
  const [a, b] = await testPorts(2);
  const range = { start: Math.min(a, b), end: Math.max(a, b) };
  await withAllocator(async (allocator, dir) => {
    await allocator.prepare();
    // Another handle holds the lock: both calls queue and wait (one on the kept watch).
    const holder = await Deno.open(join(dir, "ports.lock"), { read: true, write: true });
    await holder.lock(true);
    const calls = [
      allocator.allocate({ range, preferred: a }),
      allocator.allocate({ range, preferred: a }),
    ];
    const queue = join(dir, "ports.queue");
    while ([...Deno.readDirSync(queue)].length < 2) await new Promise((r) => setTimeout(r, 1));
    holder.close(); // lets go and wakes them, as a holder does
    const ports = (await Promise.all(calls)).map((lease) => lease.port).sort((x, y) => x - y);
    assert.deepEqual(ports, [range.start, range.end]);
    assert.equal((await allocator.list()).length, 2);
    // Closing lets go of the kept handles (the test's resource check sees none left),
    // and the allocator still works without them.
    await allocator.close();
    assert.equal(await allocator.release(a), true);
    assert.equal(await allocator.release(b), true);
  });
});

Deno.test("a queued request answered by another lock holder returns that answer, and leaves nothing behind", async () => {
  const [a] = await testPorts(1);
  await withAllocator(async (allocator, dir) => {
    await allocator.prepare();
    const holder = await Deno.open(join(dir, "ports.lock"), { read: true, write: true });
    await holder.lock(true);
    const call = allocator.release(a);
    const queue = join(dir, "ports.queue");
    let names: string[] = [];
    while (names.length === 0) {
      await new Promise((r) => setTimeout(r, 1));
      names = [...Deno.readDirSync(queue)].map((entry) => entry.name);
    }
    assert.equal(names.length, 1);
    assert.match(names[0], /^\d{13}-\d+-\d+\.req$/);
    // Serve it as a holder does: the answer appended to the request as a line, then let go.
    await Deno.writeTextFile(join(queue, names[0]), `${JSON.stringify({ released: true })}\n`, {
      append: true,
    });
    holder.close();
    assert.equal(await call, true); // the registry has no lease on `a`: only the answer says so
    assert.deepEqual([...Deno.readDirSync(queue)], []);
  });
});

Deno.test("interruptReachesChild: only when both are in the terminal's foreground group", () => {
  const fg = { pgrp: 100, tpgid: 100 };
  assert.equal(interruptReachesChild(fg, { pgrp: 100, tpgid: 100 }), true);
  // The child moved to a group of its own: the terminal's Ctrl-C does not reach it.
  assert.equal(interruptReachesChild(fg, { pgrp: 200, tpgid: 100 }), false);
  // Run in the background, or with no terminal at all: a SIGINT came from kill.
  assert.equal(interruptReachesChild({ pgrp: 100, tpgid: 300 }, { pgrp: 100, tpgid: 300 }), false);
  assert.equal(interruptReachesChild({ pgrp: 100, tpgid: -1 }, { pgrp: 100, tpgid: -1 }), false);
  // Unknown (the child is gone, or ps failed): pass it on.
  assert.equal(interruptReachesChild(null, fg), false);
  assert.equal(interruptReachesChild(fg, null), false);
});
