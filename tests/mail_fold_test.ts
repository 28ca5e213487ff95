import assert from "node:assert/strict";
import { Debouncer } from "../lib/mail/mod.ts";
import { eventually, FakeClock, inbound, withMail } from "./helpers/mail.ts";

Deno.test("fold: two messages within the window make one mail, a third after it another", async () => {
  await withMail({
    fakeClock: true,
    settings: { debounceWindowMs: 5000, debounceMaxWaitMs: 30_000 },
  }, async (h) => {
    const first = await h.post("/api/v1/inbound/lark", inbound({ text: "one" }));
    h.clock!.advance(4000); // within the 5 s window
    const second = await h.post("/api/v1/inbound/lark", inbound({ text: "two" }));
    assert.equal(first.status, 202);
    assert.equal(first.body.accepted, true);
    assert.equal(typeof first.body.pending_key, "string");
    assert.notEqual(first.body.pending_key, second.body.pending_key);
    h.clock!.advance(5000); // the window has passed
    await h.post("/api/v1/inbound/lark", inbound({ text: "three" }));
    await h.service.flushPending();
    const mails = await h.mails();
    assert.deepEqual(mails.map((m) => m.frontMatter.messages.map((x) => x.text)), [
      ["one", "two"],
      ["three"],
    ]);
    assert.equal(h.service.metrics().mails_written, 2);
    assert.equal(h.service.metrics().received, 3);
    assert.equal(h.service.metrics().pending, 0);
  });
});

Deno.test("fold: the debounce timer writes the mail by itself", async () => {
  await withMail({ settings: { debounceWindowMs: 50, debounceMaxWaitMs: 1000 } }, async (h) => {
    await h.post("/api/v1/inbound/lark", inbound({ text: "a" }));
    await h.post("/api/v1/inbound/lark", inbound({ text: "b", session_id: "chat-2" }));
    assert.equal(h.service.metrics().pending, 2);
    await eventually(() => h.service.metrics().mails_written === 2, { what: "two mails" });
    const mails = await h.mails();
    assert.equal(mails.length, 2);
    assert.equal(h.service.metrics().pending, 0);
  });
});

Deno.test("fold: the max wait cuts a burst that never pauses", async () => {
  // A fake clock: messages every 4 s, window 5 s, max wait 30 s.
  await withMail({
    fakeClock: true,
    settings: { debounceWindowMs: 5000, debounceMaxWaitMs: 30_000 },
  }, async (h) => {
    for (let i = 0; i <= 9; i++) {
      await h.post("/api/v1/inbound/lark", inbound({ text: `m${i}`, message_id: `id-${i}` }));
      h.clock!.advance(4000);
    }
    await h.service.flushPending();
    const mails = await h.mails();
    assert.deepEqual(
      mails.map((m) => m.frontMatter.messages.map((x) => x.text)),
      [["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"], ["m8", "m9"]],
    );
  });
});

Deno.test("fold: conversations and threads fold separately; the mail carries every field", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    await h.post(
      "/api/v1/inbound/lark",
      inbound({
        session_type: "group",
        session_name: "Ops",
        text: "in the room",
        timestamp: "2026-01-02T03:04:05Z",
        message_id: "m-1",
        extra: { tenant: "acme" },
        chat_kind: "supergroup",
      }),
    );
    await h.post(
      "/api/v1/inbound/lark",
      inbound({ thread_key: "t-9", sender: { id: "u-bob", name: "Bob" }, text: "in a thread" }),
    );
    await h.post("/api/v1/inbound/lark", inbound({ session_id: "chat-2", text: "elsewhere" }));
    await h.post("/api/v1/inbound/dingtalk", inbound({ text: "other provider" }));
    await h.service.flushPending();
    const mails = await h.mails();
    assert.equal(mails.length, 4);
    const room = mails.find((m) => m.frontMatter.content.text === "in the room")!;
    const fm = room.frontMatter;
    assert.match(fm.id, /^lark_[0-9a-z]{16}$/);
    assert.equal(fm.provider, "lark");
    assert.equal(fm.direction, "inbound");
    assert.deepEqual(fm.session, { id: "chat-1", type: "group", name: "Ops" });
    assert.deepEqual(fm.participants.from, { id: "u-alice", name: "Alice" });
    assert.equal(fm.timestamp, "2026-01-02T03:04:05.000Z");
    assert.equal(typeof fm.received_at, "string");
    assert.equal(fm.type, "text");
    assert.match(fm.content.markdown, /\*\*Alice\*\*/);
    assert.equal(fm.messages[0].message_id, "m-1");
    assert.deepEqual(fm.metadata.extra, { tenant: "acme", chat_kind: "supergroup" });
    assert.match(room.body, /^# Ops\n/);
    assert.match(room.body, /in the room/);
    const thread = mails.find((m) => m.frontMatter.content.text === "in a thread")!;
    assert.deepEqual(thread.frontMatter.session, {
      id: "chat-1",
      type: "thread",
      thread_key: "t-9",
    });
  });
});

