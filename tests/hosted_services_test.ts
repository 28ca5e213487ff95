/**
 * The daemon signals ready before its services load: `prepare` before the
 * bind (a bad config.json still refuses the start), `start` after ready,
 * requests for a service that is still starting wait for it (bounded, then
 * 503 with Retry-After), `/health` answers at once.
 */
import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import type { RequestContext } from "../lib/http/mod.ts";
import { type Logger, nullLogger } from "../lib/log/mod.ts";
import { type DaemonExtension, HostedServices } from "../lib/service/mod.ts";
import { authedFetch, courier, MAIN, runDaemonInProcess, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

/** A promise to resolve by hand. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** A service at `/<name>/…` whose start waits for `started` and that records what happens. */
function service(
  name: string,
  events: string[],
  options: { started?: Promise<void>; fail?: string; owns?: boolean } = {},
): DaemonExtension {
  return {
    name,
    prepare() {
      events.push(`${name} prepare`);
      return Promise.resolve();
    },
    async start() {
      events.push(`${name} start`);
      await options.started;
      if (options.fail) throw new Error(options.fail);
      events.push(`${name} running`);
    },
    owns: options.owns === false ? undefined : (url) => url.pathname.startsWith(`/${name}/`),
    handle(_request, url) {
      if (!url.pathname.startsWith(`/${name}/`)) return Promise.resolve(null);
      return Promise.resolve(new Response(`${name} answered`));
    },
    health: () => ({ [`${name}_ok`]: true }),
    draining: () => void events.push(`${name} draining`),
    stop() {
      events.push(`${name} stop`);
      return Promise.resolve();
    },
  };
}

/** The guard chain's context of an authenticated request for `url`. */
function requestContext(url: string): RequestContext {
  return {
    url: new URL(url),
    peer: "127.0.0.1",
    authenticated: true,
    stillAuthenticated: () => true,
  };
}

function recordingLog(lines: string[]): Logger {
  return {
    info: (line) => void lines.push(`INFO ${line}`),
    warn: (line) => void lines.push(`WARN ${line}`),
    error: (line) => void lines.push(`ERROR ${line}`),
    close() {},
  };
}

const context = (log: Logger = nullLogger()) => ({
  layout: homeLayout("/nonexistent-courier-home"),
  log,
  options: {},
});

const request = (path: string) => new Request(`http://127.0.0.1${path}`);

Deno.test("HostedServices: prepare in order, start after, one service after the other", async () => {
  const events: string[] = [];
  const first = gate();
  const services = new HostedServices(
    [service("a", events, { started: first.promise }), service("b", events)],
    context(),
  );
  await services.prepare();
  assert.deepEqual(events, ["a prepare", "b prepare"]);
  assert.deepEqual(services.states, { a: "waiting", b: "waiting" });
  const started = services.start();
  await Promise.resolve();
  assert.deepEqual(services.states, { a: "starting", b: "waiting" });
  first.open();
  await started;
  assert.deepEqual(events.slice(2), ["a start", "a running", "b start", "b running"]);
  assert.deepEqual(services.health(), {
    a_ok: true,
    b_ok: true,
    services: { a: { state: "running" }, b: { state: "running" } },
  });
});

Deno.test("HostedServices: a request for a starting service waits for it; others do not", async () => {
  const events: string[] = [];
  const slow = gate();
  const services = new HostedServices(
    [service("mail", events, { started: slow.promise })],
    context(),
  );
  services.start();
  // Not the service's route: answered by the daemon at once (null: "not mine").
  assert.equal(
    await services.handle(
      request("/health"),
      new URL("http://x/health"),
      requestContext("http://x/health"),
    ),
    null,
  );
  assert.deepEqual(services.health(), { services: { mail: { state: "starting" } } });
  let answered = false;
  const waiting = services.handle(
    request("/mail/x"),
    new URL("http://x/mail/x"),
    requestContext("http://x/mail/x"),
  ).then((r) => {
    answered = true;
    return r;
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(answered, false, "it waits while the service starts");
  slow.open();
  const response = await waiting;
  assert.equal(response?.status, 200);
  assert.equal(await response?.text(), "mail answered");
});

Deno.test("HostedServices: a wait in vain ends in 503 with Retry-After", async () => {
  const never = gate();
  const services = new HostedServices(
    [service("mail", [], { started: never.promise })],
    context(),
    { startWaitMs: 100, retryAfterS: 2 },
  );
  services.start();
  const response = await services.handle(
    request("/mail/x"),
    new URL("http://x/mail/x"),
    requestContext("http://x/mail/x"),
  );
  assert.equal(response?.status, 503);
  assert.equal(response?.headers.get("retry-after"), "2");
  assert.match((await response!.json()).error, /the mail service is still starting; retry in 2 s/);
  never.open();
});

Deno.test("HostedServices: a failed start is logged and named by 503; the next service still starts", async () => {
  const events: string[] = [];
  const lines: string[] = [];
  const services = new HostedServices(
    [service("mail", events, { fail: "mailbox unreadable" }), service("chat", events)],
    context(recordingLog(lines)),
  );
  await services.start();
  assert.deepEqual(services.states, { mail: "failed", chat: "running" });
  const response = await services.handle(
    request("/mail/x"),
    new URL("http://x/mail/x"),
    requestContext("http://x/mail/x"),
  );
  assert.equal(response?.status, 503);
  assert.match(
    (await response!.json()).error,
    /mail service failed to start \(Error: mailbox unreadable\)/,
  );
  assert.equal(
    await (await services.handle(
      request("/chat/x"),
      new URL("http://x/chat/x"),
      requestContext("http://x/chat/x"),
    ))?.text(),
    "chat answered",
  );
  assert.deepEqual(services.health().services, {
    mail: { state: "failed", error: "Error: mailbox unreadable" },
    chat: { state: "running" },
  });
  assert.ok(
    lines.some((l) => /^ERROR mail: start failed: Error: mailbox unreadable/.test(l)),
    lines.join("\n"),
  );
  await services.stop();
  assert.deepEqual(
    events.filter((e) => e.endsWith("stop")),
    ["chat stop"],
    "only what started stops",
  );
});

Deno.test("HostedServices: without owns(), every request but the daemon's routes waits", async () => {
  const slow = gate();
  const services = new HostedServices(
    [service("x", [], { started: slow.promise, owns: false })],
    context(),
    {
      startWaitMs: 50,
    },
  );
  services.start();
  assert.equal(
    await services.handle(
      request("/api/v1/status"),
      new URL("http://x/api/v1/status"),
      requestContext("http://x/api/v1/status"),
    ),
    null,
  );
  assert.equal(
    (await services.handle(
      request("/x/y"),
      new URL("http://x/x/y"),
      requestContext("http://x/x/y"),
    ))
      ?.status,
    503,
  );
  slow.open();
});

Deno.test("HostedServices: stop during a start waits for it, starts nothing more, stops in reverse", async () => {
  const events: string[] = [];
  const slow = gate();
  const services = new HostedServices(
    [service("a", events), service("b", events, { started: slow.promise }), service("c", events)],
    context(),
  );
  services.start();
  await new Promise((resolve) => setTimeout(resolve, 10));
  services.draining();
  const stopped = services.stop();
  slow.open();
  await stopped;
  assert.deepEqual(events, [
    "a start",
    "a running",
    "b start",
    "a draining",
    "b running",
    "b stop",
    "a stop",
  ]);
  assert.equal(services.states.c, "waiting");
});

Deno.test("the daemon is ready and /health answers while a service still starts", async () => {
  await withHome(async (h) => {
    const slow = gate();
    const events: string[] = [];
    const daemon = runDaemonInProcess({
      home: h.home,
      port: await leaseTestPort(),
      extensions: [service("slow", events, { started: slow.promise })],
      serviceStartWaitMs: 200,
    });
    try {
      const state = await daemon.ready;
      assert.deepEqual(events, ["slow prepare", "slow start"], "ready before the start ended");
      const health = await authedFetch(h.home, `${state.api_url}/health`).then((r) => r.json());
      assert.equal(health.status, "healthy");
      assert.deepEqual(health.services, { slow: { state: "starting" } });
      const early = await authedFetch(h.home, `${state.api_url}/slow/x`);
      assert.equal(early.status, 503);
      assert.equal(early.headers.get("retry-after"), "1");
      await early.body?.cancel();
      const waiting = authedFetch(h.home, `${state.api_url}/slow/x`);
      slow.open();
      const answer = await waiting;
      assert.equal(answer.status, 200);
      assert.equal(await answer.text(), "slow answered");
      const after = await authedFetch(h.home, `${state.api_url}/health`).then((r) => r.json());
      assert.equal(after.slow_ok, true);
    } finally {
      slow.open();
      assert.equal(await daemon.stop(), 0);
    }
    assert.deepEqual(events.slice(-2), ["slow draining", "slow stop"]);
  });
});

Deno.test("a bad config.json still refuses the start at once: exit 1 with the reason", async () => {
  await withHome(async (h) => {
    await Deno.mkdir(h.home, { recursive: true });
    const config = `${h.home}/config.json`;
    for (
      const [text, reason] of [
        ['{"debounce_window_ms": ', /config\.json: not valid JSON/],
        [
          '{"debounce_window_ms": -5}',
          /"debounce_window_ms" must be a non-negative number, not -5/,
        ],
        [
          '{"outbound": {"slack": {"url": "ftp://x"}}}',
          /outbound\.slack\.url must be an http\(s\) URL/,
        ],
      ] as const
    ) {
      await Deno.writeTextFile(config, text);
      const result = await h.run(["start", "--port", String(await leaseTestPort())]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr.split("\n")[0], reason);
      assert.equal((await h.run(["status"])).code, 3, "nothing runs");
    }
  });
});

Deno.test("the daemon loads the mail service after it signalled ready", async () => {
  await withHome(async (h) => {
    const port = String(await leaseTestPort());
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "-L",
        "debug",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        MAIN,
        "start",
        "--foreground",
        "--home",
        h.home,
        "--port",
        port,
      ],
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let log = "";
    try {
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      while (!/mail: started in \d+ ms/.test(log)) {
        const { value, done } = await reader.read();
        if (done) break;
        log += value;
      }
      reader.releaseLock();
    } finally {
      child.kill("SIGINT");
      await child.status;
      await child.stderr.cancel().catch(() => {});
    }
    const lines = log.split("\n");
    const ready = lines.findIndex((l) => /started: listening on/.test(l));
    assert.ok(ready > 0, "the daemon logged that it listens");
    const modules = (from: number, to: number) =>
      lines.slice(from, to).flatMap((l) => l.match(/ES module: ([^,\s]+)/)?.[1] ?? []);
    const before = modules(0, ready);
    if (before.length === 0) {
      console.log(`skipped: deno -L debug names no evaluated modules (Deno ${Deno.version.deno})`);
      return;
    }
    const early = before.filter((m) => /lib\/mail\/service\.ts|yaml|ext:deno_node\/|node:/.test(m));
    assert.deepEqual(early, [], "nothing heavy before ready");
    assert.ok(
      before.some((m) => m.endsWith("lib/mail/extension.ts")),
      "the light adapter checks the settings",
    );
    assert.ok(
      modules(ready, lines.length).some((m) => m.endsWith("lib/mail/service.ts")),
      "then the service loads",
    );
  });
});

Deno.test("courier itself: start returns while mail may still be starting, and mail answers after", async () => {
  await withHome(async (h) => {
    const start = await h.run(["start", "--port", String(await leaseTestPort()), "--json"]);
    assert.equal(start.code, 0, start.stderr);
    const { api_url } = JSON.parse(start.stdout);
    const list = await authedFetch(h.home, `${api_url}/api/v1/messages`);
    assert.equal(list.status, 200, "a request right after start waits for the mail service");
    assert.deepEqual((await list.json()).messages, []);
    const health = await authedFetch(h.home, `${api_url}/health`).then((r) => r.json());
    assert.deepEqual(health.services, { mail: { state: "running" } });
    assert.ok(health.metrics, "the mail service's fields are there once it runs");
    assert.equal((await courier(["stop", "--home", h.home])).code, 0);
  });
});
