/**
 * Claim-next on real daemons: atomic hand-out to concurrent agents, the
 * long-poll waking on each way a mail becomes claimable, claim expiry as a
 * failed attempt, release and requeue.
 */
import assert from "node:assert/strict";
import { withHome } from "./helpers/courier.ts";
import {
  apiFetch,
  apiGet,
  apiPost,
  startDaemon,
  stopDaemon,
  type TestDaemon,
  writeHomeConfig,
} from "./helpers/api.ts";
import { eventually } from "./helpers/mail.ts";

const FAST = ["--debounce-window", "20", "--debounce-max-wait", "50"];

/** Posts one message per conversation and waits until each is a new mail; returns their ids. */
async function mails(d: TestDaemon, n: number, tag = "m"): Promise<string[]> {
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const reply = await apiPost(d, "/api/v1/inbound/lark", {
      session_id: `${tag}-session-${i}`,
      sender: { id: "u1", name: "Ann" },
      text: `${tag} ${i}`,
      message_id: `${tag}-${i}`,
    });
    assert.equal(reply.status, 202);
  }));
  let ids: string[] = [];
  await eventually(async () => {
    const listed = await apiGet(d, `/api/v1/messages?status=new&limit=1000`);
    ids = (listed.body.messages as { id: string; preview: string }[])
      .filter((m) => m.preview.startsWith(`${tag} `)).map((m) => m.id);
    return ids.length === n;
  }, { what: `${n} new mails` });
  return ids;
}

function claimNext(d: TestDaemon, body: Record<string, unknown>, init: RequestInit = {}) {
  return apiPost(d, "/api/v1/messages/claim-next", body, init);
}

Deno.test("claim-next: 8 agents on 100 mails get 100 distinct mails, never a 409", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const ids = await mails(d, 100);
    const got: string[] = [];
    const statuses: number[] = [];
    await Promise.all(Array.from({ length: 8 }, async (_, agent) => {
      for (;;) {
        const reply = await claimNext(d, { agent_id: `agent-${agent}` });
        statuses.push(reply.status);
        if (reply.status === 204) return;
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        const claim = reply.body.claim as { agent_id: string };
        assert.equal(claim.agent_id, `agent-${agent}`);
        assert.equal(reply.body.status, "claimed");
        assert.equal(typeof reply.body.body, "string", "the mail comes whole");
        got.push(reply.body.id as string);
      }
    }));
    assert.equal(got.length, 100);
    assert.equal(new Set(got).size, 100, "no mail handed out twice");
    assert.deepEqual([...got].sort(), [...ids].sort());
    assert.ok(!statuses.includes(409));
    const claimed = await apiGet(d, "/api/v1/messages?status=claimed&limit=1000");
    assert.equal(claimed.body.count, 100);
    await stopDaemon(d);
  });
});

Deno.test("claim-next: oldest first; filters by provider and conversation; 204 when none", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const [first, second] = await mails(d, 2, "order");
    // Folded in one go, the two mails may share a receipt time: order is (time, id).
    const listed = await apiGet(d, "/api/v1/messages?status=new");
    const oldest = (listed.body.messages as { id: string }[])[0].id;
    assert.ok([first, second].includes(oldest));
    const a = await claimNext(d, { agent_id: "a" });
    assert.equal(a.body.id, oldest);
    await apiPost(d, "/api/v1/inbound/slack", {
      session_id: "only-here",
      sender: { id: "u" },
      text: "slack one",
    });
    await eventually(async () =>
      ((await apiGet(d, "/api/v1/messages?provider=slack")).body.count as number) === 1
    );
    const none = await claimNext(d, { agent_id: "b", provider: "slack", session_id: "elsewhere" });
    assert.equal(none.status, 204);
    const slack = await claimNext(d, { agent_id: "b", provider: "slack" });
    assert.equal(slack.body.provider, "slack");
    const bad = await claimNext(d, { agent_id: "b", direction: "outbound" });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, "direction");
    const badWait = await claimNext(d, { agent_id: "b", wait_s: 61 });
    assert.equal(badWait.body.field, "wait_s");
    await stopDaemon(d);
  });
});

