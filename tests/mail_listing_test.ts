import assert from "node:assert/strict";
import { inbound, type MailHarness, withMail } from "./helpers/mail.ts";

interface Row {
  id: string;
  status: string;
  preview: string;
  received_at: string;
  session: { id: string };
}

/** Posts a message in its own conversation, folds it, and moves the clock on a little. */
async function mail(h: MailHarness, text: string, session = text): Promise<void> {
  await h.post("/api/v1/inbound/lark", inbound({ text, session_id: session }));
  await h.service.flushPending();
  h.clock!.advance(1000);
}

async function page(h: MailHarness, query: string): Promise<{ rows: Row[]; next?: string }> {
  const reply = await h.get(`/api/v1/messages?${query}`);
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return { rows: reply.body.messages as Row[], next: reply.body.next_cursor as string | undefined };
}

Deno.test("list: several statuses, one conversation, newest first", async () => {
  await withMail({ fakeClock: true, settings: { debounceWindowMs: 60_000 } }, async (h) => {
    for (const text of ["a", "b", "c", "d"]) await mail(h, text, text === "d" ? "a" : text);
    const rows = (await page(h, "status=new")).rows;
    const [a, b, c] = rows;
    await h.post(`/api/v1/messages/${b.id}/claim`, { agent_id: "x" });
    await h.post(`/api/v1/messages/${c.id}/claim`, { agent_id: "x" });
    await h.post(`/api/v1/messages/${c.id}/fail`, { agent_id: "x", reason: "later" });
    const open = await page(h, "status=new,retrying");
    assert.deepEqual(open.rows.map((r) => r.preview), ["a", "c", "d"]);
    assert.deepEqual(open.rows.map((r) => r.status), ["new", "retrying", "new"]);
    const repeated = await page(h, "status=new&status=claimed&order=newest");
    assert.deepEqual(repeated.rows.map((r) => r.preview), ["d", "b", "a"]);
    const session = await page(h, "session_id=a");
    assert.deepEqual(session.rows.map((r) => r.preview), ["a", "d"]);
    assert.equal(session.rows[0].id, a.id);
    for (
      const [query, field] of [["status=new,lost", "status"], ["order=random", "order"], [
        "cursor=nonsense",
        "cursor",
      ]]
    ) {
      const bad = await h.get(`/api/v1/messages?${query}`);
      assert.equal(bad.status, 400, query);
      assert.equal(bad.body.field, field, query);
    }
  });
});

Deno.test("list: paging with a cursor is stable while mails arrive", async () => {
  await withMail({ fakeClock: true, settings: { debounceWindowMs: 60_000 } }, async (h) => {
    for (let i = 0; i < 10; i++) await mail(h, `old ${i}`);
    for (const order of ["oldest", "newest"]) {
      const seen: string[] = [];
      let cursor: string | undefined;
      let arrived = 0;
      do {
        const { rows, next } = await page(
          h,
          `order=${order}&limit=3${cursor ? `&cursor=${cursor}` : ""}`,
        );
        seen.push(...rows.map((r) => r.preview));
        cursor = next;
        await mail(h, `new ${order} ${arrived++}`); // arrives between pages
      } while (cursor);
      const old = seen.filter((p) => p.startsWith("old"));
      assert.equal(new Set(seen).size, seen.length, `${order}: no mail twice`);
      assert.deepEqual(
        old,
        Array.from({ length: 10 }, (_, i) => `old ${order === "oldest" ? i : 9 - i}`),
        `${order}: every mail that was there, once, in order`,
      );
      if (order === "oldest") {
        assert.ok(seen.some((p) => p.startsWith("new")), "oldest first: arrivals come at the end");
      }
    }
    const first = await page(h, "order=newest&limit=2");
    const wrongOrder = await h.get(`/api/v1/messages?order=oldest&cursor=${first.next}`);
    assert.equal(wrongOrder.status, 400);
    assert.match(wrongOrder.body.error as string, /order=newest/);
  });
});
