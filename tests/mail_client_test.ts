import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { MailClient, MailRequestError } from "../lib/mail/mod.ts";
import { withHome } from "./helpers/courier.ts";
import { startDaemon, stopDaemon, writeHomeConfig } from "./helpers/api.ts";
import { eventually } from "./helpers/mail.ts";

Deno.test("MailClient: claim-next, release, fail, requeue, paging and prune against a daemon", async () => {
  await withHome(async (h) => {
    await writeHomeConfig(h, { max_attempts: 1 });
    const d = await startDaemon(h, ["--debounce-window", "20", "--debounce-max-wait", "50"]);
    const client = await MailClient.connect(homeLayout(h.home));
    assert.equal(client.apiUrl, d.url);
    assert.equal(await client.claimNext("a"), null, "204: nothing claimable");
    for (let i = 0; i < 5; i++) {
      await client.receive("lark", { session_id: `s${i}`, sender: { id: "u" }, text: `t${i}` });
    }
    await eventually(async () => (await client.list({ status: "new" })).length === 5);
    const first = await client.listPage({ status: ["new", "retrying"], limit: 2 });
    assert.equal(first.count, 2);
    assert.ok(first.next_cursor);
    const second = await client.listPage({ status: "new", limit: 2, cursor: first.next_cursor });
    assert.deepEqual(second.messages.map((m) => m.preview), ["t2", "t3"]);
    const mail = await client.claimNext("a", { waitS: 1, timeoutS: 60 });
    assert.ok(mail);
    assert.equal(mail.claim.agent_id, "a");
    assert.equal(mail.claim.timeout_s, 60);
    const conflict = await client.release(mail.id as string, "b").catch((e) => e);
    assert.ok(conflict instanceof MailRequestError);
    assert.equal(conflict.status, 403);
    assert.equal(conflict.body.holder, "a");
    assert.equal((await client.release(mail.id as string, "a")).status, "new");
    const again = (await client.claimNext("a"))!;
    const dead = await client.fail(again.id as string, "a", { reason: "bad", retryable: true });
    assert.equal(dead.status, "dead");
    assert.equal((await client.requeue(again.id as string)).status, "new");
    const finished = (await client.claimNext("a"))!;
    await client.complete(finished.id as string, "a");
    const pruned = await client.prune({ olderThanS: 0, dryRun: true });
    assert.deepEqual([pruned.pruned, pruned.done, pruned.dry_run], [1, 1, true]);
    assert.equal((await client.prune({ olderThanS: 0, status: ["done"] })).pruned, 1);
    await stopDaemon(d);
  });
});
