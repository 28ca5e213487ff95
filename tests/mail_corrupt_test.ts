/**
 * Damaged files: state files and lines are moved aside with a warning and
 * every readable record is kept; unreadable mails are quarantined; doctor
 * reports all of it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Diagnosis } from "../lib/doctor/mod.ts";
import { mailboxLayout } from "../lib/mail/mod.ts";
import { json, withHome } from "./helpers/courier.ts";
import { inbound, withMail } from "./helpers/mail.ts";

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("a truncated locks.json is moved aside; the claims still readable are kept", async () => {
  const log: string[] = [];
  await withMail({ log }, async (h) => {
    const first = await h.newMail("first");
    const second = await h.newMail("second");
    await h.post(`/api/v1/messages/${first}/claim`, { agent_id: "agent-a" });
    await h.post(`/api/v1/messages/${second}/claim`, { agent_id: "agent-a" });
    const layout = mailboxLayout(h.home);
    await h.restart(async () => {
      const text = await Deno.readTextFile(layout.locksFile);
      const cut = text.indexOf(second) > text.indexOf(first)
        ? text.indexOf(second) + 20
        : text.indexOf(first) + 20;
      await Deno.writeTextFile(layout.locksFile, text.slice(0, cut)); // a torn write
    });
    const aside = (await names(layout.stateDir)).filter((n) => n.startsWith("locks.json.corrupt-"));
    assert.equal(aside.length, 1, "the damaged file is kept for inspection");
    assert.ok(log.some((l) => l.startsWith("warn") && l.includes("was damaged")));
    const kept = [first, second];
    const statuses = await Promise.all(
      kept.map(async (id) => (await h.get(`/api/v1/messages/${id}`)).body.status),
    );
    assert.ok(statuses.includes("claimed"), "the readable claim is still held");
    const held = kept[statuses.indexOf("claimed")];
    const other = await h.post(`/api/v1/messages/${held}/claim`, { agent_id: "agent-b" });
    assert.equal(other.status, 409);
    assert.equal(other.body.holder, "agent-a");
  });
});

Deno.test("a damaged line in the pending journal is kept aside; every readable record becomes mail", async () => {
  const log: string[] = [];
  await withMail({ settings: { debounceWindowMs: 60_000 }, log }, async (h) => {
    for (const text of ["one", "two", "three"]) {
      await h.post("/api/v1/inbound/lark", inbound({ text, session_id: text }));
    }
    const layout = mailboxLayout(h.home);
    const journal = await Deno.readTextFile(layout.journalFile);
    await h.restart(async () => {
      // The service flushed at stop; put back the journal as a crash would leave it, damaged.
      for (const dir of [join(layout.inboundDir, "lark")]) {
        await Deno.remove(dir, { recursive: true });
      }
      const lines = journal.split("\n");
      lines[1] = lines[1].slice(0, 50) + "#garbage#"; // a whole line that is not a record
      await Deno.writeTextFile(layout.journalFile, lines.join("\n"));
      await Deno.remove(layout.indexFile).catch(() => {});
    });
    await h.service.flushPending();
    const texts = (await h.mails()).flatMap((m) => m.frontMatter.messages.map((x) => x.text));
    assert.deepEqual(texts.sort(), ["one", "three"]);
    const aside = (await names(layout.stateDir)).filter((n) =>
      n.startsWith("pending.jsonl.corrupt-")
    );
    assert.equal(aside.length, 1);
    const copy = await Deno.readTextFile(join(layout.stateDir, aside[0]));
    assert.ok(copy.includes("#garbage#"), "the evidence is kept");
    assert.ok(log.some((l) => l.startsWith("warn") && l.includes("damaged line")));
  });
});

Deno.test("an unreadable mail is quarantined and dropped from the index: 404, never 500", async () => {
  const log: string[] = [];
  await withMail({ log }, async (h) => {
    const id = await h.newMail("to be garbled");
    await h.post(`/api/v1/messages/${id}/claim`, { agent_id: "a" });
    const done = await h.post(`/api/v1/messages/${id}/complete`, { agent_id: "a" });
    const path = done.body.path as string;
    await h.restart(); // the index cache now knows the archived mail
    await Deno.writeTextFile(path, "---\nid: [unclosed\n---\n\ngarbage");
    const listed = await h.get("/api/v1/messages?status=done");
    assert.equal(listed.body.count, 1, "listed until someone reads it");
    const shown = await h.get(`/api/v1/messages/${id}`);
    assert.equal(shown.status, 404);
    assert.match(shown.body.error as string, /unreadable/);
    const moved = shown.body.quarantined as string;
    assert.ok(moved.includes(join("mailbox", ".corrupt", "archive", "lark")));
    assert.ok((await Deno.readTextFile(moved)).includes("garbage"));
    assert.equal((await h.get("/api/v1/messages?status=done")).body.count, 0);
    assert.ok(log.some((l) => l.startsWith("warn") && l.includes("unreadable mail file")));
  });
});

Deno.test("indexing quarantines unreadable mails it finds", async () => {
  await withMail({}, async (h) => {
    const id = await h.newMail("fine");
    const layout = mailboxLayout(h.home);
    await h.restart(async () => {
      await Deno.writeTextFile(
        join(layout.inboundDir, "lark", "20260101T000000_lark_broken.md"),
        "not a mail",
      );
      await Deno.remove(layout.indexFile);
    });
    const listed = await h.get("/api/v1/messages");
    assert.deepEqual((listed.body.messages as { id: string }[]).map((m) => m.id), [id]);
    assert.deepEqual(await names(join(layout.corruptDir, "inbound", "lark")), [
      "20260101T000000_lark_broken.md",
    ]);
  });
});

Deno.test("doctor reports damaged state moved aside, quarantined mails and unreadable mail files", async () => {
  await withHome(async (h) => {
    const layout = mailboxLayout(h.home);
    await Deno.mkdir(join(layout.inboundDir, "lark"), { recursive: true });
    await Deno.mkdir(layout.stateDir, { recursive: true });
    const clean = await h.run(["doctor", "--json"]);
    const before = json<Diagnosis>(clean).findings.filter((f) => f.check === "mailbox");
    assert.deepEqual(before.map((f) => f.level), ["ok"]);
    await Deno.writeTextFile(
      join(layout.stateDir, "locks.json.corrupt-2026-01-01T00-00-00-000Z"),
      "{",
    );
    await Deno.mkdir(join(layout.corruptDir, "archive", "lark"), { recursive: true });
    await Deno.writeTextFile(join(layout.corruptDir, "archive", "lark", "x.md"), "junk");
    await Deno.writeTextFile(
      join(layout.inboundDir, "lark", "20260101T000000_lark_bad.md"),
      "junk",
    );
    const result = await h.run(["doctor", "--json"]);
    assert.equal(result.code, 1);
    const found = json<Diagnosis>(result).findings.filter((f) => f.check === "mailbox");
    assert.equal(found.length, 3, JSON.stringify(found));
    assert.ok(found.every((f) => f.level === "problem" && f.fix));
    assert.match(found[0].message, /moved aside/);
    assert.match(found[1].message, /1 unreadable mail file\(s\) were quarantined/);
    assert.match(found[2].message, /1 of 1 mail file\(s\) cannot be read/);
  });
});
