/**
 * Each guard of the daemon's HTTP layer on its own, then the chain in
 * order, driven with plain `Request`s (no port, no daemon).
 */
import assert from "node:assert/strict";
import {
  AuthThrottle,
  bearerToken,
  checkOrigin,
  createHostCheck,
  exposureWarning,
  type GuardOptions,
  guardRequests,
  isJsonContentType,
  isLoopbackHost,
  parseAccessSettings,
  peerKey,
  preflightResponse,
  type RequestContext,
  splitHost,
  withCors,
} from "../lib/http/mod.ts";
import { ConfigError } from "../lib/config/mod.ts";
import { preflightInit } from "./helpers/http.ts";

const TOKEN = "t".repeat(43);

Deno.test("host: loopback names on any port, the bound host, allowed_hosts; nothing else", () => {
  assert.deepEqual(splitHost("LocalHost:8644"), { name: "localhost", port: "8644" });
  assert.deepEqual(splitHost("[::1]"), { name: "[::1]", port: null });
  assert.equal(splitHost("evil.example:80/x"), null);
  assert.equal(splitHost("a b"), null);
  const allowed = createHostCheck({
    boundHost: "127.0.0.1",
    allowedHosts: ["courier.example.test", "proxy.example.test:443"],
  });
  for (const host of ["127.0.0.1", "127.0.0.1:8644", "localhost:1", "[::1]:8644", "LOCALHOST"]) {
    assert.equal(allowed(host), true, host);
  }
  assert.equal(allowed("courier.example.test:9999"), true, "a name without port: any port");
  assert.equal(allowed("proxy.example.test:443"), true);
  assert.equal(allowed("proxy.example.test:8443"), false, "a name with port: that port only");
  for (
    const host of [
      null,
      "",
      "evil.example:8644",
      "localhost.:8644", // the FQDN spelling of a rebinding-style name
      "127.0.0.2:8644",
      "127.0.0.1.evil.example",
      "[::2]:8644",
      "0.0.0.0:8644",
    ]
  ) {
    assert.equal(allowed(host), false, String(host));
  }
  const lan = createHostCheck({ boundHost: "192.168.7.9" });
  assert.equal(lan("192.168.7.9:8644"), true, "the bound host, any port");
  assert.equal(lan("192.168.7.10:8644"), false);
  const v6 = createHostCheck({ boundHost: "fd00::5" });
  assert.equal(v6("[fd00::5]:8644"), true);
});

Deno.test("host: a wildcard bind answers to the machine's addresses, read again when they change", () => {
  let addresses = ["127.0.0.1", "10.1.2.3", "fe80::1%eth0"];
  let now = 0;
  const check = createHostCheck({
    boundHost: "0.0.0.0",
    interfaceAddresses: () => addresses,
    now: () => now,
  });
  assert.equal(check("10.1.2.3:8644"), true);
  assert.equal(check("[fe80::1]:8644"), false, "0.0.0.0 is IPv4 only");
  assert.equal(check("0.0.0.0:8644"), false);
  addresses = ["10.9.9.9"];
  assert.equal(check("10.9.9.9:8644"), false, "not read again at once");
  now += 5000;
  assert.equal(check("10.9.9.9:8644"), true);
  const dual = createHostCheck({ boundHost: "::", interfaceAddresses: () => ["fe80::1%eth0"] });
  assert.equal(dual("[fe80::1]:8644"), true);
});

Deno.test("host: loopback binds need no warning; others get one naming the address", () => {
  for (const host of ["127.0.0.1", "127.0.0.5", "localhost", "::1", "[::1]"]) {
    assert.equal(isLoopbackHost(host), true, host);
    assert.equal(exposureWarning(host, 8644), null);
  }
  for (const host of ["0.0.0.0", "::", "192.168.1.5"]) assert.equal(isLoopbackHost(host), false);
  assert.match(exposureWarning("0.0.0.0", 8644)!, /0\.0\.0\.0:8644, beyond loopback/);
  assert.match(exposureWarning("::", 8644)!, /\[::\]:8644/);
});

