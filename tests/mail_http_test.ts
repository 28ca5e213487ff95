import assert from "node:assert/strict";
import { join } from "node:path";
import { handleMailRequest } from "../lib/mail/mod.ts";
import { inbound, withMail } from "./helpers/mail.ts";

const MIB = 1024 * 1024;

async function entries(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    found.push(entry.name);
    if (entry.isDirectory) {
      for (const sub of await entries(join(dir, entry.name))) found.push(`${entry.name}/${sub}`);
    }
  }
  return found.sort();
}

Deno.test("http: providers that could escape the mailbox are refused with 400", async () => {
  await withMail({}, async (h) => {
    const before = await entries(h.home);
    for (
      const provider of [
        "..%2F..%2Fetc",
        "a%2Fb",
        "a.b",
        ".hidden",
        "x%00y",
        "sp%20ace",
        "%C3%A9",
        "a".repeat(65),
      ]
    ) {
      const reply = await h.post(`/api/v1/inbound/${provider}`, inbound());
      assert.equal(reply.status, 400, provider);
      assert.equal(reply.body.field, "provider", provider);
    }
    // Dot segments are resolved by URL parsing before routing: they never reach a provider.
    const dots = await h.post("/api/v1/inbound/../../x", inbound());
    assert.equal(dots.status, 0, "not a mail route: the daemon answers 404");
    const listed = await h.get("/api/v1/messages?provider=..");
    assert.equal(listed.status, 400);
    assert.equal(listed.body.field, "provider");
    assert.deepEqual(await entries(h.home), before);
    assert.equal(h.service.metrics().received, 0);
  });
});

Deno.test("http: bodies over 1 MiB get 413, a body just under is taken", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    const base = JSON.stringify(inbound({ text: "" }));
    const fits = inbound({ text: "x".repeat(MIB - base.length) });
    assert.equal(JSON.stringify(fits).length, MIB);
    assert.equal((await h.post("/api/v1/inbound/lark", fits)).status, 202);
    const over = inbound({ text: "x".repeat(MIB - base.length + 1) });
    const reply = await h.post("/api/v1/inbound/lark", over);
    assert.equal(reply.status, 413);
    assert.equal(reply.body.limit, MIB);
    assert.equal(h.service.metrics().received, 1);
  });
});

Deno.test("http: a chunked body is cut off once it passes 1 MiB (real server)", async () => {
  await withMail({}, async (h) => {
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request) =>
        await handleMailRequest(h.service, request, new URL(request.url)) ??
          new Response(null, { status: 404 }),
    );
    try {
      const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 4 * MIB) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const response = await fetch(`http://127.0.0.1:${server.addr.port}/api/v1/inbound/lark`, {
        method: "POST",
        body,
      });
      assert.equal(response.status, 413);
      assert.equal((await response.json()).limit, MIB);
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("http: bad requests get 400 naming the field", async () => {
  await withMail({}, async (h) => {
    const cases: [unknown, string][] = [
      ["not json", "body"],
      [[1, 2], "body"],
      [inbound({ session_id: undefined }), "session_id"],
      [inbound({ session_id: "" }), "session_id"],
      [inbound({ session_type: "broadcast" }), "session_type"],
      [inbound({ sender: undefined }), "sender"],
      [inbound({ sender: "alice" }), "sender"],
      [inbound({ sender: { name: "Alice" } }), "sender.id"],
      [inbound({ text: undefined }), "text"],
      [inbound({ text: 42 }), "text"],
      [inbound({ timestamp: "yesterday" }), "timestamp"],
      [inbound({ message_id: {} }), "message_id"],
      [inbound({ extra: "x" }), "extra"],
    ];
    for (const [body, field] of cases) {
      const reply = await h.post("/api/v1/inbound/lark", body);
      assert.equal(reply.status, 400, JSON.stringify(body));
      assert.equal(reply.body.field, field, JSON.stringify(body));
      assert.equal(typeof reply.body.error, "string");
    }
    assert.equal((await h.get("/api/v1/messages?status=lost")).body.field, "status");
    assert.equal((await h.get("/api/v1/inbound/lark")).status, 405);
    assert.equal((await h.post("/api/v1/messages", {})).status, 405);
    assert.equal(h.service.metrics().received, 0);
  });
});

Deno.test("http: numbers are fine as ids and timestamps; other paths are left to the daemon", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    const reply = await h.post(
      "/api/v1/inbound/lark",
      inbound({ session_id: 12345, sender: { id: 7 }, timestamp: 1767322800, message_id: 99 }),
    );
    assert.equal(reply.status, 202);
    await h.service.flushPending();
    const [mail] = await h.mails();
    assert.equal(mail.frontMatter.session.id, "12345");
    assert.deepEqual(mail.frontMatter.participants.from, { id: "7", name: "7" });
    assert.equal(mail.frontMatter.timestamp, "2026-01-02T03:00:00.000Z");
    assert.equal(mail.frontMatter.messages[0].message_id, "99");
    for (const path of ["/health", "/api/v1/status", "/api/v2/inbound/lark", "/"]) {
      assert.equal((await h.get(path)).status, 0, `${path} is not the mail service's`);
    }
  });
});

