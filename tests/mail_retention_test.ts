import assert from "node:assert/strict";
import { dedupWindowMs, DEFAULT_MAIL_SETTINGS, loadMailSettings } from "../lib/mail/mod.ts";
import { eventually, inbound, type MailHarness, withMail } from "./helpers/mail.ts";

const DAY = 86_400_000;

async function finish(h: MailHarness): Promise<{ done: string; dead: string; open: string }> {
  const done = await h.newMail("done one");
  await h.post(`/api/v1/messages/${done}/claim`, { agent_id: "a" });
  await h.post(`/api/v1/messages/${done}/complete`, { agent_id: "a" });
  const dead = await h.newMail("dead one");
  await h.post(`/api/v1/messages/${dead}/claim`, { agent_id: "a" });
  await h.post(`/api/v1/messages/${dead}/fail`, { agent_id: "a", reason: "no", retryable: false });
  const open = await h.newMail("open one");
  return { done, dead, open };
}

Deno.test("prune: removes done and dead mails finished before the cutoff, never open ones", async () => {
  await withMail({ fakeClock: true, settings: { debounceWindowMs: 10 } }, async (h) => {
    const { done, dead, open } = await finish(h);
    h.clock!.advance(10 * DAY);
    const fresh = await finish(h);
    const dry = await h.post("/api/v1/messages/prune", { older_than_s: 5 * 86400, dry_run: true });
    assert.deepEqual(
      { pruned: dry.body.pruned, done: dry.body.done, dead: dry.body.dead, dry: dry.body.dry_run },
      { pruned: 2, done: 1, dead: 1, dry: true },
    );
    assert.equal(
      (await h.get(`/api/v1/messages/${done}`)).status,
      200,
      "a dry run removes nothing",
    );
    const onlyDead = await h.post("/api/v1/messages/prune", {
      older_than_s: 5 * 86400,
      status: "dead",
    });
    assert.equal(onlyDead.body.pruned, 1);
    assert.equal((await h.get(`/api/v1/messages/${dead}`)).status, 404);
    assert.equal((await h.get(`/api/v1/messages/${done}`)).status, 200);
    const rest = await h.post("/api/v1/messages/prune", { older_than_s: 5 * 86400 });
    assert.equal(rest.body.pruned, 1);
    assert.equal((await h.get(`/api/v1/messages/${done}`)).status, 404);
    assert.equal((await h.mails("archive")).length, 1, "the recent done mail stays");
    assert.equal((await h.mails("deadletter")).length, 1);
    assert.equal(
      (await h.get(`/api/v1/messages/${open}`)).body.status,
      "new",
      "open mail is never pruned",
    );
    assert.equal((await h.get(`/api/v1/messages/${fresh.done}`)).status, 200);
    for (
      const [body, field] of [
        [{}, "older_than_s"],
        [{ older_than_s: -1 }, "older_than_s"],
        [{ older_than_s: 1, status: "new" }, "status"],
        [{ older_than_s: 1, dry_run: "yes" }, "dry_run"],
      ] as const
    ) {
      const bad = await h.post("/api/v1/messages/prune", body);
      assert.equal(bad.status, 400);
      assert.equal(bad.body.field, field);
    }
  });
});

Deno.test("retention settings prune by themselves; the pruned mails are gone after a restart", async () => {
  await withMail({
    fakeClock: true,
    settings: { debounceWindowMs: 10, archiveRetentionDays: 3, deadletterRetentionDays: 7 },
  }, async (h) => {
    const first = await finish(h);
    h.clock!.advance(5 * DAY);
    await h.restart(); // retention runs once the index is complete, then hourly
    await eventually(async () => (await h.get(`/api/v1/messages/${first.done}`)).status === 404);
    assert.equal(
      (await h.get(`/api/v1/messages/${first.dead}`)).status,
      200,
      "dead mails kept 7 days",
    );
    h.clock!.advance(3 * DAY);
    await h.restart();
    await eventually(async () => (await h.get(`/api/v1/messages/${first.dead}`)).status === 404);
    assert.equal((await h.get(`/api/v1/messages/${first.open}`)).body.status, "new");
  });
});

Deno.test("message ids are remembered for the dedup window, not forever", async () => {
  await withMail(
    { fakeClock: true, settings: { debounceWindowMs: 10, dedupWindowDays: 2 } },
    async (h) => {
      await h.newMail("first", { message_id: "m-1" });
      h.clock!.advance(DAY);
      const soon = await h.post("/api/v1/inbound/lark", inbound({ message_id: "m-1" }));
      assert.equal(soon.body.duplicate, true);
      h.clock!.advance(2 * DAY);
      await h.restart(); // the hourly forgetting runs at start too
      await eventually(async () => {
        const late = await h.post(
          "/api/v1/inbound/lark",
          inbound({ message_id: "m-1", text: "again" }),
        );
        return late.body.duplicate === undefined;
      });
    },
  );
});

Deno.test("settings: retention and dedup window from config.json; the dedup window never outlasts the mails", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/config.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({ archive_retention_days: 30, deadletter_retention_days: 90 }),
    );
    const settings = await loadMailSettings(file);
    assert.equal(settings.archiveRetentionDays, 30);
    assert.equal(settings.dedupWindowDays, 7);
    assert.equal(dedupWindowMs(settings), 7 * DAY);
    assert.equal(dedupWindowMs({ ...settings, dedupWindowDays: null }), 90 * DAY);
    assert.equal(dedupWindowMs({ ...DEFAULT_MAIL_SETTINGS, dedupWindowDays: null }), Infinity);
    await Deno.writeTextFile(file, JSON.stringify({ archive_retention_days: 0 }));
    await assert.rejects(() => loadMailSettings(file), /archive_retention_days.*above 0/);
    await Deno.writeTextFile(file, JSON.stringify({ dedup_window_days: null }));
    assert.equal((await loadMailSettings(file)).dedupWindowDays, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
