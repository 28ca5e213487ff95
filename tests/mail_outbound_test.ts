import assert from "node:assert/strict";
import { DeliveryError, type OutboundSender } from "../lib/mail/mod.ts";
import {
  eventually,
  type MailHarness,
  type Receiver,
  webhookReceiver,
  withMail,
} from "./helpers/mail.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const FAST = {
  backoffBaseMs: 20,
  backoffCapMs: 100,
  outboundBackoffBaseMs: 20,
  outboundBackoffCapMs: 100,
  outboundMaxAttempts: 3,
};

async function withReceiver(
  statuses: number[],
  fn: (h: MailHarness, r: Receiver) => Promise<void>,
): Promise<void> {
  const r = webhookReceiver(statuses);
  try {
    await withMail(
      { settings: FAST, config: { outbound: { lark: { url: r.url } } } },
      (h) => fn(h, r),
    );
  } finally {
    await r.close();
  }
}

Deno.test("outbound: delivered to the configured URL and archived", async () => {
  await withReceiver([200], async (h, r) => {
    const queued = await h.post("/api/v1/outbound/lark", {
      to: "chat-1",
      text: "the report is ready",
      reply_to: "lark_abc",
    });
    assert.equal(queued.status, 202);
    assert.equal(queued.body.queued, true);
    const id = queued.body.id as string;
    assert.match(id, /^lark_/);
    await eventually(() => h.service.metrics().sent === 1, { what: "delivery" });
    assert.equal(r.posts.length, 1);
    const [post] = r.posts;
    assert.equal(post.headers.get("idempotency-key"), id);
    assert.equal(post.body.id, id);
    assert.equal(post.body.direction, "outbound");
    assert.equal(post.body.reply_to, "lark_abc");
    assert.deepEqual(post.body.participants, { to: { id: "chat-1" } });
    assert.equal((post.body.content as { text: string }).text, "the report is ready");
    assert.equal((await h.mails("outbound")).length, 0);
    const [archived] = await h.mails("archive");
    assert.equal(archived.frontMatter.id, id);
    assert.equal(typeof archived.frontMatter.delivery.delivered_at, "string");
    assert.equal((await h.get(`/api/v1/messages/${id}`)).body.status, "done");
  });
});

Deno.test("outbound: retried when the receiver answers 500, then delivered", async () => {
  await withReceiver([500, 500, 200], async (h, r) => {
    const { body } = await h.post("/api/v1/outbound/lark", { to: "u-1", text: "retry me" });
    await eventually(() => h.service.metrics().sent === 1, { what: "delivery after retries" });
    assert.equal(r.posts.length, 3);
    assert.ok(r.posts.every((p) => p.body.id === body.id));
    const [archived] = await h.mails("archive");
    assert.equal(archived.frontMatter.delivery.attempts, 2);
    assert.deepEqual(
      archived.frontMatter.delivery.failures.map((f) => f.reason),
      ["HTTP 500: receiver says no", "HTTP 500: receiver says no"],
    );
    assert.equal(h.service.metrics().failed, 2);
  });
});

Deno.test("outbound: dead-lettered after the maximum of attempts (3 here)", async () => {
  await withReceiver([503], async (h, r) => {
    const { body } = await h.post("/api/v1/outbound/lark", { to: "u-1", text: "doomed" });
    await eventually(() => h.service.metrics().deadletter === 1, { what: "dead letter" });
    assert.equal(r.posts.length, 3);
    const [letter] = await h.mails("deadletter");
    assert.equal(letter.frontMatter.id, body.id);
    assert.match(letter.frontMatter.delivery.dead_reason!, /^HTTP 503/);
    assert.equal((await h.get(`/api/v1/messages/${body.id}`)).body.status, "dead");
    assert.equal(h.service.metrics().sent, 0);
  });
});

Deno.test("outbound: a delivery cut off by a stop is made again after the restart", async () => {
  await withReceiver([0, 200], async (h, r) => {
    const { body } = await h.post("/api/v1/outbound/lark", { to: "u-1", text: "survives" });
    await eventually(() => r.posts.length === 1, { what: "first attempt" });
    await h.restart(); // aborts the hanging request: not the receiver's failure
    await eventually(() => h.service.metrics().sent === 1, { what: "delivery after restart" });
    assert.equal(r.posts.length, 2);
    assert.ok(r.posts.every((p) => p.headers.get("idempotency-key") === body.id));
    const [archived] = await h.mails("archive");
    assert.equal(archived.frontMatter.delivery.attempts, 0);
    assert.equal((await h.mails("outbound")).length, 0);
  });
});