Deno.test("claim-next: a waiting agent wakes on a new mail, a release, an expired claim, a retry due", async () => {
  await withHome(async (h) => {
    await writeHomeConfig(h, { retry_backoff_ms: 300, retry_backoff_cap_ms: 300 });
    const d = await startDaemon(h, FAST);
    // 1. A new mail.
    const waiting = claimNext(d, { agent_id: "waiter", wait_s: 60 });
    await eventually(async () =>
      ((await apiGet(d, "/health")).body.metrics as { waiting_agents: number })
        .waiting_agents === 1
    );
    await apiPost(d, "/api/v1/inbound/lark", {
      session_id: "fresh",
      sender: { id: "u1" },
      text: "fresh",
    });
    const woke = await waiting;
    assert.equal(woke.status, 200);
    assert.equal((woke.body.claim as { agent_id: string }).agent_id, "waiter");
    assert.equal((woke.body.content as { text: string }).text, "fresh");
    const mail = woke.body.id as string;

    // 2. A release (no failure recorded).
    const second = claimNext(d, { agent_id: "second", wait_s: 60 });
    await eventually(async () =>
      ((await apiGet(d, "/health")).body.metrics as { waiting_agents: number })
        .waiting_agents === 1
    );
    const released = await apiPost(d, `/api/v1/messages/${mail}/release`, { agent_id: "waiter" });
    assert.equal(released.status, 200);
    const afterRelease = await second;
    assert.equal(afterRelease.body.id, mail);
    assert.equal((afterRelease.body.delivery as { attempts: number }).attempts, 0);

    // 3. An expired claim (counted as a failed attempt).
    await apiPost(d, `/api/v1/messages/${mail}/claim`, { agent_id: "second", timeout: 1 });
    const third = await claimNext(d, { agent_id: "third", wait_s: 60 });
    assert.equal(third.body.id, mail);
    const delivery = third.body.delivery as { attempts: number; failures: { reason: string }[] };
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.failures[0].reason, "claim expired");

    // 4. A retry that comes due.
    const failed = await apiPost(d, `/api/v1/messages/${mail}/fail`, {
      agent_id: "third",
      reason: "try later",
    });
    assert.equal(failed.body.status, "retrying");
    const fourth = await claimNext(d, { agent_id: "fourth", wait_s: 60 });
    assert.equal(fourth.body.id, mail);
    assert.equal((fourth.body.delivery as { attempts: number }).attempts, 2);
    await stopDaemon(d);
  });
});

Deno.test("claim expiry counts as an attempt: a mail that outlives every claim ends dead", async () => {
  await withHome(async (h) => {
    await writeHomeConfig(h, { max_attempts: 2 });
    const d = await startDaemon(h, FAST);
    const [id] = await mails(d, 1, "doomed");
    for (let attempt = 1; attempt <= 2; attempt++) {
      const claimed = await claimNext(d, { agent_id: "crashy", timeout: 0.2, wait_s: 30 });
      assert.equal(claimed.body.id, id, `attempt ${attempt}`);
    }
    await eventually(async () =>
      (await apiGet(d, `/api/v1/messages/${id}`)).body.status === "dead"
    );
    const dead = await apiGet(d, `/api/v1/messages/${id}`);
    const delivery = dead.body.delivery as {
      attempts: number;
      dead_reason: string;
      failures: { reason: string; agent_id: string }[];
    };
    assert.equal(delivery.attempts, 2);
    assert.match(delivery.dead_reason, /claim expired/);
    assert.deepEqual(delivery.failures.map((f) => f.agent_id), ["crashy", "crashy"]);
    assert.equal(
      (await claimNext(d, { agent_id: "x" })).status,
      204,
      "dead mails are not handed out",
    );

    // Requeue: new again, attempts reset, history kept.
    const requeued = await apiPost(d, `/api/v1/messages/${id}/requeue`, {});
    assert.equal(requeued.status, 200);
    assert.equal(requeued.body.status, "new");
    const again = await claimNext(d, { agent_id: "fixed" });
    assert.equal(again.body.id, id);
    const history = again.body.delivery as {
      attempts: number;
      failures: unknown[];
      requeued: { attempts: number; dead_reason: string }[];
    };
    assert.equal(history.attempts, 0);
    assert.equal(history.failures.length, 2);
    assert.equal(history.requeued[0].attempts, 2);
    assert.match(history.requeued[0].dead_reason, /claim expired/);
    const notDead = await apiPost(d, `/api/v1/messages/${id}/requeue`, {});
    assert.equal(notDead.status, 409);
    assert.equal(notDead.body.status, "claimed");
    await stopDaemon(d);
  });
});

Deno.test("claim-next: an agent that leaves mid-wait takes nothing with it", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const leaving = new AbortController();
    const gone = apiFetch(d, "/api/v1/messages/claim-next", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_id: "leaver", wait_s: 60 }),
      signal: leaving.signal,
    }).catch(() => null);
    await eventually(async () =>
      ((await apiGet(d, "/health")).body.metrics as { waiting_agents: number })
        .waiting_agents === 1
    );
    leaving.abort();
    await gone;
    await eventually(async () =>
      ((await apiGet(d, "/health")).body.metrics as { waiting_agents: number })
        .waiting_agents === 0
    );
    const [id] = await mails(d, 1, "kept");
    const stayer = await claimNext(d, { agent_id: "stayer" });
    assert.equal(stayer.body.id, id);
    await stopDaemon(d);
  });
});

Deno.test("release: only the holder; release of what is not claimed is a conflict", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const [id] = await mails(d, 1, "rel");
    const unclaimed = await apiPost(d, `/api/v1/messages/${id}/release`, { agent_id: "a" });
    assert.equal(unclaimed.status, 409);
    await apiPost(d, `/api/v1/messages/${id}/claim`, { agent_id: "a" });
    const other = await apiPost(d, `/api/v1/messages/${id}/release`, { agent_id: "b" });
    assert.equal(other.status, 403);
    assert.equal(other.body.holder, "a");
    assert.equal(typeof other.body.expires_at, "string");
    const mine = await apiPost(d, `/api/v1/messages/${id}/release`, { agent_id: "a" });
    assert.equal(mine.body.status, "new");
    const shown = await apiGet(d, `/api/v1/messages/${id}`);
    assert.equal((shown.body.delivery as { attempts: number }).attempts, 0, "no failure recorded");
    await stopDaemon(d);
  });
});
