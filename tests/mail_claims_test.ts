import assert from "node:assert/strict";
import { join } from "node:path";
import { type MailHarness, withMail } from "./helpers/mail.ts";

const claim = (h: MailHarness, id: string, agent: string, timeout?: number) =>
  h.post(`/api/v1/messages/${id}/claim`, { agent_id: agent, ...(timeout ? { timeout } : {}) });

Deno.test("claims: a second agent gets 409 naming the holder and the expiry", async () => {
  await withMail({ fakeClock: true }, async (h) => {
    const id = await h.newMail("please handle");
    const a = await claim(h, id, "agent-a");
    assert.equal(a.status, 200);
    assert.equal(a.body.id, id);
    assert.equal(a.body.agent_id, "agent-a");
    assert.equal(a.body.timeout_s, 300);
    assert.equal(
      Date.parse(a.body.expires_at as string) - Date.parse(a.body.claimed_at as string),
      300_000,
    );

    const b = await claim(h, id, "agent-b");
    assert.equal(b.status, 409);
    assert.equal(b.body.holder, "agent-a");
    assert.equal(b.body.expires_at, a.body.expires_at);
    assert.match(b.body.error as string, /claimed by "agent-a" until/);

    // Concurrent claims by many agents: exactly one wins.
    const id2 = await h.newMail("race");
    const race = await Promise.all(
      Array.from({ length: 10 }, (_, i) => claim(h, id2, `agent-${i}`)),
    );
    assert.equal(race.filter((r) => r.status === 200).length, 1);
    assert.equal(race.filter((r) => r.status === 409).length, 9);

    // The holder may renew.
    h.clock!.advance(10_000);
    const renewed = await claim(h, id, "agent-a", 60);
    assert.equal(renewed.status, 200);
    assert.equal(renewed.body.timeout_s, 60);

    const listed = await h.get("/api/v1/messages?status=claimed");
    assert.deepEqual(
      (listed.body.messages as { id: string }[]).map((m) => m.id).sort(),
      [id, id2].sort(),
    );
    assert.equal(h.service.metrics().claimed, 2);
  });
});

Deno.test("claims: unknown ids get 404, bad ids and bodies 400", async () => {
  await withMail({}, async (h) => {
    const missing = await claim(h, "lark_doesnotexist", "agent-a");
    assert.equal(missing.status, 404);
    assert.match(missing.body.error as string, /no mail with id "lark_doesnotexist"/);
    assert.equal((await h.get("/api/v1/messages/lark_nope")).status, 404);
    const noAgent = await h.post("/api/v1/messages/lark_x/claim", {});
    assert.equal(noAgent.status, 400);
    assert.equal(noAgent.body.field, "agent_id");
    const badTimeout = await h.post("/api/v1/messages/lark_x/claim", {
      agent_id: "a",
      timeout: -1,
    });
    assert.equal(badTimeout.body.field, "timeout");
    const badId = await h.post("/api/v1/messages/a.b/claim", { agent_id: "a" });
    assert.equal(badId.status, 400);
    assert.equal(badId.body.field, "id");
  });
});

Deno.test("claims: an expired claim can be taken by another agent", async () => {
  await withMail({ fakeClock: true }, async (h) => {
    const id = await h.newMail("please handle");
    assert.equal((await claim(h, id, "agent-a", 30)).status, 200);
    h.clock!.advance(29_000);
    assert.equal((await claim(h, id, "agent-b")).status, 409);
    h.clock!.advance(2000);
    const listed = await h.get("/api/v1/messages?status=new");
    assert.deepEqual((listed.body.messages as { id: string }[]).map((m) => m.id), [id]);
    const b = await claim(h, id, "agent-b");
    assert.equal(b.status, 200);
    assert.equal(b.body.agent_id, "agent-b");
    // agent-a's lapsed claim no longer lets it complete.
    const late = await h.post(`/api/v1/messages/${id}/complete`, { agent_id: "agent-a" });
    assert.equal(late.status, 403);
  });
});

Deno.test("claims: only the claiming agent completes; the mail moves to archive/", async () => {
  await withMail({}, async (h) => {
    const id = await h.newMail("please handle");
    const unclaimed = await h.post(`/api/v1/messages/${id}/complete`, { agent_id: "agent-a" });
    assert.equal(unclaimed.status, 409);
    assert.match(unclaimed.body.error as string, /not claimed: claim it first/);
    assert.equal((await claim(h, id, "agent-a")).status, 200);
    const wrong = await h.post(`/api/v1/messages/${id}/complete`, { agent_id: "agent-b" });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.holder, "agent-a");
    assert.equal((await h.mails("archive")).length, 0);

    const done = await h.post(`/api/v1/messages/${id}/complete`, { agent_id: "agent-a" });
    assert.equal(done.status, 200);
    assert.equal(done.body.status, "done");
    assert.equal((await h.mails("inbound")).length, 0);
    const [archived] = await h.mails("archive");
    assert.equal(archived.frontMatter.id, id);
    assert.equal(archived.frontMatter.delivery.completed_by, "agent-a");
    const shown = await h.get(`/api/v1/messages/${id}`);
    assert.equal(shown.body.status, "done");
    assert.ok((shown.body.path as string).includes(join("mailbox", "archive", "lark")));
    const again = await claim(h, id, "agent-c");
    assert.equal(again.status, 409);
    assert.equal(again.body.status, "done");
    assert.equal(h.service.metrics().completed, 1);
  });
});