Deno.test("origin: web pages are refused unless listed; courier's own clients send no Origin", () => {
  const allowedOrigins = new Set(["https://app.example.test"]);
  const check = (headers: Record<string, string>) =>
    checkOrigin(new Headers(headers), { allowedOrigins, host: "127.0.0.1:8644" });
  assert.deepEqual(check({}), { ok: true, cors: null });
  assert.deepEqual(check({ origin: "https://app.example.test" }), {
    ok: true,
    cors: "https://app.example.test",
  });
  assert.deepEqual(check({ origin: "http://127.0.0.1:8644" }), { ok: true, cors: null });
  assert.deepEqual(check({ "sec-fetch-site": "same-origin" }), { ok: true, cors: null });
  assert.deepEqual(check({ "sec-fetch-site": "none" }), { ok: true, cors: null });
  const refused: Record<string, string>[] = [
    { origin: "http://127.0.0.1:3000" },
    { origin: "http://localhost:8644" }, // another origin, though the same machine
    { origin: "null" },
    { origin: "https://app.example.test.evil" },
    { "sec-fetch-site": "cross-site" },
    { "sec-fetch-site": "same-site" },
  ];
  for (const headers of refused) {
    const verdict = check(headers);
    assert.equal(verdict.ok, false, JSON.stringify(headers));
    if (!verdict.ok) assert.match(verdict.reason, /refused/);
  }
});

Deno.test("origin: a preflight answers only what an allowed origin needs; CORS keeps a stream", async () => {
  const preflight = preflightResponse(
    "https://app.example.test",
    new Request("http://127.0.0.1/x", {
      method: "OPTIONS",
      headers: { "access-control-request-private-network": "true" },
    }),
  );
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example.test");
  assert.match(preflight.headers.get("access-control-allow-headers")!, /authorization/);
  assert.equal(preflight.headers.get("access-control-allow-private-network"), "true");
  assert.equal(preflight.headers.get("access-control-allow-credentials"), null);

  // A fetched response has immutable headers: the body must pass through unread.
  let pull: () => void = () => {};
  const pulled = new Promise<void>((resolve) => (pull = resolve));
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("data: first\n\n"));
      pull();
    },
  });
  const immutable = Response.error();
  assert.throws(() => immutable.headers.set("x", "y"));
  const streamed = withCors(new Response(stream, { status: 200 }), "https://app.example.test");
  await pulled;
  const reader = streamed.body!.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), "data: first\n\n", "first event, no end");
  await reader.cancel();
  assert.equal(streamed.headers.get("vary"), "Origin");
});

Deno.test("JSON-only and bearer parsing", () => {
  for (const type of ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"]) {
    assert.equal(isJsonContentType(type), true, type);
  }
  for (
    const type of [
      null,
      "",
      "text/plain",
      "text/plain;charset=UTF-8",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/jsonp",
      "text/json",
    ]
  ) {
    assert.equal(isJsonContentType(type), false, String(type));
  }
  assert.equal(bearerToken(`Bearer ${TOKEN}`), TOKEN);
  assert.equal(bearerToken(`bearer ${TOKEN}`), TOKEN);
  assert.equal(bearerToken(`Basic ${TOKEN}`), null);
  assert.equal(bearerToken(`Bearer ${TOKEN} extra`), null);
  assert.equal(bearerToken("Bearer"), null);
});

Deno.test("throttle: the 11th attempt within 60 s is locked out until the window passes", () => {
  let now = 1_000_000;
  const throttle = new AuthThrottle({ now: () => now });
  for (let i = 0; i < 9; i++) {
    assert.equal(throttle.recordFailure("127.0.0.1"), 0);
    now += 1000;
  }
  assert.equal(throttle.lockedFor("127.0.0.1"), 0);
  assert.equal(
    throttle.recordFailure("127.0.0.1"),
    51_000,
    "10th failure: locked 60 s after the 1st",
  );
  assert.equal(throttle.lockedFor("127.0.0.1"), 51_000);
  assert.equal(throttle.lockedFor("127.0.0.2"), 0, "other peers are not affected");
  now += 50_999;
  assert.equal(throttle.lockedFor("127.0.0.1"), 1);
  now += 1;
  assert.equal(throttle.lockedFor("127.0.0.1"), 0, "free once the oldest failure is 60 s old");
  assert.equal(throttle.recordFailure("127.0.0.1"), 1000, "but ten in 60 s lock it again");
});

