import assert from "node:assert/strict";
import { join } from "node:path";
import { authedFetch, json, withHome } from "./helpers/courier.ts";
import { eventually, inbound } from "./helpers/mail.ts";
import { leaseTestPort } from "./helpers/ports.ts";

Deno.test("courier mail: a clear error and exit 69 when the daemon is not running", async () => {
  await withHome(async (h) => {
    const listed = await h.run(["mail", "list"]);
    assert.equal(listed.code, 69);
    assert.match(listed.stderr, /Courier is not running; start it with 'courier start'/);
    const asJson = await h.run(["mail", "claim", "lark_x", "--agent", "a", "--json"]);
    assert.equal(asJson.code, 69);
    assert.match(json<{ error: { message: string } }>(asJson).error.message, /not running/);
    const usage = await h.run(["mail", "claim", "lark_x"]);
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /--agent is required/);
  });
});

Deno.test("courier mail list|show|claim|done|fail|send against a running daemon", async () => {
  const received: Record<string, unknown>[] = [];
  const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (r) => {
    received.push(await r.json());
    return new Response("ok");
  });
  try {
    await withHome(async (h) => {
      await Deno.mkdir(h.home, { recursive: true });
      await Deno.writeTextFile(
        join(h.home, "config.json"),
        JSON.stringify({
          outbound: { lark: { url: `http://127.0.0.1:${receiver.addr.port}/` } },
        }),
      );
      const port = await leaseTestPort();
      const started = await h.run(["start", "--port", String(port), "--debounce-window", "50"]);
      assert.equal(started.code, 0, started.stderr);
      const url = `http://127.0.0.1:${port}`;
      for (const text of ["first mail", "second mail"]) {
        const response = await authedFetch(h.home, `${url}/api/v1/inbound/lark`, {
          method: "POST",
          body: JSON.stringify(inbound({ text, session_id: text })),
        });
        assert.equal(response.status, 202);
        await response.body?.cancel();
      }
      let ids: string[] = [];
      await eventually(async () => {
        const listed = json<{ messages: { id: string }[] }>(
          await h.run(["mail", "list", "--status", "new", "--json"]),
        );
        ids = listed.messages.map((m) => m.id);
        return ids.length === 2;
      }, { what: "two new mails" });
      const [first, second] = ids;

      const table = await h.run(["mail", "list"]);
      assert.equal(table.code, 0);
      assert.match(table.stdout, /^ID\s+STATUS/);
      assert.match(table.stdout, new RegExp(`${first}\\s+new\\s+Alice`));
      const shown = await h.run(["mail", "show", first]);
      assert.equal(shown.code, 0);
      assert.match(shown.stdout, /first mail/);
      assert.match(shown.stdout, /status\s+new/);
      assert.match(
        json<{ body: string }>(await h.run(["mail", "show", first, "--json"])).body,
        /first mail/,
      );

      const claimed = await h.run(["mail", "claim", first, "--agent", "agent-a", "--json"]);
      assert.equal(claimed.code, 0, claimed.stderr);
      assert.equal(json<{ agent_id: string }>(claimed).agent_id, "agent-a");
      const conflict = await h.run(["mail", "claim", first, "--agent", "agent-b"]);
      assert.equal(conflict.code, 79);
      assert.match(conflict.stderr, /claimed by "agent-a" until/);
      const wrong = await h.run(["mail", "done", first, "--agent", "agent-b"]);
      assert.equal(wrong.code, 77);
      assert.match(wrong.stderr, /only that agent may complete it/);
      const done = await h.run(["mail", "done", first, "--agent", "agent-a"]);
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stdout, new RegExp(`Completed ${first}`));

      await h.run(["mail", "claim", second, "--agent", "agent-a"]);
      const failed = await h.run([
        "mail",
        "fail",
        second,
        "--agent",
        "agent-a",
        "--reason",
        "cannot parse",
        "--no-retry",
        "--json",
      ]);
      assert.equal(failed.code, 0, failed.stderr);
      assert.equal(json<{ status: string }>(failed).status, "dead");
      const dead = json<{ messages: { id: string; dead_reason: string }[] }>(
        await h.run(["mail", "list", "--status", "dead", "--json"]),
      );
      assert.deepEqual(dead.messages.map((m) => [m.id, m.dead_reason]), [[second, "cannot parse"]]);

      const sent = await h.run([
        "mail",
        "send",
        "lark",
        "--to",
        "chat-7",
        "--text",
        "on it",
        "--json",
      ]);
      assert.equal(sent.code, 0, sent.stderr);
      const sentId = json<{ id: string }>(sent).id;
      await eventually(() => received.length === 1, { what: "outbound delivery" });
      assert.equal(received[0].id, sentId);
      const unknown = await h.run(["mail", "send", "slack", "--to", "x", "--text", "y"]);
      assert.equal(unknown.code, 65);
      assert.match(unknown.stderr, /no outbound URL configured for provider "slack"/);

      const stopped = await h.run(["stop"]);
      assert.equal(stopped.code, 0, stopped.stderr);
    });
  } finally {
    await receiver.shutdown();
  }
});
