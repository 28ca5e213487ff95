/**
 * Telegram end to end through a real daemon and the fake Bot API: long
 * polling whose offset moves only past journaled updates (a SIGKILL loses
 * nothing) and that rides out errors, the webhook checked by its secret
 * token, a reply in a forum topic, a 429 honoured after `retry_after`, and
 * no bot token in the log.
 */
import assert from "node:assert/strict";
import { stopDaemon, type TestDaemon } from "./helpers/api.ts";
import {
  assertNoSecretsLogged,
  assertRetriedAfter,
  daemonLog,
  JOURNAL_ONLY,
  killDaemon,
  providerReport,
  startChatDaemon,
  waitForStatus,
  waitForStored,
} from "./helpers/chat.ts";
import { withHome } from "./helpers/courier.ts";
import { apiPost } from "./helpers/api.ts";
import { eventually } from "./helpers/mail.ts";
import { FAKE_TELEGRAM, FakeTelegram, telegramUpdate } from "./fakes/telegram_server.ts";

const SECRET_TOKEN = "tg-webhook-secret-token-1";
const ENV = { TG_E2E_BOT_TOKEN: FAKE_TELEGRAM.token, TG_E2E_SECRET_TOKEN: SECRET_TOKEN };

function providers(fake: FakeTelegram): Record<string, unknown> {
  return {
    tg: {
      type: "telegram",
      mode: "polling",
      bot_token: "env:TG_E2E_BOT_TOKEN",
      api_base: fake.apiBase,
    },
    tgh: {
      type: "telegram",
      mode: "webhook",
      bot_token: "env:TG_E2E_BOT_TOKEN",
      secret_token: "env:TG_E2E_SECRET_TOKEN",
      api_base: fake.apiBase,
      allow_from: [42],
    },
  };
}

/** POSTs an update to courier as Telegram does, with `secret` as its secret token header. */
function postUpdate(
  daemon: TestDaemon,
  update: Record<string, unknown>,
  secret: string = SECRET_TOKEN,
): Promise<Response> {
  return fetch(`${daemon.url}/api/v1/inbound/tgh`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
    body: JSON.stringify(update),
  });
}

Deno.test("telegram polling: the offset moves only past journaled updates; errors are ridden out", async () => {
  await using fake = await FakeTelegram.start();
  await withHome(async (h) => {
    let daemon = await startChatDaemon(h, providers(fake), ENV, JOURNAL_ONLY);
    await fake.polled(1);
    const first = fake.push(telegramUpdate({ text: "first", message_id: 501 }));
    const past = (first.update_id as number) + 1;
    // The next poll names the offset past it: Telegram may forget it, courier journaled it.
    await eventually(() => fake.polls.some((p) => p.offset === past), { what: "the offset" });
    await killDaemon(daemon);
    daemon = await startChatDaemon(h, providers(fake), ENV);
    const [kept] = await waitForStored(daemon, "tg", 1);
    assert.equal(kept.text, "first");
    assert.equal(kept.message_id, "42:501");
    assert.deepEqual(kept.mail.session, { id: "42", type: "direct", name: "Ann Lee" });

    // A failing Bot API (502) is retried; the updates after it arrive.
    fake.inject("getUpdates", {
      body: { ok: false, error_code: 502, description: "Bad Gateway" },
    });
    const polls = fake.polls.length;
    fake.push(telegramUpdate({ text: "second", message_id: 502 }));
    await eventually(() => fake.polls.length >= polls + 2, { what: "polls after the 502" });
    fake.push(telegramUpdate({ text: "third", message_id: 503 }));
    const stored = await waitForStored(daemon, "tg", 3);
    assert.deepEqual(stored.map((m) => m.text), ["first", "second", "third"]);
    const report = await providerReport(daemon, "tg");
    assert.equal(report.connected, true);
    assert.match(String(report.last_error), /Telegram getUpdates failed: Bad Gateway/);
    await stopDaemon(daemon);
    await assertNoSecretsLogged(h, [FAKE_TELEGRAM.token]);
  });
});

Deno.test("telegram webhook: the secret token decides, updates are stored once, replies go to the topic", async () => {
  await using fake = await FakeTelegram.start();
  await withHome(async (h) => {
    const daemon = await startChatDaemon(h, providers(fake), ENV);
    const topic = {
      update_id: 9001,
      ...telegramUpdate({
        text: "@courier_test_bot the build is red",
        message_id: 77,
        chat: { id: -1001234, type: "supergroup", title: "Ops", is_forum: true },
        extra: { message_thread_id: 7, is_topic_message: true },
      }),
    };
    const taken = await postUpdate(daemon, topic);
    assert.equal(taken.status, 200);
    await taken.body?.cancel();
    const again = await postUpdate(daemon, topic);
    assert.equal(again.status, 200);
    await again.body?.cancel();
    const forged = await postUpdate(daemon, { ...topic, update_id: 9002 }, "guessed-secret");
    assert.equal(forged.status, 401);
    assert.match((await forged.json()).error, /Secret-Token is missing or wrong/);
    const [stored] = await waitForStored(daemon, "tgh", 1);
    assert.deepEqual(stored.mail.session, {
      id: "-1001234",
      type: "thread",
      name: "Ops",
      thread_key: "7",
    });
    // Someone not in allow_from: answered, dropped, counted, logged by id only.
    const stranger = await postUpdate(daemon, {
      update_id: 9003,
      ...telegramUpdate({
        text: "let me in",
        message_id: 78,
        from: { id: 666, is_bot: false, first_name: "Eve" },
        chat: { id: -1001234, type: "supergroup", title: "Ops", is_forum: true },
      }),
    });
    assert.equal(stranger.status, 200);
    await stranger.body?.cancel();
    const report = await providerReport(daemon, "tgh");
    assert.deepEqual(
      [report.received, report.duplicates, report.rejected, report.dropped],
      [1, 1, 1, 1],
    );
    const log = await daemonLog(h);
    assert.match(log, /dropped message -1001234:78: sender 666 is not in allow_from/);
    assert.ok(!log.includes("let me in"), "no message text in the log");

    // The reply: into the topic, quoting the message; a 429 first, retried after retry_after.
    fake.inject("sendMessage", {
      body: {
        ok: false,
        error_code: 429,
        description: "Too Many Requests: retry after 2",
        parameters: { retry_after: 2 },
      },
    });
    const reply = await apiPost(daemon, "/api/v1/outbound/tgh", {
      to: "-1001234",
      text: "looking",
      reply_to: stored.mail_id,
    });
    assert.equal(reply.status, 202, JSON.stringify(reply.body));
    const sent = await waitForStatus(daemon, String(reply.body.id), "done");
    const tries = fake.calls.filter((c) => c.method === "sendMessage");
    assertRetriedAfter(tries, 2000, sent, /Too Many Requests: retry after 2/);
    assert.deepEqual(tries[1].params, {
      chat_id: -1001234,
      text: "looking",
      message_thread_id: 7,
      reply_parameters: { message_id: 77, allow_sending_without_reply: true },
    });
    await stopDaemon(daemon);
    await assertNoSecretsLogged(h, [FAKE_TELEGRAM.token, SECRET_TOKEN]);
  });
});
