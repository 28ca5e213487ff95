/**
 * Disk faults under the mail service, on a real small file system (tmpfs):
 * full, read-only, and files damaged behind courier's back. Nothing
 * acknowledged may be lost or stored twice, and a 5xx changes nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mailboxLayout, PendingJournal, readJournal } from "../lib/mail/mod.ts";
import { type SmallDisk, withSmallDisk } from "./helpers/disk.ts";
import { eventually, inbound, MailHarness, readMails } from "./helpers/mail.ts";

/** A harness whose home is a fresh tmpfs of `sizeKb`. */
async function withDiskHome(
  sizeKb: number,
  options: { settings?: Record<string, unknown>; log?: string[] },
  fn: (h: MailHarness, disk: SmallDisk) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "courier-disk-test-" });
  try {
    await withSmallDisk(join(root, "home"), sizeKb, async (disk) => {
      const h = await MailHarness.create({ home: disk.path, ...options });
      try {
        await fn(h, disk);
      } finally {
        await h.service.stop().catch(() => {});
      }
    });
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/**
 * Renews a claim until the claims log's last page is nearly full, so the
 * next change cannot be written once the disk is full (a file system takes
 * small appends into the free end of a file's last page even then).
 */
async function fillLastPage(h: MailHarness, id: string, agent: string): Promise<void> {
  const log = mailboxLayout(h.home).claimsLogFile;
  for (let n = 0; 4096 - (Deno.statSync(log).size % 4096) > 150; n++) {
    const renewed = await h.post(`/api/v1/messages/${id}/claim`, {
      agent_id: agent,
      timeout: 300 + n,
    });
    assert.equal(renewed.status, 200);
  }
}

Deno.test("disk full: mail writes are retried until space returns; health says degraded meanwhile", async () => {
  const log: string[] = [];
  await withDiskHome(2048, {
    settings: { debounceWindowMs: 60_000, writeRetryCapMs: 500 },
    log,
  }, async (h, disk) => {
    for (let i = 0; i < 5; i++) {
      const reply = await h.post(
        "/api/v1/inbound/lark",
        inbound({ text: `t${i}`, message_id: `m${i}` }),
      );
      assert.equal(reply.status, 202);
    }
    await disk.fill();
    const flushing = h.service.flushPending(); // the mail write fails: it must keep trying
    await eventually(() => h.service.health().status === "degraded", { what: "degraded" });
    const health = h.service.health();
    const faults = health.degraded as { area: string; reason: string }[];
    assert.equal(faults[0].area, "mail writes");
    assert.match(faults[0].reason, /No space left on device/);
    assert.equal((health.metrics as { pending: number }).pending, 5, "pending is truthful");
    // Longer than the five attempts of old, then space comes back.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal((await readMails(h.home, "inbound")).length, 0);
    await disk.free();
    await flushing;
    const mails = await readMails(h.home, "inbound");
    assert.deepEqual(mails.flatMap((m) => m.frontMatter.messages.map((x) => x.text)).sort(), [
      "t0",
      "t1",
      "t2",
      "t3",
      "t4",
    ]);
    assert.equal(h.service.health().status, undefined, "no longer degraded");
    assert.equal(h.service.metrics().pending, 0);
    assert.ok(log.some((line) => line.includes("mail writes succeed again")));
  });
});

Deno.test("disk full: a message whose journal write failed gets 503 with Retry-After, and is not half-stored", async () => {
  await withDiskHome(1024, { settings: { debounceWindowMs: 60_000 } }, async (h, disk) => {
    await disk.fill();
    const reply = await h.post(
      "/api/v1/inbound/lark",
      inbound({ text: "x".repeat(6000), message_id: "big" }),
    );
    assert.equal(reply.status, 503);
    assert.equal(reply.headers.get("retry-after"), "5");
    assert.match(reply.body.error as string, /No space left on device/);
    assert.equal(h.service.metrics().received, 0);
    await disk.free();
    const retry = await h.post(
      "/api/v1/inbound/lark",
      inbound({ text: "x".repeat(6000), message_id: "big" }),
    );
    assert.equal(retry.status, 202);
    assert.equal(retry.body.duplicate, undefined, "the failed copy does not count");
  });
});

Deno.test("journal: a batch whose write failed leaves no record behind to replay", async () => {
  const root = await Deno.makeTempDir({ prefix: "courier-journal-disk-" });
  try {
    await withSmallDisk(join(root, "disk"), 256, async (disk) => {
      const path = join(disk.path, "pending.jsonl");
      const journal = await PendingJournal.open(path);
      const record = (n: number, size: number) => ({
        key: `key-${n}`,
        provider: "lark",
        session: { id: "s", type: "direct" as const },
        message: {
          message_id: `m${n}`,
          pending_key: `key-${n}`,
          sender: { id: "u", name: "u" },
          time: "2026-01-01T00:00:00.000Z",
          received_at: "2026-01-01T00:00:00.000Z",
          text: "y".repeat(size),
        },
      });
      await journal.append(record(0, 100));
      await disk.fill();
      // The file's last page has room for one more record but not two. While a first
      // write is in flight, the next two share one write: the first of them lands whole
      // and the write fails on the second.
      const room = 4096 - (Deno.statSync(path).size % 4096);
      const inFlight = journal.append(record(9, 10));
      const first = journal.append(record(1, room - 800));
      const second = journal.append(record(2, 8000));
      await inFlight;
      const outcomes = await Promise.allSettled([first, second]);
      assert.deepEqual(outcomes.map((o) => o.status), ["rejected", "rejected"]);
      assert.deepEqual((await readJournal(path)).records.map((r) => r.key), ["key-0", "key-9"]);
      await disk.free();
      await journal.append(record(3, 10));
      assert.deepEqual((await readJournal(path)).records.map((r) => r.key), [
        "key-0",
        "key-9",
        "key-3",
      ]);
      await journal.close();
    });
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test("journal replay: two records of one message id (a failed write and its retry) make one copy", async () => {
  const home = await Deno.makeTempDir({ prefix: "courier-dedup-journal-" });
  try {
    const layout = mailboxLayout(home);
    await Deno.mkdir(layout.stateDir, { recursive: true });
    const record = (key: string, messageId: string | undefined, text: string) => ({
      key,
      provider: "lark",
      session: { id: "s", type: "direct" },
      message: {
        ...(messageId ? { message_id: messageId } : {}),
        pending_key: key,
        sender: { id: "u", name: "u" },
        time: new Date().toISOString(),
        received_at: new Date().toISOString(),
        text,
      },
    });
    const lines = [
      record("failed-copy", "m1", "hello"), // written whole, but the write failed: never acknowledged
      record("retry", "m1", "hello"), // the sender's retry, acknowledged
      record("other", "m2", "world"),
    ];
    await Deno.writeTextFile(
      layout.journalFile,
      lines.map((l) => JSON.stringify(l) + "\n").join(""),
    );
    const h = await MailHarness.create({ home });
    try {
      await h.service.flushPending();
      const messages = (await h.mails()).flatMap((m) => m.frontMatter.messages);
      assert.deepEqual(messages.map((m) => m.message_id).sort(), ["m1", "m2"]);
      assert.equal(messages.find((m) => m.message_id === "m1")!.pending_key, "retry");
      const repeat = await h.post(
        "/api/v1/inbound/lark",
        inbound({ session_id: "s", message_id: "m1" }),
      );
      assert.equal(repeat.body.pending_key, "retry");
    } finally {
      await h.cleanup();
    }
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
});

Deno.test("read-only or full disk: claim, complete, fail and release answer 503 naming the error, and change nothing", async () => {
  await withDiskHome(2048, { settings: { debounceWindowMs: 10 } }, async (h, disk) => {
    const id = await h.newMail("work");
    const held = await h.newMail("held");
    assert.equal((await h.post(`/api/v1/messages/${held}/claim`, { agent_id: "a" })).status, 200);
    const layout = mailboxLayout(h.home);
    const unmount = [
      await disk.readOnlyAt(join(layout.archiveDir, "lark")),
      await disk.readOnlyAt(join(layout.deadletterDir, "lark")),
    ];
    const done = await h.post(`/api/v1/messages/${held}/complete`, { agent_id: "a" });
    assert.equal(done.status, 503);
    assert.ok(Number(done.headers.get("retry-after")) > 0);
    assert.match(done.body.error as string, /Read-only file system/);
    assert.doesNotMatch(done.body.error as string, /internal error/);
    const dead = await h.post(`/api/v1/messages/${held}/fail`, {
      agent_id: "a",
      reason: "x",
      retryable: false,
    });
    assert.equal(dead.status, 503);
    assert.match(dead.body.error as string, /Read-only file system/);
    for (const off of unmount) await off();
    await fillLastPage(h, held, "a");
    await disk.fill();
    const claim = await h.post(`/api/v1/messages/${id}/claim`, { agent_id: "b" });
    assert.equal(claim.status, 503);
    assert.match(claim.body.error as string, /No space left on device/);
    assert.equal((await h.post("/api/v1/messages/claim-next", { agent_id: "b" })).status, 503);
    for (const action of ["fail", "release"]) {
      const reply = await h.post(`/api/v1/messages/${held}/${action}`, {
        agent_id: "a",
        reason: "x",
      });
      assert.equal(reply.status, 503, action);
      assert.match(reply.body.error as string, /No space left on device/, action);
    }
    // Nothing changed: the first mail is still new, the other still held by a, no attempt counted.
    assert.equal((await h.get(`/api/v1/messages/${id}`)).body.status, "new");
    const shown = await h.get(`/api/v1/messages/${held}`);
    assert.equal(shown.body.status, "claimed");
    assert.equal((shown.body.claim as { agent_id: string }).agent_id, "a");
    assert.equal((shown.body.delivery as { attempts: number }).attempts, 0);
    assert.equal(h.service.health().status, "degraded");
    await disk.free();
    assert.equal((await h.post(`/api/v1/messages/${id}/claim`, { agent_id: "b" })).status, 200);
    assert.equal(
      (await h.post(`/api/v1/messages/${held}/complete`, { agent_id: "a" })).status,
      200,
    );
    // The claims survive a restart as answered.
    await h.restart();
    assert.equal((await h.get(`/api/v1/messages/${id}`)).body.status, "claimed");
    assert.equal((await h.get(`/api/v1/messages/${held}`)).body.status, "done");
  });
});

Deno.test("disk full: a claim that cannot be recorded is not held", async () => {
  await withDiskHome(2048, { settings: { debounceWindowMs: 10 } }, async (h, disk) => {
    const id = await h.newMail("full");
    const other = await h.newMail("other");
    await h.post(`/api/v1/messages/${other}/claim`, { agent_id: "a" });
    await fillLastPage(h, other, "a");
    await disk.fill();
    const claim = await h.post(`/api/v1/messages/${id}/claim`, { agent_id: "a" });
    assert.equal(claim.status, 503);
    assert.match(claim.body.error as string, /No space left on device/);
    assert.equal((await h.get(`/api/v1/messages/${id}`)).body.status, "new");
    await disk.free();
    const retried = await h.post(`/api/v1/messages/${id}/claim`, { agent_id: "b" });
    assert.equal(retried.status, 200);
  });
});

Deno.test("stop on a failing disk gives up mail writes at once; the journal keeps the messages", async () => {
  const log: string[] = [];
  await withDiskHome(2048, { settings: { debounceWindowMs: 60_000 }, log }, async (h, disk) => {
    for (let i = 0; i < 3; i++) {
      await h.post("/api/v1/inbound/lark", inbound({ text: `s${i}`, session_id: `s${i}` }));
    }
    await disk.fill();
    const started = performance.now();
    await h.service.stop();
    const took = performance.now() - started;
    assert.ok(took < h.service.settings.stopBudgetMs, `stop took ${Math.round(took)} ms`);
    assert.ok(log.some((l) => l.includes("giving up writing mail")));
    assert.ok(log.some((l) => l.includes("stay in the journal")));
    await disk.free();
    await h.restart();
    await h.service.flushPending();
    const texts = (await h.mails()).flatMap((m) => m.frontMatter.messages.map((x) => x.text));
    assert.deepEqual(texts.sort(), ["s0", "s1", "s2"]);
  });
});
