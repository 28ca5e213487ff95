/**
 * Slack end to end through a real daemon: `config.json` `providers` point
 * at the fake Slack, secrets come from `env:` variables. The Events API
 * webhook (signed, verified before it is read, answered, deduplicated, the
 * API token's generic path beside it), Socket Mode (acks only after the
 * journal, reconnects), replies in threads, a 429 honoured beyond the
 * backoff cap, and no secret in the log.
 */
import assert from "node:assert/strict";
import { apiFetch, apiGet, apiPost, stopDaemon, type TestDaemon } from "./helpers/api.ts";
import {
  assertNoSecretsLogged,
  assertRetriedAfter,
  daemonLog,
  JOURNAL_ONLY,
  killDaemon,
  providerReport,
  startChatDaemon,
  storedMessages,
  waitForStatus,
  waitForStored,
} from "./helpers/chat.ts";
import { json, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";
import { tmpfsUnavailable, withSmallDisk } from "./helpers/disk.ts";
import { recordingLog } from "./helpers/log.ts";
import { eventually, readMails } from "./helpers/mail.ts";
import { homeLayout } from "../lib/home/mod.ts";
import { createMailExtension } from "../lib/mail/mod.ts";
import { FAKE_SLACK, FakeSlack, signedSlackRequest, slackEvent } from "./fakes/slack_server.ts";

const ENV = {
  SLACK_E2E_SIGNING_SECRET: FAKE_SLACK.signingSecret,
  SLACK_E2E_BOT_TOKEN: FAKE_SLACK.botToken,
  SLACK_E2E_APP_TOKEN: FAKE_SLACK.appToken,
};
const SECRETS = Object.values(ENV);

function providers(fake: FakeSlack): Record<string, unknown> {
  return {
    team: {
      type: "slack",
      mode: "webhook",
      signing_secret: "env:SLACK_E2E_SIGNING_SECRET",
      bot_token: "env:SLACK_E2E_BOT_TOKEN",
      api_base: fake.apiBase,
    },
    sock: {
      type: "slack",
      mode: "socket",
      bot_token: "env:SLACK_E2E_BOT_TOKEN",
      app_token: "env:SLACK_E2E_APP_TOKEN",
      api_base: fake.apiBase,
    },
  };
}

/** POSTs an Events API payload to courier as Slack does: signed, without the API token. */
async function postEvent(
  daemon: TestDaemon,
  name: string,
  payload: unknown,
  options: { secret?: string; timestamp?: number; headers?: Record<string, string> } = {},
): Promise<Response> {
  const body = JSON.stringify(payload);
  const { request } = await signedSlackRequest(options.secret ?? FAKE_SLACK.signingSecret, body, {
    timestamp: options.timestamp,
    headers: options.headers,
  });
  return await fetch(`${daemon.url}/api/v1/inbound/${name}`, {
    method: "POST",
    headers: request.headers,
    body,
  });
}

Deno.test("slack webhook: signed events become mail once, forgeries store nothing, replies thread", async () => {
  await using fake = await FakeSlack.start();
  await withHome(async (h) => {
    const daemon = await startChatDaemon(h, providers(fake), ENV);
    const event = slackEvent({ ts: "1700000100.000100", text: "deploy is red", user: "U1" });

    // A signed event: 200 once it is journaled, then a mail.
    const first = await postEvent(daemon, "team", event);
    assert.equal(first.status, 200, await first.text());
    const [stored] = await waitForStored(daemon, "team", 1);
    assert.equal(stored.text, "deploy is red");
    assert.equal(stored.message_id, "C1:1700000100.000100");
    assert.equal(stored.sender.id, "U1");
    assert.deepEqual(stored.mail.session, { id: "C1", type: "group" });
    assert.deepEqual((stored.extra as { reply: unknown }).reply, {
      channel: "C1",
      ts: "1700000100.000100",
    });

    // Slack's retry of the same event: answered, stored once.
    const retry = await postEvent(daemon, "team", event, { headers: { "x-slack-retry-num": "1" } });
    assert.equal(retry.status, 200);
    await retry.body?.cancel();

    // A wrong signature, a stale timestamp: 401, nothing stored.
    const forged = await postEvent(daemon, "team", slackEvent({ ts: "1700000100.000200" }), {
      secret: "not-the-signing-secret",
    });
    assert.equal(forged.status, 401);
    assert.match((await forged.json()).error, /X-Slack-Signature does not match/);
    const stale = await postEvent(daemon, "team", slackEvent({ ts: "1700000100.000300" }), {
      timestamp: Math.floor(Date.now() / 1000) - 600,
    });
    assert.equal(stale.status, 401);
    assert.match((await stale.json()).error, /more than 5 minutes/);

    // The URL check Slack sends when the Request URL is entered.
    const challenge = await postEvent(daemon, "team", {
      type: "url_verification",
      token: "legacy",
      challenge: "challenge-123",
    });
    assert.equal(challenge.status, 200);
    assert.deepEqual(await challenge.json(), { challenge: "challenge-123" });

    let report = await providerReport(daemon, "team");
    assert.equal(report.received, 1);
    assert.equal(report.duplicates, 1);
    assert.equal(report.rejected, 2);
    assert.equal(report.connected, null);
    assert.equal((await storedMessages(daemon, "team")).length, 1, "nothing more stored");

    // With the API token the route is the generic JSON webhook of the same mailbox.
    const scripted = await apiPost(daemon, "/api/v1/inbound/team", {
      session_id: "C9",
      sender: { id: "cron" },
      text: "nightly report",
    });
    assert.equal(scripted.status, 202, JSON.stringify(scripted.body));
    await waitForStored(daemon, "team", 2);
    // A wrong token is refused even with a good signature; a long connection's route needs one.
    const body = JSON.stringify(slackEvent({ ts: "1700000100.000400" }));
    const signed = await signedSlackRequest(FAKE_SLACK.signingSecret, body);
    const wrongToken = await fetch(`${daemon.url}/api/v1/inbound/team`, {
      method: "POST",
      headers: { ...Object.fromEntries(signed.request.headers), authorization: "Bearer nope" },
      body,
    });
    assert.equal(wrongToken.status, 401);
    await wrongToken.body?.cancel();
    const socketRoute = await postEvent(daemon, "sock", slackEvent({ ts: "1700000100.000500" }));
    assert.equal(socketRoute.status, 401);
    assert.match((await socketRoute.json()).error, /needs the API token/);
    // Over the size limit: 413 before anything is verified.
    const huge = await postEvent(daemon, "team", { type: "event_callback", pad: "x".repeat(2e6) });
    assert.equal(huge.status, 413);
    await huge.body?.cancel();

    // A message in a thread, and a reply to its mail: chat.postMessage into that thread.
    await postEvent(
      daemon,
      "team",
      slackEvent({ ts: "1700000200.000100", thread_ts: "1700000100.000100", text: "still red" }),
    ).then((r) => r.body?.cancel());
    const inThread = (await waitForStored(daemon, "team", 3)).find((m) => m.text === "still red")!;
    assert.deepEqual(inThread.mail.session, {
      id: "C1",
      type: "thread",
      thread_key: "1700000100.000100",
    });
    const reply = await apiPost(daemon, "/api/v1/outbound/team", {
      to: "C1",
      text: "on it",
      reply_to: inThread.mail_id,
    });
    assert.equal(reply.status, 202, JSON.stringify(reply.body));
    await waitForStatus(daemon, String(reply.body.id), "done");
    assert.deepEqual(fake.posts.at(-1), {
      channel: "C1",
      text: "on it",
      thread_ts: "1700000100.000100",
    });
    // The same from the command line.
    const cli = await h.run([
      "mail",
      "send",
      "team",
      "--to",
      "C1",
      "--text",
      "from the shell",
      "--reply-to",
      inThread.mail_id,
      "--json",
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    await waitForStatus(daemon, String(json(cli).id), "done");
    assert.deepEqual(fake.posts.at(-1), {
      channel: "C1",
      text: "from the shell",
      thread_ts: "1700000100.000100",
    });
    // A reply names the conversation it answers.
    const elsewhere = await apiPost(daemon, "/api/v1/outbound/team", {
      to: "C2",
      text: "wrong room",
      reply_to: inThread.mail_id,
    });
    assert.equal(elsewhere.status, 400);
    assert.equal(elsewhere.body.field, "reply_to");

    // A 429: retried after its Retry-After (2 s), beyond the backoff cap (400 ms here).
    fake.inject("chat.postMessage", { status: 429, headers: { "retry-after": "2" } });
    const slow = await apiPost(daemon, "/api/v1/outbound/team", { to: "C1", text: "slow down" });
    const sent = await waitForStatus(daemon, String(slow.body.id), "done");
    const tries = fake.calls.filter((c) =>
      c.method === "chat.postMessage" && c.body.text === "slow down"
    );
    assertRetriedAfter(tries, 2000, sent, /chat\.postMessage failed: HTTP 429/);
    // Slack's own error is final and kept.
    fake.inject("chat.postMessage", { body: { ok: false, error: "channel_not_found" } });
    const lost = await apiPost(daemon, "/api/v1/outbound/team", { to: "C404", text: "anyone?" });
    const dead = await waitForStatus(daemon, String(lost.body.id), "dead");
    assert.match(
      String((dead.delivery as { dead_reason: string }).dead_reason),
      /channel_not_found/,
    );

    report = await providerReport(daemon, "team");
    assert.equal(report.sent, 3);
    assert.equal(report.failed, 2);
    assert.match(String(report.last_error), /channel_not_found/);

    // courier provider list: live from the daemon.
    const list = await h.run(["provider", "list", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    const listing = json<{ live: boolean; providers: Record<string, unknown>[] }>(list);
    assert.equal(listing.live, true);
    const team = listing.providers.find((p) => p.name === "team")!;
    assert.equal(team.mode, "webhook");
    assert.equal(team.received, 2, "the platform's messages (not the script's)");
    assert.equal(team.sent, 3);
    const text = await h.run(["provider", "list"]);
    assert.match(text.stdout, /^team\s+slack\s+webhook\s+webhook\s+2\s+3\s+2\s+0\s+2$/m);

    await stopDaemon(daemon);
    await assertNoSecretsLogged(h, SECRETS, [list.stdout, text.stdout]);
  });
});

Deno.test("slack socket mode: acks follow the journal, and the link survives drops and restarts", async () => {
  await using fake = await FakeSlack.start();
  await withHome(async (h) => {
    // A long debounce window: an acknowledged message is in the journal only, not yet in a mail.
    let daemon = await startChatDaemon(h, providers(fake), ENV, JOURNAL_ONLY);
    await fake.connected(1);
    const first = fake.sendEnvelope(slackEvent({ ts: "1700000300.000100", text: "first" }));
    await fake.acked(first);
    // Acknowledged means journaled: killed at once, the restarted daemon still has it.
    await killDaemon(daemon);
    daemon = await startChatDaemon(h, providers(fake), ENV);
    const [kept] = await waitForStored(daemon, "sock", 1);
    assert.equal(kept.message_id, "C1:1700000300.000100");
    assert.equal(kept.text, "first");

    // The restarted daemon reconnected; a connection cut without a word is reopened.
    await fake.connected(2);
    fake.drop();
    await fake.connected(3);
    const second = fake.sendEnvelope(slackEvent({ ts: "1700000300.000200", text: "second" }));
    await fake.acked(second);
    // Slack's planned recycling of the link: a new one at once.
    fake.disconnect("refresh_requested");
    await fake.connected(4);
    const third = fake.sendEnvelope(slackEvent({ ts: "1700000300.000300", text: "third" }));
    await fake.acked(third);
    // Slack delivering an envelope again (an ack it did not see): stored once.
    const again = fake.sendEnvelope(slackEvent({ ts: "1700000300.000300", text: "third" }));
    await fake.acked(again);
    const stored = await waitForStored(daemon, "sock", 3);
    assert.deepEqual(stored.map((m) => m.text), ["first", "second", "third"]);

    await eventually(async () => (await providerReport(daemon, "sock")).connected === true, {
      what: "sock connected",
    });
    const report = await providerReport(daemon, "sock");
    assert.equal(report.mode, "socket");
    assert.equal(report.received, 2, "the first was stored by the daemon before");
    assert.equal(report.duplicates, 1);
    const status = await h.run(["status"]);
    assert.match(status.stdout, /^sock\s+slack socket, connected$/m);
    const statusJson = json<{ connections: Record<string, { connected: boolean }> }>(
      await h.run(["status", "--json"]),
    );
    assert.equal(statusJson.connections.sock.connected, true);
    assert.equal(statusJson.connections.team, undefined, "a webhook is no connection");

    const health = await apiFetch(daemon, "/health", { headers: { authorization: "" } });
    assert.equal((await health.json()).providers, undefined, "/health without the token");
    assert.equal((await apiGet(daemon, "/health")).status, 200);

    await stopDaemon(daemon);
    assert.equal(fake.acks.length, 4);
    await assertNoSecretsLogged(h, SECRETS, [status.stdout]);
  });
});

const NO_TMPFS = await tmpfsUnavailable();

Deno.test({
  name:
    "slack socket mode: an envelope the journal could not take is not acked, and is taken again" +
    (NO_TMPFS ? ` (skipped: ${NO_TMPFS})` : ""),
  ignore: NO_TMPFS !== null,
  async fn() {
    await using fake = await FakeSlack.start();
    const root = await Deno.makeTempDir({ prefix: "courier-chat-disk-" });
    try {
      await withSmallDisk(`${root}/home`, 512, async (disk) => {
        await Deno.writeTextFile(
          `${disk.path}/config.json`,
          JSON.stringify({ providers: { sock: fake.config({ mode: "socket" }) } }),
        );
        const log = recordingLog();
        const mail = createMailExtension({ settings: { debounceWindowMs: 50 } });
        await mail.start({ layout: homeLayout(disk.path), log, options: {} });
        try {
          await fake.connected(1);
          await disk.fill();
          // Larger than a page: the journal cannot tuck it into the free end of its last one.
          const event = slackEvent({ ts: "1700000500.000100", text: "x".repeat(6000) });
          const refused = fake.sendEnvelope(event);
          await eventually(() => log.lines.some((l) => l.includes("not acknowledged")), {
            what: "the failed hand-over",
          });
          assert.ok(!fake.acks.includes(refused), "not acked");
          const report = (mail.health().providers as Record<string, { last_error: string }>).sock;
          assert.match(report.last_error, /could not store the message durably: No space left/);
          await disk.free();
          // Slack sends an envelope again until it is acked.
          const again = fake.sendEnvelope(event);
          await fake.acked(again);
          assert.ok(!fake.acks.includes(refused));
        } finally {
          await mail.stop();
        }
        const stored = (await readMails(disk.path, "inbound")).flatMap((m) =>
          m.frontMatter.messages
        );
        assert.deepEqual(stored.map((m) => m.message_id), ["C1:1700000500.000100"]);
      });
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("a platform that never answers holds up neither the start nor a graceful stop", async () => {
  const port = await leaseTestPort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn); // accepted, never answered
  })();
  try {
    await withHome(async (h) => {
      const daemon = await startChatDaemon(h, {
        sock: {
          type: "slack",
          mode: "socket",
          bot_token: "xoxb-silent-platform",
          app_token: "xapp-silent-platform",
          api_base: `http://127.0.0.1:${port}/api`,
        },
      }, {});
      await eventually(() => held.length > 0, { what: "courier calling the platform" });
      assert.equal((await providerReport(daemon, "sock")).connected, false);
      const stopped = await h.run(["stop", "--json"]);
      assert.equal(stopped.code, 0, stopped.stderr);
      const { stopped: [result] } = json<{ stopped: { forced: boolean }[] }>(stopped);
      assert.equal(result.forced, false, "no SIGKILL needed");
      assert.match(await daemonLog(h), /INFO .* stopped$/m);
    });
  } finally {
    listener.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});
