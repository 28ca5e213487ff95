import assert from "node:assert/strict";
import { httpGet } from "../lib/net/mod.ts";
import { leaseTestPort } from "./helpers/ports.ts";

async function withServer(
  handler: (request: Request) => Response | Promise<Response>,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const port = await leaseTestPort();
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, handler);
  try {
    await body(`http://127.0.0.1:${port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("httpGet: status, headers and a JSON body; the request carries its headers", async () => {
  await withServer((request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/health") return new Response("nope", { status: 404 });
    return Response.json({
      auth: request.headers.get("authorization"),
      query: url.search,
      text: "naïve ✓",
    });
  }, async (base) => {
    const answer = await httpGet(`${base}/health?x=1`, { headers: { authorization: "Bearer t" } });
    assert.equal(answer.status, 200);
    assert.match(answer.headers["content-type"] ?? "", /application\/json/);
    assert.deepEqual(JSON.parse(answer.body), {
      auth: "Bearer t",
      query: "?x=1",
      text: "naïve ✓",
    });
    const missing = await httpGet(`${base}/other`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body, "nope");
  });
});

Deno.test("httpGet: a chunked body is put together", async () => {
  await withServer(() => {
    const parts = ['{"a":', '"', "x".repeat(20_000), '"}'];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = parts.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(next));
      },
    });
    return new Response(stream, { headers: { "content-type": "application/json" } });
  }, async (base) => {
    const answer = await httpGet(`${base}/`);
    assert.equal(answer.headers["transfer-encoding"], "chunked");
    assert.equal(JSON.parse(answer.body).a.length, 20_000);
  });
});

Deno.test("httpGet: a server that never answers runs into the timeout", async () => {
  const port = await leaseTestPort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  try {
    await assert.rejects(
      httpGet(`http://127.0.0.1:${port}/health`, { timeoutMs: 200 }),
      /no answer within 200 ms/,
    );
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of accepted) conn.close();
  }
});

Deno.test("httpGet: refused connections, non-HTTP answers and other schemes are errors", async () => {
  const port = await leaseTestPort(); // leased, and nothing listens on it
  await assert.rejects(httpGet(`http://127.0.0.1:${port}/`), /refused/i);
  await assert.rejects(httpGet("https://127.0.0.1/"), /http: only/);
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH\r\n\r\n"));
    conn.close();
  })();
  try {
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/`), /not an HTTP response/);
  } finally {
    await serving;
    listener.close();
  }
});

Deno.test("httpGet: an answer is complete by its length, even if the server keeps the connection", async () => {
  const port = await leaseTestPort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const held: Deno.Conn[] = [];
  const serving = (async () => {
    const conn = await listener.accept();
    held.push(conn);
    await conn.read(new Uint8Array(4096));
    // Two writes, and no close: the length says when it is done.
    await conn.write(
      new TextEncoder().encode('HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok"'),
    );
    await conn.write(new TextEncoder().encode(":true}"));
  })();
  try {
    const answer = await httpGet(`http://127.0.0.1:${port}/health`, { timeoutMs: 5000 });
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body), { ok: true });
  } finally {
    await serving;
    for (const conn of held) conn.close();
    listener.close();
  }
});

Deno.test("httpGet: an answer larger than maxBytes is refused", async () => {
  await withServer(() => new Response("x".repeat(100_000)), async (base) => {
    await assert.rejects(httpGet(base, { maxBytes: 50_000 }), /larger than 50000 bytes/);
    assert.equal((await httpGet(base)).body.length, 100_000);
  });
});