Deno.test("throttle: failures spread over more than 60 s never lock; memory is bounded", () => {
  let now = 0;
  const throttle = new AuthThrottle({ now: () => now, maxPeers: 100 });
  for (let i = 0; i < 50; i++) {
    assert.equal(throttle.recordFailure("10.0.0.1"), 0, `failure ${i}`);
    now += 7000;
  }
  for (let i = 0; i < 10_000; i++) throttle.recordFailure(`10.1.${i >> 8}.${i & 255}`);
  assert.ok(throttle.size <= 100, `${throttle.size} peers remembered`);
  for (let i = 0; i < 10; i++) throttle.recordFailure("10.2.0.1");
  assert.ok(throttle.lockedFor("10.2.0.1") > 0, "the newest peer is kept");
});

Deno.test("throttle: peers are keyed by address, IPv6 by its /64", () => {
  assert.equal(peerKey("127.0.0.1"), "127.0.0.1");
  assert.equal(peerKey("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(peerKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(peerKey("2001:db8:1:2::9"), "2001:db8:1:2::/64");
  assert.equal(peerKey("[2001:db8::1]"), "2001:db8:0:0::/64");
  assert.equal(peerKey("::1"), "0:0:0:0::/64");
});

Deno.test("config: allowed_hosts and allowed_origins are checked and normalised", () => {
  assert.deepEqual(
    parseAccessSettings({
      allowed_hosts: ["Courier.Example.Test", "proxy.example.test:0443", "[fd00::1]:8644"],
      allowed_origins: ["https://App.Example.Test", "http://127.0.0.1:3000/"],
    }),
    {
      allowedHosts: ["courier.example.test", "proxy.example.test:443", "[fd00::1]:8644"],
      allowedOrigins: ["https://app.example.test", "http://127.0.0.1:3000"],
    },
  );
  assert.deepEqual(parseAccessSettings({}), { allowedHosts: [], allowedOrigins: [] });
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ allowed_hosts: "localhost" }, /allowed_hosts: must be a list of strings/],
    [{ allowed_hosts: ["http://x.test"] }, /allowed_hosts\[0\]/],
    [{ allowed_origins: ["app.example.test"] }, /allowed_origins\[0\].*scheme:\/\/host/],
    [{ allowed_origins: ["https://app.example.test/path"] }, /allowed_origins\[0\]/],
    [{ allowed_origins: ["ftp://app.example.test"] }, /allowed_origins\[0\]/],
    [{ allowed_origins: ["*"] }, /allowed_origins\[0\]/],
  ];
  for (const [config, message] of bad) {
    assert.throws(() => parseAccessSettings(config), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, message);
      return true;
    });
  }
});

/** A guard chain in front of a handler that records what reached it. */
function chain(options: Partial<GuardOptions> = {}) {
  const reached: { request: Request; context: RequestContext }[] = [];
  let now = 0;
  const throttle = new AuthThrottle({ now: () => now });
  const handle = guardRequests(
    (request, context) => {
      reached.push({ request, context });
      return Promise.resolve(new Response("handled"));
    },
    {
      token: { verify: (presented) => presented === TOKEN },
      tokenFile: "/home/u/.courier/run/api.token",
      hostAllowed: createHostCheck({ boundHost: "127.0.0.1" }),
      allowedOrigins: ["https://app.example.test"],
      throttle,
      ...options,
    },
  );
  const send = (
    path: string,
    init: RequestInit & { peer?: string } = {},
  ) => {
    const headers = new Headers(init.headers);
    if (!headers.has("host")) headers.set("host", "127.0.0.1:8644");
    return handle(new Request(`http://127.0.0.1:8644${path}`, { ...init, headers }), {
      remoteAddr: { hostname: init.peer ?? "127.0.0.1" },
    });
  };
  return { send, reached, throttle, advance: (ms: number) => (now += ms) };
}