Deno.test("fold: the mail file name is <UTC time>_<provider>_<uid>.md", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    await h.post("/api/v1/inbound/my-bot_2", inbound());
    await h.service.flushPending();
    const list = await h.get("/api/v1/messages");
    const [mail] = list.body.messages as { id: string; path: string; received_at: string }[];
    const name = mail.path.split("/").at(-1)!;
    const stamp = mail.received_at.replace(/[-:]/g, "").slice(0, 15);
    assert.equal(name, `${stamp}_${mail.id}.md`);
    assert.match(mail.id, /^my-bot_2_[0-9a-z]{16}$/);
    assert.ok(mail.path.includes("/mailbox/inbound/my-bot_2/"));
  });
});

Deno.test("dedup: a repeated message_id is acknowledged but stored once, also after a restart", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    const first = await h.post("/api/v1/inbound/lark", inbound({ message_id: "dup-1" }));
    const again = await h.post("/api/v1/inbound/lark", inbound({ message_id: "dup-1" }));
    assert.equal(again.status, 202);
    assert.equal(again.body.duplicate, true);
    assert.equal(again.body.pending_key, first.body.pending_key);
    // Concurrent repeats of a new id: one is stored.
    const burst = await Promise.all(
      Array.from(
        { length: 8 },
        () => h.post("/api/v1/inbound/lark", inbound({ message_id: "dup-2" })),
      ),
    );
    assert.ok(burst.every((r) => r.status === 202));
    assert.equal(burst.filter((r) => !r.body.duplicate).length, 1);
    // The same id from another provider is another message.
    const other = await h.post("/api/v1/inbound/dingtalk", inbound({ message_id: "dup-1" }));
    assert.equal(other.body.duplicate, undefined);

    await h.restart();
    const afterRestart = await h.post("/api/v1/inbound/lark", inbound({ message_id: "dup-1" }));
    assert.equal(afterRestart.body.duplicate, true);
    assert.equal(afterRestart.body.pending_key, first.body.pending_key);
    await h.service.flushPending();
    const ids = (await h.mails()).flatMap((m) =>
      m.frontMatter.messages.map((x) => `${m.frontMatter.provider}/${x.message_id}`)
    ).sort();
    assert.deepEqual(ids, ["dingtalk/dup-1", "lark/dup-1", "lark/dup-2"]);
    assert.equal(h.service.metrics().duplicates, 1);
  });
});

Deno.test("Debouncer: window, max wait and item cap on a fake clock", () => {
  const clock = new FakeClock();
  const flushed: string[][] = [];
  const debouncer = new Debouncer<string>((_key, items) => flushed.push(items), {
    windowMs: 1000,
    maxWaitMs: 3000,
    maxItems: 3,
    now: clock.now,
  });
  debouncer.add("a", "a1");
  clock.advance(900);
  debouncer.add("a", "a2");
  debouncer.add("b", "b1");
  debouncer.add("a", "a3"); // third item: the cap closes bucket a
  assert.deepEqual(flushed, [["a1", "a2", "a3"]]);
  clock.advance(3000);
  debouncer.add("b", "b2"); // b is past its window (a late timer): closed before b2 opens a new one
  assert.deepEqual(flushed, [["a1", "a2", "a3"], ["b1"]]);
  assert.equal(debouncer.pendingCount, 1);
  debouncer.flushAll();
  assert.deepEqual(flushed.at(-1), ["b2"]);
  assert.equal(debouncer.pendingCount, 0);
  assert.equal(debouncer.bucketCount, 0);
});
