/**
 * A big mailbox without its index cache: the daemon is ready at once and
 * serves while it indexes in the background, and what it answers meanwhile
 * is consistent (no duplicate stored, no claim lost).
 */
import assert from "node:assert/strict";
import { mailboxLayout } from "../lib/mail/mod.ts";
import { writeMailboxFixture } from "../scripts/mailbox_fixture.ts";
import { withHome } from "./helpers/courier.ts";
import { apiGet, startDaemon, stopDaemon } from "./helpers/api.ts";
import { eventually, inbound, MailHarness, readMails } from "./helpers/mail.ts";

Deno.test("a mailbox of 20,000 mails without its index cache: start is ready at once and indexes meanwhile", async () => {
  await withHome(async (h) => {
    await writeMailboxFixture(h.home, { mails: 20_000, fresh: 500, dead: 100 });
    const d = await startDaemon(h); // the default start timeout
    const health = await apiGet(d, "/health");
    assert.equal(health.status, 200);
    await eventually(async () => !(await apiGet(d, "/health")).body.indexing, {
      timeoutMs: 120_000,
      what: "indexing to finish",
    });
    const done = await apiGet(d, "/api/v1/messages?status=done&limit=1");
    assert.equal(done.status, 200);
    const counts = (await apiGet(d, "/health")).body.metrics as { deadletter: number };
    assert.equal(counts.deadletter, 100);
    const fresh = await apiGet(d, "/api/v1/messages?status=new&limit=1000");
    assert.equal(fresh.body.count, 500);
    await stopDaemon(d);
  });
});

Deno.test("while indexing: a repeated message id is stored once, and a held claim is never handed out", async () => {
  const home = await Deno.makeTempDir({ prefix: "courier-indexing-test-" });
  try {
    await writeMailboxFixture(home, { mails: 4000, fresh: 200, dead: 0 });
    const first = await MailHarness.create({ home });
    const held = (await first.post("/api/v1/messages/claim-next", { agent_id: "holder" })).body
      .id as string;
    assert.ok(held);
    // A message id already in a recent archived mail (within the dedup window).
    const archived = (await readMails(home, "archive")).at(-1)!.frontMatter;
    const repeated = archived.messages[0].message_id!;
    await first.service.stop();
    await Deno.remove(mailboxLayout(home).indexFile); // a start without the index cache

    const h = await MailHarness.create({
      home,
      noIndexWait: true,
      settings: { debounceWindowMs: 10 },
    });
    try {
      const during = await Promise.all([
        h.post(
          `/api/v1/inbound/${archived.provider}`,
          inbound({ session_id: "x", message_id: repeated }),
        ),
        h.post("/api/v1/inbound/lark", inbound({ session_id: "y", message_id: "brand-new" })),
        h.post("/api/v1/messages/claim-next", { agent_id: "b", wait_s: 5 }),
        h.get("/api/v1/messages?status=done&limit=1"),
      ]);
      assert.deepEqual(during.slice(0, 2).map((r) => r.status), [202, 202]);
      assert.notEqual(during[2].body.id, held, "a held mail is not handed out while indexing");
      assert.ok([200, 503].includes(during[3].status));
      if (during[3].status === 503) assert.ok(during[3].headers.get("retry-after"));
      await h.service.indexed();
      await h.service.flushPending();
      const ids = (await readMails(home, "inbound")).concat(await readMails(home, "archive"))
        .flatMap((m) => m.frontMatter.messages.map((x) => x.message_id));
      assert.equal(ids.filter((id) => id === repeated).length, 1, "stored once");
      assert.equal(ids.filter((id) => id === "brand-new").length, 1);
      const shown = await h.get(`/api/v1/messages/${held}`);
      assert.equal(shown.body.status, "claimed");
      assert.equal((shown.body.claim as { agent_id: string }).agent_id, "holder");
      for (;;) {
        const next = await h.post("/api/v1/messages/claim-next", { agent_id: "c" });
        if (next.status === 204) break;
        assert.notEqual(next.body.id, held);
      }
    } finally {
      await h.cleanup();
    }
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
});