const AUTH = { authorization: `Bearer ${TOKEN}` };
const JSON_AUTH = { ...AUTH, "content-type": "application/json" };

Deno.test("chain: Host first, then Origin, then the token, then JSON; the handler sees none of them", async () => {
  const { send, reached } = chain();
  const badEverything = await send("/api/v1/inbound/x", {
    method: "POST",
    headers: { host: "evil.example:8644", origin: "http://evil.example:8644" },
    body: "x",
  });
  assert.equal(badEverything.status, 421);
  assert.match((await badEverything.json()).error, /evil\.example:8644.*allowed_hosts/);
  const badOrigin = await send("/api/v1/inbound/x", {
    method: "POST",
    headers: { origin: "http://127.0.0.1:3000" },
    body: "x",
  });
  assert.equal(badOrigin.status, 403);
  assert.equal(badOrigin.headers.get("access-control-allow-origin"), null);
  const noToken = await send("/api/v1/inbound/x", { method: "POST", body: "x" });
  assert.equal(noToken.status, 401);
  const noJson = await send("/api/v1/inbound/x", { method: "POST", headers: AUTH, body: "x" });
  assert.equal(noJson.status, 415);
  assert.match((await noJson.json()).error, /application\/json.*text\/plain/);
  assert.equal(reached.length, 0);
  const good = await send("/api/v1/inbound/x", { method: "POST", headers: JSON_AUTH, body: "{}" });
  assert.equal(good.status, 200);
  assert.deepEqual(reached.map((r) => r.context.authenticated), [true]);
});

Deno.test("chain: an absolute request URI naming another host is misdirected too", async () => {
  const { reached } = chain();
  const handle = guardRequests(() => Promise.resolve(new Response("handled")), {
    token: { verify: () => true },
    tokenFile: "/t",
    hostAllowed: createHostCheck({ boundHost: "127.0.0.1" }),
  });
  const response = await handle(
    new Request("http://evil.example/x", { headers: { host: "127.0.0.1:8644", ...AUTH } }),
  );
  assert.equal(response.status, 421);
  assert.equal(reached.length, 0);
});

Deno.test("chain: 401 says where the token lives; a token in the URL is never taken", async () => {
  const { send, reached } = chain();
  for (
    const [path, headers] of [
      ["/api/v1/messages", {}],
      [`/api/v1/messages?token=${TOKEN}`, {}],
      [`/api/v1/messages?access_token=${TOKEN}`, {}],
      ["/api/v1/messages", { authorization: `Bearer ${TOKEN}x` }],
      ["/api/v1/messages", { authorization: `Basic ${TOKEN}` }],
      ["/api/v1/messages", { authorization: TOKEN }],
      ["/anything/else", {}],
    ] as const
  ) {
    const response = await send(path, { headers });
    assert.equal(response.status, 401, `${path} ${JSON.stringify(headers)}`);
    assert.match(response.headers.get("www-authenticate")!, /^Bearer realm="courier"/);
    const body = await response.json();
    assert.equal(body.token_file, "/home/u/.courier/run/api.token");
    assert.match(
      body.error,
      /Authorization: Bearer <token>.*\/home\/u\/\.courier\/run\/api\.token.*courier token/,
    );
  }
  assert.equal(reached.length, 0);
});

Deno.test("chain: optional routes pass without a token, but a token given must be right", async () => {
  const { send, reached } = chain({
    authRequirement: (_request, url) => url.pathname === "/health" ? "optional" : "required",
  });
  assert.equal((await send("/health")).status, 200);
  assert.equal((await send("/health", { headers: AUTH })).status, 200);
  assert.equal((await send("/health", { headers: { authorization: "Bearer nope" } })).status, 401);
  assert.deepEqual(reached.map((r) => r.context.authenticated), [false, true]);
});

