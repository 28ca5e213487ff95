/**
 * Lark/Feishu end to end through a real daemon and the fake open platform:
 * encrypted, signed events become mail once; forged, unsigned and stale
 * ones get 401 and store nothing; the URL check is answered; a reply
 * answers the message in its thread with the outbound mail id as `uuid`,
 * after a 429 honoured for as long as Lark asked; no secret in the log.
 */
import assert from "node:assert/strict";
import { apiPost, stopDaemon, type TestDaemon } from "./helpers/api.ts";
import {
  assertNoSecretsLogged,
  assertRetriedAfter,
  providerReport,
  startChatDaemon,
  storedMessages,
  waitForStatus,
  waitForStored,
} from "./helpers/chat.ts";
import { withHome } from "./helpers/courier.ts";
import { type DeliverOptions, FakeLark, larkMessageEvent } from "./fakes/lark_server.ts";

const TOKEN = "verification-token-e2e";
const KEY = "encrypt-key-e2e";
const APP_SECRET = "fake-app-secret";
const ENV = { LARK_E2E_TOKEN: TOKEN, LARK_E2E_KEY: KEY, LARK_E2E_SECRET: APP_SECRET };

Deno.test("lark webhook: verified events become mail once, replies answer in the thread", async () => {
  const fake = await FakeLark.start();
  try {
    await withHome(async (h) => {
      const daemon = await startChatDaemon(h, {
        feishu: {
          type: "lark",
          verification_token: "env:LARK_E2E_TOKEN",
          encrypt_key: "env:LARK_E2E_KEY",
          app_id: "cli_fake",
          app_secret: "env:LARK_E2E_SECRET",
          bot_open_id: "ou_bot",
          api_base: fake.apiBase,
        },
      }, ENV);
      const url = `${daemon.url}/api/v1/inbound/feishu`;
      const deliver = async (event: unknown, options: DeliverOptions = {}) => {
        const response = await fake.deliver(url, event, { encryptKey: KEY, ...options });
        return { status: response.status, body: await response.text() };
      };

      const event = larkMessageEvent({ token: TOKEN, messageId: "om_e2e_1", threadId: "omt_9" });
      assert.deepEqual(await deliver(event), { status: 200, body: "{}\n" });
      assert.equal((await deliver(event)).status, 200, "Lark's retry of the event");
      const [stored] = await waitForStored(daemon, "feishu", 1);
      assert.equal(stored.message_id, "om_e2e_1");
      assert.equal(stored.text, "deploy is red");
      assert.deepEqual(stored.mail.session, { id: "oc_42", type: "thread", thread_key: "omt_9" });

      // Refused before anything is stored: a forged signature, none, a stale one, a wrong token.
      const other = () => larkMessageEvent({ token: TOKEN });
      for (
        const [what, options] of [
          ["forged", { signWith: "guessed-key" }],
          ["unsigned", { unsigned: true }],
          ["stale", { timestamp: Math.floor(Date.now() / 1000) - 25 * 3600 }],
        ] as [string, DeliverOptions][]
      ) {
        assert.equal((await deliver(other(), options)).status, 401, what);
      }
      const wrongToken = await deliver(larkMessageEvent({ token: "not-the-token" }));
      assert.equal(wrongToken.status, 401);
      assert.match(wrongToken.body, /verification token does not match/);

      // The URL check of the Event Configuration page.
      const check = await deliver({ challenge: "c-42", token: TOKEN, type: "url_verification" });
      assert.deepEqual(JSON.parse(check.body), { challenge: "c-42" });

      const report = await providerReport(daemon, "feishu");
      assert.deepEqual([report.received, report.duplicates, report.rejected], [1, 1, 4]);
      assert.equal((await storedMessages(daemon, "feishu")).length, 1);

      // The reply answers the message in its thread; Lark's rate limit first, honoured.
      const replyPath = "/open-apis/im/v1/messages/om_e2e_1/reply";
      fake.http.inject(replyPath, {
        status: 429,
        body: { code: 99991400, msg: "request trigger frequency limit" },
        headers: { "x-ogw-ratelimit-reset": "2" },
      });
      const reply = await sendReply(daemon, stored.mail_id);
      const sent = await waitForStatus(daemon, reply, "done");
      const tries = fake.http.requestsTo(replyPath);
      assertRetriedAfter(tries, 2000, sent, /99991400 request trigger frequency limit/);
      assert.deepEqual(fake.sent, [{
        kind: "reply",
        text: "on it",
        target: "om_e2e_1",
        inThread: true,
        uuid: reply,
      }]);

      await stopDaemon(daemon);
      await assertNoSecretsLogged(h, [TOKEN, KEY, APP_SECRET]);
    });
  } finally {
    await fake.close();
  }
});

async function sendReply(daemon: TestDaemon, mailId: string): Promise<string> {
  const queued = await apiPost(daemon, "/api/v1/outbound/feishu", {
    to: "oc_42",
    text: "on it",
    reply_to: mailId,
  });
  assert.equal(queued.status, 202, JSON.stringify(queued.body));
  return String(queued.body.id);
}
