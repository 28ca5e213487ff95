import assert from "node:assert/strict";
import { join } from "node:path";
import {
  burstMail,
  type JournalRecord,
  mailboxLayout,
  PendingJournal,
  readJournal,
  renderMail,
} from "../lib/mail/mod.ts";
import { inbound, MailHarness, withMail } from "./helpers/mail.ts";

function record(n: number, session = "chat-1", messageId?: string): JournalRecord {
  const at = new Date(Date.UTC(2026, 0, 1, 12, 0, n)).toISOString();
  return {
    key: `key-${n}`,
    provider: "lark",
    session: { id: session, type: "direct" },
    message: {
      ...(messageId ? { message_id: messageId } : {}),
      sender: { id: "u-1", name: "Ann" },
      time: at,
      received_at: at,
      text: `message ${n}`,
      pending_key: `key-${n}`,
    },
  };
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "courier-journal-test-" });
}

Deno.test("journal: concurrent appends share group commits and all land on disk", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "pending.jsonl");
    const journal = await PendingJournal.open(path);
    await Promise.all(Array.from({ length: 500 }, (_, i) => journal.append(record(i))));
    assert.ok(journal.commits < 10, `500 appends took ${journal.commits} fsyncs`);
    assert.equal(journal.liveCount, 500);
    const back = (await readJournal(path)).records;
    assert.deepEqual(back.map((r) => r.key), Array.from({ length: 500 }, (_, i) => `key-${i}`));
    await journal.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("journal: released records are compacted away, and the file is emptied when none is live", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "pending.jsonl");
    const journal = await PendingJournal.open(path, { compactBytes: 4096 });
    await Promise.all(Array.from({ length: 100 }, (_, i) => journal.append(record(i))));
    journal.release(Array.from({ length: 90 }, (_, i) => `key-${i}`));
    await journal.settled();
    assert.deepEqual(
      (await readJournal(path)).records.map((r) => r.key),
      Array.from({ length: 10 }, (_, i) => `key-${90 + i}`),
    );
    await journal.append(record(100)); // still appends to the compacted file
    assert.equal((await readJournal(path)).records.length, 11);
    journal.release(Array.from({ length: 11 }, (_, i) => `key-${90 + i}`));
    await journal.settled();
    assert.equal(await Deno.readTextFile(path), "");
    await journal.close();
    await assert.rejects(() => journal.append(record(1)), /closed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("journal: compaction also happens while appends never pause", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "pending.jsonl");
    const journal = await PendingJournal.open(path, { compactBytes: 64 * 1024 });
    const live: string[] = [];
    let written = 0, next = 0, largest = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let k = 0; k < 200; k++) {
        const r = record(next++);
        await journal.append(r);
        written += JSON.stringify(r).length + 1;
        largest = Math.max(largest, journal.size);
        live.push(r.key);
        if (live.length >= 50) journal.release(live.splice(0)); // a mail was written
      }
    }));
    assert.ok(largest < written / 4, `the file grew to ${largest} of ${written} bytes written`);
    await journal.settled();
    const onDisk = new Set((await readJournal(path)).records.map((r) => r.key));
    assert.ok(live.every((key) => onDisk.has(key)), "every live record is still on disk");
    await journal.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("journal: a torn last line is skipped on read", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "pending.jsonl");
    const whole = JSON.stringify(record(1)) + "\n" + JSON.stringify(record(2)) + "\n";
    await Deno.writeTextFile(path, whole + JSON.stringify(record(3)).slice(0, 40));
    assert.deepEqual((await readJournal(path)).records.map((r) => r.key), ["key-1", "key-2"]);
    assert.deepEqual((await readJournal(join(dir, "missing.jsonl"))).records, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recovery: acknowledged messages still in the journal become mail on the next start", async () => {
  // Snapshot the home while messages sit acknowledged in open debounce buckets:
  // that copy is exactly what a SIGKILL at this moment would leave on disk.
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    for (let i = 0; i < 5; i++) {
      const reply = await h.post(
        "/api/v1/inbound/lark",
        inbound({ text: `t${i}`, message_id: `m${i}`, session_id: `s${i % 2}` }),
      );
      assert.equal(reply.status, 202);
    }
    const crashed = await Deno.makeTempDir({ prefix: "courier-crash-copy-" });
    try {
      await crashCopy(h.home, crashed);
      const copy = await startOn(crashed);
      try {
        assert.equal(copy.service.startStats.recovered, 5);
        await copy.service.flushPending(); // replayed records fold in the background
        const mails = await copy.mails();
        assert.equal(mails.length, 2, "one mail per conversation");
        const texts = mails.flatMap((m) => m.frontMatter.messages.map((x) => x.text)).sort();
        assert.deepEqual(texts, ["t0", "t1", "t2", "t3", "t4"]);
        assert.equal(copy.service.metrics().mails_written, 2);
        const repeat = await copy.post("/api/v1/inbound/lark", inbound({ message_id: "m3" }));
        assert.equal(repeat.body.duplicate, true, "dedup survives the crash too");
        await copy.service.stop();
        const journal = mailboxLayout(crashed).journalFile;
        assert.equal(await Deno.readTextFile(journal), "", "replayed records are trimmed");
      } finally {
        await copy.service.stop();
      }
    } finally {
      await Deno.remove(crashed, { recursive: true });
    }
  });
});

