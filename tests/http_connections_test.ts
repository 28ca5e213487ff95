/**
 * Connection exhaustion: the daemon under a low open-file limit with more
 * idle connections than it may hold, its connection limits, timeouts and
 * accept errors.
 */
import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { parseOpenFileLimit, readOpenFileLimit } from "../lib/proc/mod.ts";
import {
  type ConnectionLimits,
  connectionLimitsFromConfig,
  connectionsWithin,
  type CourierHttpServer,
  DEFAULT_CONNECTION_LIMITS,
  serveHttp,
} from "../lib/service/mod.ts";
import { courier, json, type RunResult, type TestHome, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const decoder = new TextDecoder();

async function hasPrlimit(): Promise<string | null> {
  try {
    const out = await new Deno.Command("prlimit", { args: ["--version"], stdout: "null" }).output();
    return out.success ? null : "prlimit does not run here";
  } catch {
    return "prlimit (util-linux) is not installed";
  }
}
const NO_PRLIMIT = await hasPrlimit();

/** Runs `courier args…` in `h`'s home with its open-file limit set to `nofile` (soft:hard). */
function runLimited(h: TestHome, nofile: string, args: string[]): Promise<RunResult> {
  return courier([...args, "--home", h.home], {
    env: { COURIER_LEASE_DIR: h.leaseDir },
    prefix: ["prlimit", `--nofile=${nofile}`],
  });
}

/** Opens `n` TCP connections to `port` that send nothing. */
async function idleConnections(port: number, n: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < n; i++) conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  return conns;
}

function closeAll(conns: Deno.Conn[]): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // closed by the server already
    }
  }
}

async function health(port: number): Promise<number> {
  // A bound for a hung server, not a speed threshold.
  const response = await fetch(`http://127.0.0.1:${port}/health`, {
    signal: AbortSignal.timeout(60_000),
  });
  await response.body?.cancel();
  return response.status;
}

Deno.test({
  name:
    `with 512 open files allowed, 700 idle connections held: /health answers and the daemon lives${
      NO_PRLIMIT ? ` (skipped: ${NO_PRLIMIT})` : ""
    }`,
  ignore: NO_PRLIMIT !== null,
  async fn() {
    await withHome(async (h) => {
      const port = await leaseTestPort();
      const started = await runLimited(h, "512:512", ["start", "--port", String(port), "--json"]);
      assert.equal(started.code, 0, started.stderr);
      const { pid } = json<{ pid: number }>(started);
      const conns = await idleConnections(port, 700);
      try {
        assert.equal(await health(port), 200);
        assert.equal(await health(port), 200);
        const status = json(await h.run(["status", "--json"]));
        assert.equal(status.state, "running");
        assert.equal(status.pid, pid);
      } finally {
        closeAll(conns);
      }
      const log = await Deno.readTextFile(homeLayout(h.home).logFile);
      assert.match(log, /http: at most 384 connections \(open-file limit 512\)/);
      assert.match(log, /connection limit reached \(384 open\): closed the idle connection/);
      assert.doesNotMatch(log, /crashed/);
      const stopped = await h.run(["stop"]);
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.doesNotMatch(stopped.stdout, /SIGKILL/);
    });
  },
});

/** A server for one test: `/health` answers at once, `/stream` streams until told to stop. */
async function withServer(
  limits: Partial<ConnectionLimits>,
  fn: (server: CourierHttpServer, streams: StreamControl) => Promise<void>,
  options: { drainTimeoutMs?: number } = {},
): Promise<void> {
  const port = await leaseTestPort();
  const streams = new StreamControl();
  const server = serveHttp({
    hostname: "127.0.0.1",
    port,
    limits,
    drainTimeoutMs: options.drainTimeoutMs,
    handler: (request) =>
      new URL(request.url).pathname === "/stream"
        ? new Response(streams.open())
        : new Response("ok"),
  });
  try {
    await fn(server, streams);
  } finally {
    streams.endAll();
    await server.shutdown();
  }
}

/** Streaming response bodies a test ends when it likes. */
class StreamControl {
  readonly #controllers: ReadableStreamDefaultController<Uint8Array>[] = [];

  open(): ReadableStream<Uint8Array> {
    return new ReadableStream({
      start: (controller) => {
        this.#controllers.push(controller);
        controller.enqueue(new TextEncoder().encode("data: hello\n\n"));
      },
    });
  }

  /** Sends a chunk on every open stream. */
  tick(): void {
    for (const c of this.#controllers) {
      try {
        c.enqueue(new TextEncoder().encode("data: tick\n\n"));
      } catch {
        // closed
      }
    }
  }

  end(index: number): void {
    try {
      this.#controllers[index].close();
    } catch {
      // closed
    }
  }

