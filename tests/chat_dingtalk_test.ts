/**
 * DingTalk end to end through a real daemon and the fake open platform:
 * Stream mode acknowledges a message only once it is journaled (a SIGKILL
 * right after the ack loses nothing), answers pings and reconnects after
 * the gateway drops it; signed callbacks become mail once, bad or stale
 * signatures get 401; replies go through the session webhook while it is
 * valid, else the OpenAPI, where a 429 is honoured; no secret in the log.
 */
import assert from "node:assert/strict";
import { apiPost, stopDaemon, type TestDaemon } from "./helpers/api.ts";
import {
  assertNoSecretsLogged,
  assertRetriedAfter,
  JOURNAL_ONLY,
  killDaemon,
  providerReport,
  startChatDaemon,
  storedMessages,
  waitForStatus,
  waitForStored,
} from "./helpers/chat.ts";
import { withHome } from "./helpers/courier.ts";
import { FakeDingTalk } from "./fakes/dingtalk_server.ts";

const CLIENT_SECRET = "fake-client-secret";
const ENV = { DING_E2E_CLIENT_SECRET: CLIENT_SECRET };

function providers(fake: FakeDingTalk): Record<string, unknown> {
  const common = {
    type: "dingtalk",
    client_id: "dingfake",
    client_secret: "env:DING_E2E_CLIENT_SECRET",
    api_base: fake.apiBase,
    oapi_base: fake.apiBase,
  };
  return {
    ding: { ...common, mode: "webhook" },
    dings: { ...common, mode: "stream", ws_base: fake.apiBase.replace("http:", "ws:") },
  };
}

/** Pushes a robot message over the stream and waits for courier's acknowledgement of it. */
async function pushAcked(fake: FakeDingTalk, fields: Record<string, unknown>): Promise<void> {
  const frame = fake.push(fake.robotMessage(fields));
  await fake.http.until(() => fake.replyTo(frame)?.code === 200, `the ack of ${frame}`);
}

async function reply(daemon: TestDaemon, provider: string, to: string, mailId: string) {
  const queued = await apiPost(daemon, `/api/v1/outbound/${provider}`, {
    to,
    text: `re ${mailId}`,
    reply_to: mailId,
  });
  assert.equal(queued.status, 202, JSON.stringify(queued.body));
  return await waitForStatus(daemon, String(queued.body.id), "done");
}

Deno.test("dingtalk: stream acks follow the journal, callbacks are verified, replies find their way", async () => {
  const fake = await FakeDingTalk.start();
  try {
    await withHome(async (h) => {
      let daemon = await startChatDaemon(h, providers(fake), ENV, JOURNAL_ONLY);
      await fake.http.until(() => fake.connected, "a stream connection");
      await pushAcked(fake, { msgId: "msg-s-1", text: { content: "first" } });
      await killDaemon(daemon);
      daemon = await startChatDaemon(h, providers(fake), ENV);
      const [kept] = await waitForStored(daemon, "dings", 1);
      assert.equal(kept.message_id, "msg-s-1");
      assert.equal(kept.text, "first");
      assert.deepEqual(kept.mail.session, { id: "cidGroup42==", type: "group", name: "Ops" });

      // The restarted daemon reconnected: pings are answered, a dropped link is reopened.
      await fake.http.until(() => fake.connections === 2 && fake.connected, "connection 2");
      assert.equal((await fake.ping('{"opaque":"p-1"}')).data, '{"opaque":"p-1"}');
      fake.dropConnection();
      await fake.http.until(() => fake.connections === 3 && fake.connected, "connection 3");
      // A message whose session webhook has expired: its reply takes the OpenAPI.
      await pushAcked(fake, {
        msgId: "msg-s-2",
        conversationId: "cidOther==",
        text: { content: "second" },
        sessionWebhookExpiredTime: Date.now() - 1000,
      });
      const [, second] = await waitForStored(daemon, "dings", 2);
      assert.equal(second.text, "second");
      assert.equal((await providerReport(daemon, "dings")).connected, true);

      // Signed callbacks: taken once; a bad, stale or missing sign gets 401.
      const url = `${daemon.url}/api/v1/inbound/ding`;
      const message = fake.robotMessage({ msgId: "msg-w-1", text: { content: "callback" } });
      for (let i = 0; i < 2; i++) {
        const taken = await fake.deliver(url, message);
        assert.equal(taken.status, 200);
        await taken.body?.cancel();
      }
      for (
        const options of [
          { secret: "not-the-secret" },
          { timestamp: Date.now() - 2 * 3600_000 },
          { unsigned: true },
        ]
      ) {
        const refused = await fake.deliver(url, fake.robotMessage(), options);
        assert.equal(refused.status, 401, JSON.stringify(options));
        await refused.body?.cancel();
      }
      const [callback] = await waitForStored(daemon, "ding", 1);
      assert.equal(callback.text, "callback");
      assert.equal(callback.sender.id, "staff-7");
      const report = await providerReport(daemon, "ding");
      assert.deepEqual([report.received, report.duplicates, report.rejected], [1, 1, 3]);
      assert.equal((await storedMessages(daemon, "ding")).length, 1);

      // A reply within the session webhook's life goes there.
      await reply(daemon, "ding", "cidGroup42==", callback.mail_id);
      const session = new URL(String(message.sessionWebhook)).searchParams.get("session");
      assert.deepEqual(fake.sent.at(-1), {
        kind: "session",
        text: `re ${callback.mail_id}`,
        target: session,
      });
      // After it: the OpenAPI group send, throttled once (HTTP 429, Retry-After 2 s).
      fake.http.inject("/v1.0/robot/groupMessages/send", {
        status: 429,
        body: { code: "Throttling.Api", message: "too many requests" },
        headers: { "retry-after": "2" },
      });
      const sent = await reply(daemon, "dings", "cidOther==", second.mail_id);
      const tries = fake.http.requestsTo("/v1.0/robot/groupMessages/send");
      assertRetriedAfter(tries, 2000, sent, /Throttling\.Api too many requests/);
      assert.deepEqual(fake.sent.at(-1), {
        kind: "group",
        text: `re ${second.mail_id}`,
        target: "cidOther==",
        robotCode: "dingfake",
      });

      await stopDaemon(daemon);
      await assertNoSecretsLogged(h, [CLIENT_SECRET]);
    });
  } finally {
    await fake.close();
  }
});