Deno.test("chain: more than 10 wrong tokens from a peer get 429 with Retry-After, even a right one", async () => {
  const locked: [string, number][] = [];
  const { send, advance, reached } = chain({ onLockout: (peer, s) => locked.push([peer, s]) });
  const wrong = { authorization: `Bearer ${"w".repeat(43)}` };
  for (let i = 0; i < 10; i++) {
    const right = await send("/api/v1/messages", { headers: AUTH });
    assert.equal(right.status, 200, "right ones pass");
    assert.equal((await send("/api/v1/messages", { headers: wrong })).status, 401, `try ${i}`);
  }
  assert.deepEqual(locked, [["127.0.0.1", 60]]);
  const refused = await send("/api/v1/messages", { headers: wrong });
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "60");
  assert.equal((await refused.json()).retry_after_s, 60);
  const right = await send("/api/v1/messages", { headers: AUTH });
  assert.equal(right.status, 429, "a locked-out peer learns nothing about any token");
  assert.equal((await send("/api/v1/messages")).status, 429);
  const other = await send("/api/v1/messages", { headers: AUTH, peer: "127.0.0.9" });
  assert.equal(other.status, 200, "another peer is not affected");
  advance(59_000);
  assert.equal((await send("/api/v1/messages", { headers: AUTH })).headers.get("retry-after"), "1");
  advance(1000);
  assert.equal((await send("/api/v1/messages", { headers: AUTH })).status, 200);
  assert.equal(reached.length, 10 + 1 + 1);
});

Deno.test("chain: preflights and CORS headers only for allowed origins", async () => {
  const { send, reached } = chain();
  const preflight = (origin: string) => send("/api/v1/messages", preflightInit(origin));
  const foreign = await preflight("http://127.0.0.1:3000");
  assert.equal(foreign.status, 403);
  assert.equal(foreign.headers.get("access-control-allow-origin"), null);
  const allowed = await preflight("https://app.example.test");
  assert.equal(allowed.status, 204);
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example.test");
  assert.equal((await send("/x", { method: "OPTIONS" })).status, 405);
  const fromApp = await send("/api/v1/messages", {
    headers: { ...AUTH, origin: "https://app.example.test", "sec-fetch-site": "cross-site" },
  });
  assert.equal(fromApp.status, 200);
  assert.equal(fromApp.headers.get("access-control-allow-origin"), "https://app.example.test");
  const unauthorized = await send("/api/v1/messages", {
    headers: { origin: "https://app.example.test" },
  });
  assert.equal(unauthorized.status, 401);
  assert.equal(
    unauthorized.headers.get("access-control-allow-origin"),
    "https://app.example.test",
    "the app may read why",
  );
  const plain = await send("/api/v1/messages", { headers: AUTH });
  assert.equal(plain.headers.get("access-control-allow-origin"), null, "no CORS unless allowed");
  assert.equal(reached.length, 2);
});

Deno.test("chain: a streamed response passes through unbuffered", async () => {
  let close: () => void = () => {};
  const handle = guardRequests(() => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("event: hello\n\n"));
        close = () => controller.close();
      },
    });
    return Promise.resolve(
      new Response(body, { headers: { "content-type": "text/event-stream" } }),
    );
  }, {
    token: { verify: (t) => t === TOKEN },
    tokenFile: "/t",
    hostAllowed: createHostCheck({ boundHost: "127.0.0.1" }),
    allowedOrigins: ["https://app.example.test"],
  });
  for (const origin of [undefined, "https://app.example.test"]) {
    const response = await handle(
      new Request("http://127.0.0.1:8644/api/v1/events", {
        headers: { host: "127.0.0.1:8644", ...AUTH, ...(origin ? { origin } : {}) },
      }),
    );
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.equal(new TextDecoder().decode(first.value), "event: hello\n\n");
    close();
    assert.equal((await reader.read()).done, true);
  }
});
