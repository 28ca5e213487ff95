/**
 * Services plugged in behind the guard chain, in a real daemon on a real
 * port: a route added by a service is guarded without doing anything, a
 * service that verifies its own requests (a chat platform's signed webhook)
 * is reached without the token while every other guard still applies, and
 * an event stream passes the chain unbuffered.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { homeLayout } from "../lib/home/mod.ts";
import { type RequestContext, rotateTokenFile } from "../lib/http/mod.ts";
import { type DaemonExtension, type DaemonState, runDaemon } from "../lib/service/mod.ts";
import { apiToken } from "./helpers/courier.ts";
import { sleep } from "./helpers/mail.ts";
import { leaseTestPort } from "./helpers/ports.ts";
import { rawHttp } from "./helpers/http.ts";

const SECRET = "fake-platform-signing-secret";
const APP = "http://app.example.test:4000";

async function sign(body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A fake platform: signed webhooks at POST /api/v1/inbound/fakechat, and an event stream. */
function fakePlatform() {
  const received: { authenticated: boolean; still: boolean; body: string }[] = [];
  const streams: {
    controller: ReadableStreamDefaultController<Uint8Array>;
    context: RequestContext;
  }[] = [];
  const extension: DaemonExtension = {
    name: "fakechat",
    start: () => Promise.resolve(),
    verifiesRequest: (request, url) =>
      request.method === "POST" && url.pathname === "/api/v1/inbound/fakechat",
    async handle(request: Request, url: URL, context: RequestContext) {
      if (url.pathname === "/api/v1/inbound/fakechat") {
        const body = await request.text();
        const signature = request.headers.get("x-fakechat-signature") ?? "";
        if (!context.authenticated && signature !== await sign(body)) {
          return Response.json({ error: "bad signature" }, { status: 401 });
        }
        received.push({
          authenticated: context.authenticated,
          still: context.stillAuthenticated(),
          body,
        });
        return Response.json({ ok: true }, { status: 202 });
      }
      if (url.pathname === "/api/v1/fake-events") {
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            streams.push({ controller, context });
            controller.enqueue(new TextEncoder().encode("event: hello\ndata: {}\n\n"));
          },
        });
        return new Response(stream, { headers: { "content-type": "text/event-stream" } });
      }
      return null;
    },
    health: () => ({}),
    stop: () => Promise.resolve(),
  };
  return { extension, received, streams };
}

async function withDaemon(
  fn: (d: { url: string; port: number; token: string; home: string }) => Promise<void>,
  extensions: DaemonExtension[],
): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "courier-ext-test-" });
  await Deno.writeTextFile(
    join(home, "config.json"),
    JSON.stringify({ allowed_origins: [APP] }),
    { mode: 0o600 },
  );
  const controller = new AbortController();
  let ready: (state: DaemonState) => void = () => {};
  const readyState = new Promise<DaemonState>((resolve) => (ready = resolve));
  const daemon = runDaemon({
    home,
    port: await leaseTestPort(),
    extensions,
    signal: controller.signal,
    reporter: { ready, failed: (error) => console.error(error) },
  });
  try {
    const state = await readyState;
    await fn({ url: state.api_url, port: state.port, token: await apiToken(home), home });
  } finally {
    controller.abort();
    assert.equal(await daemon, 0);
    assert.ok(!(await Deno.readTextFile(homeLayout(home).logFile)).includes(await apiToken(home)));
    await Deno.remove(home, { recursive: true });
  }
}

Deno.test("a service that verifies its own requests: no token needed there, the other guards hold", async () => {
  const platform = fakePlatform();
  await withDaemon(async ({ url, port, token }) => {
    const hook = `${url}/api/v1/inbound/fakechat`;
    const body = JSON.stringify({ text: "from the platform" });
    const signed = { "content-type": "application/json", "x-fakechat-signature": await sign(body) };
    const post = async (headers: Record<string, string>, payload = body) => {
      const response = await fetch(hook, { method: "POST", headers, body: payload });
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await post(signed), 202, "the platform's signature is enough");
    assert.equal(
      await post({ "content-type": "application/json", authorization: `Bearer ${token}` }),
      202,
      "so is the API token",
    );
    assert.equal(await post({ "content-type": "application/json" }), 401, "the service refuses");
    assert.deepEqual(platform.received.map((r) => [r.authenticated, r.still]), [
      [false, false],
      [true, true],
    ]);

    assert.equal(await post({ ...signed, authorization: "Bearer wrong" }), 401, "a wrong token");
    assert.equal(await post({ ...signed, "content-type": "text/plain" }), 415);
    assert.equal(await post({ ...signed, origin: "http://127.0.0.1:3000" }), 403);
    const rebound = await rawHttp(port, {
      method: "POST",
      target: "/api/v1/inbound/fakechat",
      headers: { ...signed, host: "evil.example" },
      body,
    });
    assert.equal(rebound.status, 421);
    assert.equal(platform.received.length, 2, "none of those reached the service");

    const read = await fetch(hook); // GET is not what the service verifies: the token rules
    assert.equal(read.status, 401);
    await read.body?.cancel();
    const other = await fetch(`${url}/api/v1/fake-events`);
    assert.equal(other.status, 401, "a route a service adds is guarded without it doing anything");
    await other.body?.cancel();
  }, [platform.extension]);
});

Deno.test("an event stream passes the guard chain unbuffered, with and without CORS", async () => {
  const platform = fakePlatform();
  await withDaemon(async ({ url, token }) => {
    for (const origin of [null, APP]) {
      const response = await fetch(`${url}/api/v1/fake-events`, {
        headers: { authorization: `Bearer ${token}`, ...(origin ? { origin } : {}) },
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "text/event-stream");
      assert.equal(response.headers.get("access-control-allow-origin"), origin);
      const reader = response.body!.getReader();
      const first = await reader.read(); // arrives while the stream is still open
      assert.equal(new TextDecoder().decode(first.value), "event: hello\ndata: {}\n\n");
      platform.streams.at(-1)!.controller.close();
      assert.equal((await reader.read()).done, true);
    }
  }, [platform.extension]);
});

Deno.test("a stream opened before a rotation learns that its token is no longer the token", async () => {
  const platform = fakePlatform();
  await withDaemon(async ({ url, token, home }) => {
    const response = await fetch(`${url}/api/v1/fake-events`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const reader = response.body!.getReader();
    await reader.read();
    const { context } = platform.streams[0];
    assert.equal(context.authenticated, true);
    assert.equal(context.stillAuthenticated(), true);
    await rotateTokenFile(homeLayout(home).tokenFile);
    await sleep(250); // past the recheck interval (200 ms)
    assert.equal(context.stillAuthenticated(), false, "the stream can end itself now");
    platform.streams[0].controller.close();
    await reader.cancel();
  }, [platform.extension]);
});