Deno.test("fail: retried with backoff while under 3 attempts, then dead-lettered with the reason", async () => {
  await withMail({ fakeClock: true }, async (h) => {
    const id = await h.newMail("please handle");
    const expectedDelays = [1000, 2000];
    for (const delay of expectedDelays) {
      assert.equal((await claim(h, id, "agent-a")).status, 200);
      const before = h.clock!.now();
      const failed = await h.post(`/api/v1/messages/${id}/fail`, {
        agent_id: "agent-a",
        reason: "LLM timeout",
        retryable: true,
      });
      assert.equal(failed.status, 200);
      assert.equal(failed.body.status, "retrying");
      assert.equal(Date.parse(failed.body.retry_at as string) - before, delay);
      // During the backoff it is neither new nor claimable.
      assert.equal((await h.get(`/api/v1/messages/${id}`)).body.status, "retrying");
      const early = await claim(h, id, "agent-b");
      assert.equal(early.status, 409);
      assert.equal(early.body.status, "retrying");
      h.clock!.advance(delay);
      assert.equal((await h.get(`/api/v1/messages/${id}`)).body.status, "new");
    }
    assert.equal((await claim(h, id, "agent-a")).status, 200);
    const dead = await h.post(`/api/v1/messages/${id}/fail`, {
      agent_id: "agent-a",
      reason: "still broken",
      retryable: true,
    });
    assert.equal(dead.body.status, "dead");
    assert.equal(dead.body.attempts, 3);
    assert.equal((await h.mails("inbound")).length, 0);
    const [letter] = await h.mails("deadletter");
    assert.equal(letter.frontMatter.id, id);
    assert.equal(letter.frontMatter.delivery.dead_reason, "still broken");
    assert.deepEqual(letter.frontMatter.delivery.failures.map((f) => f.reason), [
      "LLM timeout",
      "LLM timeout",
      "still broken",
    ]);
    const listed = await h.get("/api/v1/messages?status=dead");
    assert.deepEqual((listed.body.messages as { id: string }[]).map((m) => m.id), [id]);
    assert.equal(h.service.metrics().deadletter, 1);
    assert.equal(h.service.metrics().failed, 3);
  });
});

Deno.test("fail: not retryable goes straight to the dead letters; the wrong agent is refused", async () => {
  await withMail({}, async (h) => {
    const id = await h.newMail("please handle");
    await claim(h, id, "agent-a");
    const wrong = await h.post(`/api/v1/messages/${id}/fail`, {
      agent_id: "agent-b",
      reason: "x",
      retryable: false,
    });
    assert.equal(wrong.status, 403);
    const missingReason = await h.post(`/api/v1/messages/${id}/fail`, { agent_id: "agent-a" });
    assert.equal(missingReason.status, 400);
    assert.equal(missingReason.body.field, "reason");
    const dead = await h.post(`/api/v1/messages/${id}/fail`, {
      agent_id: "agent-a",
      reason: "spam",
      retryable: false,
    });
    assert.equal(dead.body.status, "dead");
    assert.equal(dead.body.attempts, 1);
    assert.equal((await h.mails("deadletter"))[0].frontMatter.delivery.dead_reason, "spam");
  });
});

Deno.test("claims and retry times survive a restart", async () => {
  await withMail({ fakeClock: true }, async (h) => {
    const held = await h.newMail("held");
    const retrying = await h.newMail("retrying");
    await claim(h, held, "agent-a");
    await claim(h, retrying, "agent-a");
    await h.post(`/api/v1/messages/${retrying}/fail`, { agent_id: "agent-a", reason: "later" });
    await h.restart();
    const b = await claim(h, held, "agent-b");
    assert.equal(b.status, 409);
    assert.equal(b.body.holder, "agent-a");
    assert.equal((await claim(h, retrying, "agent-b")).status, 409);
    const locks = JSON.parse(
      await Deno.readTextFile(join(h.home, "mailbox", ".state", "locks.json")),
    );
    assert.equal(locks.claims[held].agent_id, "agent-a");
    assert.equal(
      (await h.post(`/api/v1/messages/${held}/complete`, { agent_id: "agent-a" })).status,
      200,
    );
  });
});
