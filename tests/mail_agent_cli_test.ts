/**
 * `courier mail next|watch|release|requeue|prune`, the paging of
 * `mail list`, and the exit codes of mail commands, against real daemons.
 */
import assert from "node:assert/strict";
import { json, type RunResult, withHome } from "./helpers/courier.ts";
import { apiGet, postMail, startDaemon, stopDaemon, type TestDaemon } from "./helpers/api.ts";
import { eventually } from "./helpers/mail.ts";
import { CourierProcess } from "./helpers/process.ts";

const FAST = ["--debounce-window", "20", "--debounce-max-wait", "50"];

interface JsonError {
  error: {
    type: string;
    message: string;
    exit_code: number;
    http_status?: number;
    status?: string;
    holder?: string;
    expires_at?: string;
    field?: string;
  };
}

function error(result: RunResult): JsonError["error"] {
  return json<JsonError>(result).error;
}

async function metric(d: TestDaemon, name: string): Promise<number> {
  const metrics = (await apiGet(d, "/health")).body.metrics as Record<string, number> | undefined;
  return metrics?.[name] ?? -1;
}

Deno.test("mail next: the mail and exit 0; exit 75 when none came within --wait", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const none = await h.run(["mail", "next", "--agent", "a"]);
    assert.equal(none.code, 75);
    assert.match(none.stderr, /no mail came within 0 s/);
    const noneJson = await h.run(["mail", "next", "--agent", "a", "--wait", "0.2", "--json"]);
    assert.equal(noneJson.code, 75);
    assert.deepEqual(
      [error(noneJson).type, error(noneJson).exit_code],
      ["NoMailError", 75],
    );

    // A waiting `next` gets the mail that arrives while it waits.
    const waiting = CourierProcess.start(h, [
      "mail",
      "next",
      "--agent",
      "a",
      "--wait",
      "30",
      "--json",
    ]);
    try {
      await eventually(async () => (await metric(d, "waiting_agents")) === 1);
      const id = await postMail(d, "arrives", "please look at the build");
      assert.equal(await waiting.exit(), 0, waiting.stderr.join("\n"));
      const mail = JSON.parse(waiting.stdout.join("\n"));
      assert.equal(mail.id, id);
      assert.match(mail.body, /please look at the build/);
      assert.equal(mail.claim.agent_id, "a");
    } finally {
      await waiting.end();
    }

    const other = await postMail(d, "filtered", "second one");
    for (const filter of [["--provider", "slack"], ["--session", "elsewhere"]]) {
      const filtered = await h.run(["mail", "next", "--agent", "b", ...filter]);
      assert.equal(filtered.code, 75, filter.join(" "));
    }
    const text = await h.run(["mail", "next", "--agent", "b", "--session", "filtered"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^id\\s+${other}$`, "m"));
    assert.match(text.stdout, /^claimed by\s+b until /m);
    assert.match(text.stdout, /second one/);
    for (const wait of ["-1", "abc", "90000"]) {
      const bad = await h.run(["mail", "next", "--agent", "a", `--wait=${wait}`]);
      assert.equal(bad.code, 64, wait);
    }
    await stopDaemon(d);
  });
});

Deno.test("mail watch: one line an event; resumes after a daemon restart and says so on a reset", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const asJson = CourierProcess.start(h, ["mail", "watch", "--json"]);
    const asText = CourierProcess.start(h, ["mail", "watch", "--types", "mail.new,mail.done"]);
    try {
      await eventually(async () => (await metric(d, "event_clients")) === 2);
      const id = await postMail(d, "watched");
      assert.equal((await h.run(["mail", "claim", id, "--agent", "a"])).code, 0);
      assert.equal((await h.run(["mail", "done", id, "--agent", "a"])).code, 0);
      await asJson.line("stdout", /"type":"mail\.done"/);
      const events = asJson.stdout.map((line) => JSON.parse(line));
      assert.deepEqual(events.map((e) => e.type), ["mail.new", "mail.claimed", "mail.done"]);
      assert.ok(events.every((e) => e.data.id === id));
      assert.equal(events[1].data.agent_id, "a");
      await asText.line("stdout", new RegExp(`^\\S+Z mail\\.done ${id} .*agent_id=a`));
      assert.match(asText.stdout[0], new RegExp(`^\\S+Z mail\\.new ${id}`));
      assert.equal(asText.stdout.length, 2, "only the types asked for");

      const restarted = await h.run(["restart"]);
      assert.equal(restarted.code, 0, restarted.stderr);
      await asJson.line("stdout", /"type":"reset"/, { timeoutMs: 30_000 });
      await asText.line("stdout", /reset: events after \d+ were missed .*re-read the mails/);
      await eventually(async () => (await metric(d, "event_clients")) === 2);
      const after = await postMail(d, "after-restart");
      await asJson.line("stdout", new RegExp(`"type":"mail\\.new".*"${after}"`));
      await asText.line("stdout", new RegExp(`mail\\.new ${after}`));
      const ids = asJson.stdout.map((line) => JSON.parse(line).id as number);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "ids increase across the restart");
      asJson.signal("SIGINT");
      asText.signal("SIGTERM");
      assert.equal(await asJson.exit(), 0);
      assert.equal(await asText.exit(), 0);
    } finally {
      await asJson.end();
      await asText.end();
    }
    const bad = await h.run(["mail", "watch", "--types", "mail.nope"]);
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /invalid --types "mail\.nope"/);
    await stopDaemon(d);
  });
});

Deno.test("mail release, requeue and prune", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const a = await postMail(d, "release-me");
    assert.equal((await h.run(["mail", "claim", a, "--agent", "one"])).code, 0);
    const foreign = await h.run(["mail", "release", a, "--agent", "two"]);
    assert.equal(foreign.code, 77, foreign.stderr);
    const released = await h.run(["mail", "release", a, "--agent", "one"]);
    assert.equal(released.code, 0, released.stderr);
    assert.match(released.stdout, new RegExp(`Released ${a}: new again`));
    assert.equal((await apiGet(d, `/api/v1/messages/${a}`)).body.status, "new");
    const again = await h.run(["mail", "release", a, "--agent", "one", "--json"]);
    assert.equal(again.code, 79, "not claimed");
    assert.deepEqual([error(again).http_status, error(again).status], [409, "new"]);

    const b = await postMail(d, "requeue-me");
    await h.run(["mail", "claim", b, "--agent", "one"]);
    await h.run(["mail", "fail", b, "--agent", "one", "--reason", "broken", "--no-retry"]);
    const requeued = await h.run(["mail", "requeue", b, "--json"]);
    assert.equal(requeued.code, 0, requeued.stderr);
    assert.deepEqual(
      [json(requeued).status, json(requeued).attempts],
      ["new", 0],
    );
    assert.equal((await h.run(["mail", "requeue", b])).code, 79, "not dead");

    await h.run(["mail", "claim", a, "--agent", "one"]);
    await h.run(["mail", "done", a, "--agent", "one"]);
    const bare = await h.run(["mail", "prune", "--older-than", "30"]);
    assert.equal(bare.code, 64);
    assert.match(bare.stderr, /give a unit: s \(seconds\), m \(minutes\), h \(hours\), d \(days\)/);
    for (const duration of ["5y", "d", "1d2", ""]) {
      const bad = await h.run(["mail", "prune", `--older-than=${duration}`]);
      assert.equal(bad.code, 64, duration);
    }
    assert.equal((await h.run(["mail", "prune"])).code, 64);
    const recent = json(await h.run(["mail", "prune", "--older-than", "1d", "--json"]));
    assert.equal(recent.pruned, 0, "nothing finished a day ago");
    const dry = await h.run(["mail", "prune", "--older-than", "0s", "--dry-run"]);
    assert.match(dry.stdout, /^Would prune 1 mail\(s\) \(1 done, 0 dead\) finished before /);
    assert.equal((await apiGet(d, `/api/v1/messages/${a}`)).body.status, "done");
    const deadOnly = json(
      await h.run(["mail", "prune", "--older-than", "0s", "--status", "dead", "--json"]),
    );
    assert.equal(deadOnly.pruned, 0);
    const pruned = json(await h.run(["mail", "prune", "--older-than", "0m", "--json"]));
    assert.deepEqual([pruned.pruned, pruned.done, pruned.dry_run], [1, 1, false]);
    assert.equal((await h.run(["mail", "show", a])).code, 66, "pruned");
    await stopDaemon(d);
  });
});

Deno.test("mail list: several statuses, one conversation, newest first, a cursor while mails arrive", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await postMail(d, `p${i}`));
    const list = async (...args: string[]) => {
      const result = await h.run(["mail", "list", ...args, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      return json<{ messages: { id: string }[]; count: number; next_cursor?: string }>(result);
    };
    let page = await list("--limit", "2");
    const seen = page.messages.map((m) => m.id);
    for (let i = 5; i < 7; i++) ids.push(await postMail(d, `p${i}`)); // they arrive meanwhile
    while (page.next_cursor) {
      page = await list("--limit", "2", "--cursor", page.next_cursor);
      seen.push(...page.messages.map((m) => m.id));
    }
    assert.deepEqual(seen, ids, "every mail once, oldest first, the new ones included");
    const all = await list("--all", "--limit", "2");
    assert.deepEqual([all.messages.map((m) => m.id), all.next_cursor], [ids, undefined]);
    const text = await h.run(["mail", "list", "--limit", "2"]);
    assert.match(text.stderr, /More mails follow: add --cursor \S+/);
    assert.deepEqual((await list("--order", "newest", "--limit", "1")).messages[0].id, ids[6]);
    assert.deepEqual((await list("--session", "p3")).messages.map((m) => m.id), [ids[3]]);
    await h.run(["mail", "claim", ids[0], "--agent", "a"]);
    assert.equal((await list("--status", "claimed")).count, 1);
    assert.equal((await list("--status", "new,claimed")).count, 7);
    assert.equal((await list("--status", "new", "--status", "claimed")).count, 7);
    assert.equal((await list("--status", "done")).count, 0);
    assert.equal((await h.run(["mail", "list", "--status", "nope"])).code, 64);
    assert.equal((await h.run(["mail", "list", "--all", "--cursor", "x"])).code, 64);
    assert.equal((await h.run(["mail", "list", "--order", "up"])).code, 64);
    await stopDaemon(d);
  });
});

Deno.test("mail exit codes: 69 not running, 66 not found, 79 conflict, 77 forbidden, 65 bad input, 75 none, 64 usage", async () => {
  await withHome(async (h) => {
    const down = await h.run(["mail", "show", "lark_x", "--json"]);
    assert.equal(down.code, 69);
    assert.equal(error(down).type, "DaemonNotRunningError");
    for (const args of [["watch"], ["next", "--agent", "a"], ["prune", "--older-than", "1d"]]) {
      assert.equal((await h.run(["mail", ...args])).code, 69, args.join(" "));
    }
    const d = await startDaemon(h, FAST);
    const missing = await h.run(["mail", "show", "lark_nope", "--json"]);
    assert.deepEqual([missing.code, error(missing).http_status], [66, 404]);

    const id = await postMail(d, "contested");
    await h.run(["mail", "claim", id, "--agent", "a"]);
    const conflict = await h.run(["mail", "claim", id, "--agent", "b", "--json"]);
    assert.equal(conflict.code, 79);
    const facts = error(conflict);
    assert.deepEqual([facts.exit_code, facts.http_status, facts.holder], [79, 409, "a"]);
    assert.ok(!Number.isNaN(Date.parse(facts.expires_at!)), "expires_at is kept");
    const forbidden = await h.run(["mail", "done", id, "--agent", "b", "--json"]);
    assert.deepEqual([forbidden.code, error(forbidden).http_status], [77, 403]);
    const badInput = await h.run(["mail", "list", "--cursor", "bogus", "--json"]);
    assert.deepEqual(
      [badInput.code, error(badInput).http_status, error(badInput).field],
      [65, 400, "cursor"],
    );
    assert.equal((await h.run(["mail", "next", "--agent", "a"])).code, 75);
    assert.equal((await h.run(["mail", "claim", id])).code, 64);
    await stopDaemon(d);
  });
});