Deno.test("http: list filters and show returns front matter plus body", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    await h.post("/api/v1/inbound/lark", inbound({ text: "from lark" }));
    await h.post("/api/v1/inbound/dingtalk", inbound({ text: "from dingtalk" }));
    await h.service.flushPending();
    const all = await h.get("/api/v1/messages");
    assert.equal(all.body.count, 2);
    const lark = await h.get("/api/v1/messages?provider=lark&status=new&direction=inbound");
    const [summary] = lark.body.messages as Record<string, unknown>[];
    assert.equal(lark.body.count, 1);
    assert.equal(summary.preview, "from lark");
    assert.equal(summary.status, "new");
    assert.equal((await h.get("/api/v1/messages?status=done")).body.count, 0);
    assert.equal((await h.get("/api/v1/messages?limit=1")).body.count, 1);
    const shown = await h.get(`/api/v1/messages/${summary.id}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.id, summary.id);
    assert.equal(shown.body.status, "new");
    assert.equal((shown.body.content as { text: string }).text, "from lark");
    assert.match(shown.body.body as string, /from lark/);
    assert.equal(shown.body.path, summary.path);
  });
});

Deno.test("http: while draining inbound gets 503; stop folds open buckets into mail", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    await h.post("/api/v1/inbound/lark", inbound({ text: "before stop" }));
    assert.equal(h.service.metrics().pending, 1);
    h.service.draining();
    const refused = await h.post("/api/v1/inbound/lark", inbound({ text: "too late" }));
    assert.equal(refused.status, 503);
    assert.equal((await h.post("/api/v1/outbound/lark", { to: "x", text: "y" })).status, 503);
    assert.equal((await h.get("/api/v1/messages")).status, 200, "reads still work");
    await h.service.stop();
    const mails = await h.mails();
    assert.deepEqual(mails.map((m) => m.frontMatter.content.text), ["before stop"]);
    const journal = await Deno.readTextFile(join(h.home, "mailbox", ".state", "pending.jsonl"));
    assert.equal(journal, "", "everything is in a mail: the journal is empty");
  });
});

Deno.test("http: health reports the mailbox path and the metrics", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    await h.post("/api/v1/inbound/lark", inbound());
    const health = h.service.health() as { mailbox: string; metrics: Record<string, number> };
    assert.equal(health.mailbox, join(h.home, "mailbox"));
    for (
      const key of [
        "received",
        "mails_written",
        "pending",
        "claimed",
        "sent",
        "failed",
        "deadletter",
      ]
    ) {
      assert.equal(typeof health.metrics[key], "number", key);
    }
    assert.equal(health.metrics.received, 1);
    assert.equal(health.metrics.pending, 1);
  });
});