Deno.test("outbound: refused with 400 when no URL is configured or a field is missing", async () => {
  await withMail({}, async (h) => {
    const unknown = await h.post("/api/v1/outbound/slack", { to: "x", text: "y" });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.field, "provider");
    assert.match(unknown.body.error as string, /no outbound URL configured for provider "slack"/);
    const noText = await h.post("/api/v1/outbound/slack", { to: "x" });
    assert.equal(noText.status, 400);
    assert.equal(noText.body.field, "text");
    const escape = await h.post("/api/v1/outbound/..%2F..%2Fetc", { to: "x", text: "y" });
    assert.equal(escape.status, 400);
    assert.equal(escape.body.field, "provider");
  });
});

Deno.test("outbound mail cannot be claimed", async () => {
  await withReceiver([500], async (h) => {
    const { body } = await h.post("/api/v1/outbound/lark", { to: "u-1", text: "mine" });
    const claimed = await h.post(`/api/v1/messages/${body.id}/claim`, { agent_id: "a" });
    assert.equal(claimed.status, 409);
    assert.match(claimed.body.error as string, /outbound/);
  });
});

Deno.test("outbound: a 4xx answer is final (dead at once); 429 waits as long as Retry-After asks", async () => {
  await withReceiver([400], async (h, r) => {
    const { body } = await h.post("/api/v1/outbound/lark", { to: "u-1", text: "rejected" });
    await eventually(() => h.service.metrics().deadletter === 1, { what: "dead letter" });
    assert.equal(r.posts.length, 1, "not retried");
    const [letter] = await h.mails("deadletter");
    assert.equal(letter.frontMatter.id, body.id);
    assert.match(letter.frontMatter.delivery.dead_reason!, /^HTTP 400/);
  });
  const posts: number[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    await request.body?.cancel();
    posts.push(Date.now());
    return posts.length === 1
      ? new Response("slow down", { status: 429, headers: { "retry-after": "1" } })
      : new Response("ok");
  });
  try {
    await withMail({
      settings: { outboundBackoffBaseMs: 10, outboundBackoffCapMs: 5000 },
      config: { outbound: { lark: { url: `http://127.0.0.1:${server.addr.port}/` } } },
    }, async (h) => {
      await h.post("/api/v1/outbound/lark", { to: "u-1", text: "patience" });
      await eventually(() => h.service.metrics().sent === 1, { what: "delivery" });
      assert.ok(posts[1] - posts[0] >= 900, `retried after ${posts[1] - posts[0]} ms`);
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("outbound: the defaults keep retrying for minutes, so a receiver that restarts gets its mail", async () => {
  await withMail({}, (h) => {
    const s = h.service.settings;
    let waited = 0;
    for (let attempt = 1; attempt < s.outboundMaxAttempts; attempt++) {
      waited += Math.min(s.outboundBackoffCapMs, s.outboundBackoffBaseMs * 2 ** (attempt - 1));
    }
    assert.ok(waited >= 10 * 60_000, `gives up after ${Math.round(waited / 1000)} s`);
    return Promise.resolve();
  });
  // A receiver that is down for a while (connection refused), then back.
  const port = await leaseTestPort();
  await withMail({
    settings: { outboundBackoffBaseMs: 50, outboundBackoffCapMs: 200 },
    config: { outbound: { lark: { url: `http://127.0.0.1:${port}/hook` } } },
  }, async (h) => {
    const { body } = await h.post("/api/v1/outbound/lark", { to: "u-1", text: "wait for me" });
    await eventually(() => h.service.metrics().failed >= 3, { what: "three failed attempts" });
    const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (request) => {
      await request.body?.cancel();
      return new Response("ok");
    });
    try {
      await eventually(() => h.service.metrics().sent === 1, { what: "delivery once back" });
      const [archived] = await h.mails("archive");
      assert.equal(archived.frontMatter.id, body.id);
      assert.match(archived.frontMatter.delivery.failures[0].reason, /request failed/);
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("outbound: delivery is pluggable: a sender given to the service takes its provider's mail", async () => {
  const sent: { id: string; text: string }[] = [];
  const sender: OutboundSender = {
    kind: "fake-chat",
    send(mail) {
      sent.push({ id: mail.frontMatter.id, text: mail.frontMatter.content.text });
      if (sent.length === 1) {
        return Promise.reject(
          new DeliveryError("platform busy", { retryable: true, retryAfterMs: 10 }),
        );
      }
      return Promise.resolve();
    },
  };
  await withMail({
    settings: { outboundBackoffBaseMs: 10 },
    service: { senders: (provider) => (provider === "chat" ? sender : null) },
  }, async (h) => {
    const queued = await h.post("/api/v1/outbound/chat", { to: "room", text: "hello room" });
    assert.equal(queued.status, 202);
    await eventually(() => h.service.metrics().sent === 1, { what: "delivery" });
    assert.deepEqual(sent.map((s) => s.text), ["hello room", "hello room"]);
    const [archived] = await h.mails("archive");
    assert.equal(archived.frontMatter.delivery.failures[0].reason, "platform busy");
    const final = await h.post("/api/v1/outbound/nobody", { to: "x", text: "y" });
    assert.equal(final.status, 400, "a provider nothing delivers is refused");
  });
});