Deno.test("recovery: a crash between writing the mail and trimming the journal folds nothing twice", async () => {
  const home = await tempDir();
  try {
    // A clean run first, so an index snapshot exists (the crash happens in a later run).
    await (await startOn(home)).service.stop();
    const layout = mailboxLayout(home);
    assert.ok((await Deno.stat(layout.indexFile)).isFile);
    const records = [record(1), record(2), record(3), record(4, "other")];
    // key-1 and key-2 made it into a mail; the journal still holds all four.
    const written = burstMail(records.slice(0, 2));
    await Deno.mkdir(join(layout.inboundDir, "lark"), { recursive: true });
    await Deno.writeTextFile(
      join(layout.inboundDir, "lark", `20260101T120001_${written.frontMatter.id}.md`),
      renderMail(written),
    );
    await Deno.mkdir(layout.stateDir, { recursive: true });
    await Deno.writeTextFile(
      layout.journalFile,
      records.map((r) => JSON.stringify(r) + "\n").join(""),
    );
    for (let run = 0; run < 2; run++) {
      const h = await startOn(home);
      try {
        await h.service.flushPending(); // replayed records fold in the background
        const keys = (await h.mails()).flatMap((m) =>
          m.frontMatter.messages.map((x) => x.pending_key)
        )
          .sort();
        assert.deepEqual(keys, ["key-1", "key-2", "key-3", "key-4"], `run ${run}`);
        assert.equal((await h.mails()).length, 3);
        assert.equal(h.service.startStats.recovered, run === 0 ? 2 : 0);
      } finally {
        await h.service.stop();
      }
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("recovery: a crash while replaying the journal still folds every message once", async () => {
  const home = await tempDir();
  const copyHome = await tempDir();
  try {
    const layout = mailboxLayout(home);
    await Deno.mkdir(layout.stateDir, { recursive: true });
    const records = Array.from({ length: 40 }, (_, i) => record(i, `chat-${i % 8}`, `m-${i}`));
    await Deno.writeTextFile(
      layout.journalFile,
      records.map((r) => JSON.stringify(r) + "\n").join(""),
    );
    const first = await startOn(home);
    try {
      // Whatever state the disk is in while the replay runs is what a crash leaves.
      await crashCopy(home, copyHome);
    } finally {
      await first.service.stop();
    }
    const second = await startOn(copyHome);
    try {
      await second.service.flushPending();
      const ids = (await second.mails()).flatMap((m) =>
        m.frontMatter.messages.map((x) => x.message_id)
      )
        .sort();
      assert.deepEqual(ids, records.map((r) => r.message.message_id).sort());
      await second.service.stop();
      assert.equal(await Deno.readTextFile(mailboxLayout(copyHome).journalFile), "");
    } finally {
      await second.service.stop();
    }
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(copyHome, { recursive: true });
  }
});

Deno.test("recovery: a mail left in two folders by an interrupted move is kept once, in the later", async () => {
  await withMail({}, async (h) => {
    await h.post("/api/v1/inbound/lark", inbound());
    await h.service.flushPending();
    const [{ id, path }] = (await h.get("/api/v1/messages")).body.messages as {
      id: string;
      path: string;
    }[];
    await h.post(`/api/v1/messages/${id}/claim`, { agent_id: "a" });
    const inboundCopy = await Deno.readTextFile(path);
    await h.post(`/api/v1/messages/${id}/complete`, { agent_id: "a" });
    await Deno.writeTextFile(path, inboundCopy); // as if the old file's removal never happened
    await Deno.writeTextFile(join(path, "..", `.${id}.md.1.1.tmp`), "half a mail");
    await h.restart();
    assert.equal((await h.mails("inbound")).length, 0);
    assert.equal((await h.mails("archive")).length, 1);
    assert.equal((await h.get(`/api/v1/messages/${id}`)).body.status, "done");
    const leftovers = [];
    for await (const e of Deno.readDir(join(path, ".."))) leftovers.push(e.name);
    assert.deepEqual(leftovers, [], "stale copy and temp file are gone");
  });
});

async function startOn(home: string): Promise<MailHarness> {
  return await MailHarness.create({ home });
}

/**
 * Copies a home the way a crash would leave it: the journal and state first,
 * then the mail folders. A record the journal drops later is by then in a
 * mail, so every acknowledged message is in the copy's journal or its mails.
 */
async function crashCopy(home: string, to: string): Promise<void> {
  const state = join("mailbox", ".state");
  await Deno.mkdir(join(to, state), { recursive: true });
  await copyDir(join(home, state), join(to, state));
  await copyDir(home, to, { skip: join(home, state) });
}

async function copyDir(from: string, to: string, options: { skip?: string } = {}): Promise<void> {
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name), target = join(to, entry.name);
    if (source === options.skip) continue;
    if (entry.isDirectory) {
      await Deno.mkdir(target, { recursive: true });
      await copyDir(source, target, options);
    } else if (entry.isFile) {
      // A live service renames temp files away while we copy: what is gone was never needed.
      await Deno.copyFile(source, target).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
  }
}

Deno.test("index snapshot: a clean restart parses no mail; changed files are parsed again", async () => {
  await withMail({ settings: { debounceWindowMs: 60_000 } }, async (h) => {
    for (const s of ["a", "b", "c"]) {
      await h.post("/api/v1/inbound/lark", inbound({ session_id: s, message_id: `id-${s}` }));
    }
    await h.service.flushPending();
    const [first] = (await h.get("/api/v1/messages")).body.messages as { id: string }[];
    await h.post(`/api/v1/messages/${first.id}/claim`, { agent_id: "a" });
    await h.post(`/api/v1/messages/${first.id}/fail`, { agent_id: "a", reason: "x" });
    await h.restart();
    assert.deepEqual(h.service.startStats, { mails: 3, parsed: 0, cached: 3, recovered: 0 });
    const listed = (await h.get("/api/v1/messages")).body.messages as {
      id: string;
      attempts: number;
      path: string;
    }[];
    assert.equal(listed.find((m) => m.id === first.id)!.attempts, 1, "cached state is current");
    // Dedup comes back from the snapshot too.
    const repeat = await h.post("/api/v1/inbound/lark", inbound({ message_id: "id-b" }));
    assert.equal(repeat.body.duplicate, true);
    // Edit a mail behind courier's back: it is parsed again.
    const edited = listed.find((m) => m.id !== first.id)!;
    const text = await Deno.readTextFile(edited.path);
    await Deno.writeTextFile(edited.path, text + "\nA note added by hand.\n");
    await h.restart();
    assert.deepEqual(h.service.startStats, { mails: 3, parsed: 1, cached: 2, recovered: 0 });
  });
});