  endAll(): void {
    this.#controllers.forEach((_, i) => this.end(i));
  }
}

/** Reads until the peer closes; returns everything read. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      return text; // reset by the server
    }
    if (n === null) return text;
    text += decoder.decode(buffer.subarray(0, n));
  }
}

async function request(conn: Deno.Conn, path: string): Promise<void> {
  await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`));
}

Deno.test("at the connection limit the longest-idle connection is closed to admit a new one", async () => {
  await withServer({ maxConnections: 4 }, async (server) => {
    const port = server.addr.port;
    const conns = await idleConnections(port, 10);
    try {
      assert.equal(await health(port), 200);
      // The first ones connected were idle longest: the server closed them.
      assert.equal(await readToEnd(conns[0]), "");
      const stats = server.stats();
      assert.ok(stats.open <= 4, JSON.stringify(stats));
      assert.ok(stats.evicted >= 7, JSON.stringify(stats));
    } finally {
      closeAll(conns);
    }
  });
});

Deno.test("a connection with a request in flight is never closed for another: new ones wait", async () => {
  await withServer({ maxConnections: 2 }, async (server, streams) => {
    const port = server.addr.port;
    const a = await fetch(`http://127.0.0.1:${port}/stream`);
    const b = await fetch(`http://127.0.0.1:${port}/stream`);
    const readerA = a.body!.getReader();
    const readerB = b.body!.getReader();
    assert.match(decoder.decode((await readerA.read()).value), /hello/);
    assert.match(decoder.decode((await readerB.read()).value), /hello/);
    let answered = false;
    const third = health(port).then((status) => {
      answered = true;
      return status;
    });
    // Both connections stream: the third waits in the listen queue, the streams go on.
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      streams.tick();
      assert.match(decoder.decode((await readerA.read()).value), /tick/);
      assert.match(decoder.decode((await readerB.read()).value), /tick/);
    }
    assert.equal(answered, false);
    assert.deepEqual([server.stats().open, server.stats().busy], [2, 2]);
    streams.end(0);
    assert.equal((await readerA.read()).done, true);
    assert.equal(await third, 200);
    streams.end(1);
    await readerB.cancel();
  });
});

Deno.test("silent and idle connections time out; a streaming response outlives both timeouts", async () => {
  await withServer({ headerTimeoutMs: 200, idleTimeoutMs: 400 }, async (server, streams) => {
    const port = server.addr.port;
    const [silent, keepAlive, streaming] = await idleConnections(port, 3);
    try {
      await request(keepAlive, "/health");
      await request(streaming, "/stream");
      const ticking = setInterval(() => streams.tick(), 100);
      const [silentText, keptText] = await Promise.all([readToEnd(silent), readToEnd(keepAlive)]);
      clearInterval(ticking);
      assert.equal(silentText, "", "a connection that sent nothing is closed");
      assert.match(keptText, /^HTTP\/1\.1 200 OK/, "answered, then closed once idle");
      // Both timeouts have passed (the streaming connection was opened with them): it still streams.
      streams.end(0);
      const streamed = await readToEnd(streaming);
      assert.match(streamed, /data: hello[\s\S]*data: tick[\s\S]*\r\n0\r\n\r\n$/);
      assert.ok(server.stats().timed_out >= 2, JSON.stringify(server.stats()));
    } finally {
      closeAll([silent, keepAlive, streaming]);
    }
  });
});

Deno.test("shutdown answers what is in flight, closes idle connections, and ends streams after the drain timeout", async () => {
  const port = await leaseTestPort();
  let release: () => void = () => {};
  const slow = new Promise<void>((resolve) => (release = resolve));
  const server = serveHttp({
    hostname: "127.0.0.1",
    port,
    drainTimeoutMs: 500,
    handler: async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/slow") {
        await slow;
        return new Response("slow done");
      }
      if (path === "/forever") return new Response(new ReadableStream({ pull() {} }));
      return new Response("ok");
    },
  });
  const [idle, inFlight, forever] = await idleConnections(port, 3);
  await request(inFlight, "/slow");
  await request(forever, "/forever");
  while (server.stats().busy < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  const shutdown = server.shutdown();
  assert.equal(await readToEnd(idle), "", "an idle connection is closed at once");
  release();
  assert.match(await readToEnd(inFlight), /200 OK[\s\S]*slow done$/);
  await shutdown;
  assert.match(await readToEnd(forever), /^HTTP\/1\.1 200 OK/);
  closeAll([idle, inFlight, forever]);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test({
  name: `an accept error (out of file descriptors) does not end the server${
    NO_PRLIMIT ? ` (skipped: ${NO_PRLIMIT})` : ""
  }`,
  ignore: NO_PRLIMIT !== null,
  async fn() {
    const port = await leaseTestPort();
    const child = new Deno.Command("prlimit", {
      args: [
        "--nofile=64:64",
        Deno.execPath(),
        "run",
        "-A",
        "--quiet",
        new URL("./fixtures/limited_server.ts", import.meta.url).pathname,
        String(port),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let errors = "";
    const collecting = (async () => {
      for (;;) {
        const { value, done } = await stderr.read();
        if (done) return;
        errors += value;
      }
    })();
    const conns: Deno.TcpConn[] = [];
    try {
      const stdout = child.stdout.getReader();
      assert.equal(decoder.decode((await stdout.read()).value).trim(), "up");
      stdout.releaseLock();
      conns.push(...await idleConnections(port, 150));
      assert.equal(await health(port), 200);
      assert.equal(await health(port), 200);
    } finally {
      closeAll(conns);
      try {
        child.kill("SIGTERM");
      } catch {
        // it has exited: the status below says how
      }
      const status = await child.status;
      await collecting;
      await child.stdout.cancel().catch(() => {});
      assert.equal(status.code, 0, `the server exited by itself:\n${errors}`);
    }
    assert.match(errors, /accepting a connection failed: Too many open files/, errors);
  },
});

Deno.test("connection limits in config.json: read, checked, and fitted under the open-file limit", () => {
  assert.deepEqual(connectionLimitsFromConfig({}), DEFAULT_CONNECTION_LIMITS);
  assert.deepEqual(
    connectionLimitsFromConfig({ max_connections: 0, idle_timeout_s: 1.5, header_timeout_s: 2 }),
    { maxConnections: Infinity, idleTimeoutMs: 1500, headerTimeoutMs: 2000 },
  );
  assert.throws(
    () => connectionLimitsFromConfig({ max_connections: "many" }, "/h/config.json"),
    /\/h\/config\.json max_connections: must be a whole number \(0 for no limit\), not "many"/,
  );
  assert.throws(() => connectionLimitsFromConfig({ idle_timeout_s: 0 }), /idle_timeout_s: must be/);
  assert.equal(connectionsWithin({ soft: 512, hard: 512 }), 384);
  assert.equal(connectionsWithin({ soft: 256, hard: Infinity }), 192);
  assert.equal(connectionsWithin({ soft: 1_048_576, hard: 1_048_576 }), 786_432);
  assert.equal(connectionsWithin(null), Infinity);
  assert.equal(connectionsWithin({ soft: 40, hard: 40 }), 16);
});

Deno.test("a bad connection limit in config.json stops start with the key named (exit 1)", async () => {
  await withHome(async (h) => {
    await Deno.mkdir(h.home, { recursive: true });
    await Deno.writeTextFile(`${h.home}/config.json`, JSON.stringify({ max_connections: -1 }));
    const result = await h.run(["start", "--port", String(await leaseTestPort())]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /config\.json max_connections: must be a whole number/);
  });
});

Deno.test("the open-file limit is read, and its soft limit raised to the hard one", async () => {
  const limit = await readOpenFileLimit();
  assert.ok(limit && limit.soft > 0 && limit.soft <= limit.hard, JSON.stringify(limit));
  assert.deepEqual(
    parseOpenFileLimit(
      "Max open files            1024                 524288               files     \n",
    ),
    {
      soft: 1024,
      hard: 524288,
    },
  );
  assert.deepEqual(parseOpenFileLimit("Max open files  unlimited  unlimited  files\n"), {
    soft: Infinity,
    hard: Infinity,
  });
  assert.equal(parseOpenFileLimit("Max cpu time  unlimited  unlimited  seconds\n"), null);
});

Deno.test({
  name: `a soft open-file limit below the hard one is raised${
    NO_PRLIMIT ? ` (skipped: ${NO_PRLIMIT})` : ""
  }`,
  ignore: NO_PRLIMIT !== null,
  async fn() {
    // The Deno runtime raises its own limit at start, so lower it first, in a child.
    const script = `
      import { raiseOpenFileLimit, readOpenFileLimit } from ${
      JSON.stringify(new URL("../lib/proc/mod.ts", import.meta.url).href)
    };
      const lower = new Deno.Command("prlimit", { args: ["--pid=" + Deno.pid, "--nofile=100:"] });
      if (!(await lower.output()).success) throw new Error("prlimit failed");
      const before = await readOpenFileLimit();
      console.log(JSON.stringify({ before, after: await raiseOpenFileLimit() }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, decoder.decode(out.stderr));
    const { before, after } = JSON.parse(decoder.decode(out.stdout));
    assert.equal(before.soft, 100);
    assert.equal(after.soft, after.hard);
    assert.ok(after.hard > 100);
  },
});
