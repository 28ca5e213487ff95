import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type ChatMessage,
  createLarkProvider,
  decryptLarkEvent,
  LarkDecryptError,
  larkSignature,
  parseLarkConfig,
  type Provider,
  ProviderError,
} from "../lib/providers/mod.ts";
import { ConfigError } from "../lib/config/mod.ts";
import {
  FakeLark,
  type FakeLarkOptions,
  type LarkEventOptions,
  larkMessageEvent,
} from "./fakes/lark_server.ts";
import { startWebhookHost, type WebhookHost } from "./helpers/webhook_host.ts";

const TOKEN = "verification-token-1";
const KEY = "encrypt-key-1";

// The worked example of Lark's "Encrypt Key" documentation, verbatim.
Deno.test("lark: the documented encryption example decrypts to 'hello world'", async () => {
  assert.equal(
    await decryptLarkEvent("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="),
    "hello world",
  );
  await assert.rejects(
    decryptLarkEvent("other key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="),
    LarkDecryptError,
  );
  await assert.rejects(decryptLarkEvent("test key", "not base64!"), LarkDecryptError);
  await assert.rejects(decryptLarkEvent("test key", "AAAA"), LarkDecryptError);
});

Deno.test("lark: X-Lark-Signature is sha256 hex of timestamp+nonce+key+raw body", async () => {
  const body = '{"encrypt":"abc"}\n';
  const expected = createHash("sha256").update("1700000000" + "n-1" + KEY + body).digest("hex");
  assert.equal(
    await larkSignature("1700000000", "n-1", KEY, new TextEncoder().encode(body)),
    expected,
  );
});

interface Rig {
  fake: FakeLark;
  host: WebhookHost;
  provider: Provider;
  clock: { now: number };
}

async function withLark(
  config: Record<string, unknown>,
  fn: (rig: Rig) => Promise<void>,
  fakeOptions: FakeLarkOptions = {},
): Promise<void> {
  const clock = { now: Date.now() };
  const fake = await FakeLark.start({ now: () => clock.now, ...fakeOptions });
  const provider = createLarkProvider("feishu", {
    type: "lark",
    verification_token: TOKEN,
    encrypt_key: KEY,
    app_id: "cli_fake",
    app_secret: "fake-app-secret",
    api_base: fake.apiBase,
    ...config,
  }, { now: () => clock.now });
  const host = await startWebhookHost(provider);
  try {
    await fn({ fake, host, provider, clock });
  } finally {
    await host.close();
    await fake.close();
  }
}

/** An im.message.receive_v1 event carrying this test's verification token. */
function messageEvent(options: LarkEventOptions = {}): Record<string, unknown> {
  return larkMessageEvent({ token: TOKEN, ...options });
}

const challenge = { challenge: "c-123", token: TOKEN, type: "url_verification" };

Deno.test("lark: url_verification is answered, encrypted or not, and only with the right token", async () => {
  await withLark({}, async ({ fake, host }) => {
    // The URL check comes encrypted but unsigned; the token inside proves it.
    let response = await fake.deliver(host.url, challenge, { encryptKey: KEY, unsigned: true });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { challenge: "c-123" });
    response = await fake.deliver(host.url, challenge, { encryptKey: KEY });
    assert.deepEqual(await response.json(), { challenge: "c-123" });
    response = await fake.deliver(host.url, { ...challenge, token: "wrong" }, { encryptKey: KEY });
    assert.equal(response.status, 401);
    await response.body?.cancel();
    assert.equal(host.stored.length, 0);
  });
  await withLark({ encrypt_key: undefined }, async ({ fake, host }) => {
    const response = await fake.deliver(host.url, challenge);
    assert.deepEqual(await response.json(), { challenge: "c-123" });
  });
});

Deno.test("lark: a signed, encrypted message event becomes a chat message", async () => {
  await withLark({}, async ({ fake, host }) => {
    const response = await fake.deliver(host.url, messageEvent({ messageId: "om_1" }), {
      encryptKey: KEY,
    });
    assert.equal(response.status, 200);
    await response.body?.cancel();
    assert.equal(host.stored.length, 1);
    const m = host.stored[0];
    assert.equal(m.message_id, "om_1");
    assert.deepEqual(m.session, { id: "oc_42", type: "group" });
    assert.deepEqual(m.sender, { id: "ou_alice", name: "ou_alice" });
    assert.equal(m.text, "deploy is red"); // the bot's own mention is dropped
    assert.equal(m.time, "2023-11-14T22:13:20.000Z");
    assert.equal(m.extra.mentioned, true);
    assert.deepEqual(m.extra.reply, { message_id: "om_1", chat_id: "oc_42", chat_type: "group" });
    // The raw event is kept, without the verification token.
    const raw = m.extra.raw as { header: Record<string, unknown> };
    assert.equal(raw.header.event_type, "im.message.receive_v1");
    assert.equal("token" in raw.header, false);
    // bot/v3/info was asked once for the bot's open_id.
    assert.equal(fake.http.requestsTo("/open-apis/bot/v3/info").length, 1);
  });
});

Deno.test("lark: bad, stale and missing signatures and wrong tokens get 401 and store nothing", async () => {
  await withLark({}, async ({ fake, host, clock }) => {
    const cases: [string, Promise<Response>][] = [
      [
        "forged signature",
        fake.deliver(host.url, messageEvent(), { encryptKey: KEY, signWith: "guess" }),
      ],
      [
        "stale timestamp",
        fake.deliver(host.url, messageEvent(), {
          encryptKey: KEY,
          timestamp: Math.floor(clock.now / 1000) - 25 * 3600,
        }),
      ],
      ["no signature", fake.deliver(host.url, messageEvent(), { encryptKey: KEY, unsigned: true })],
      ["wrong token", fake.deliver(host.url, messageEvent({ token: "nope" }), { encryptKey: KEY })],
      ["wrong encrypt key", fake.deliver(host.url, messageEvent(), { encryptKey: "other-key" })],
    ];
    for (const [what, pending] of cases) {
      const response = await pending;
      assert.equal(response.status, 401, what);
      await response.body?.cancel();
    }
    assert.equal(host.stored.length, 0);
    assert.ok(host.outcomes.every((o) => o.kind === "rejected"));
    // A plaintext body when an encrypt key is set is refused too.
    const response = await fake.deliver(host.url, messageEvent(), { signWith: KEY });
    assert.equal(response.status, 400);
    await response.body?.cancel();
    assert.equal(host.stored.length, 0);
  });
  // Without an encrypt key the verification token is the guard.
  await withLark({ encrypt_key: undefined }, async ({ fake, host }) => {
    const bad = await fake.deliver(host.url, messageEvent({ token: "nope" }));
    assert.equal(bad.status, 401);
    await bad.body?.cancel();
    const good = await fake.deliver(host.url, messageEvent());
    assert.equal(good.status, 200);
    await good.body?.cancel();
    assert.equal(host.stored.length, 1);
  });
});

Deno.test("lark: a retried event maps to the same message_id and is stored once", async () => {
  await withLark({}, async ({ fake, host }) => {
    const event = messageEvent({ messageId: "om_retry", eventId: "ev-retry" });
    for (let i = 0; i < 3; i++) {
      const response = await fake.deliver(host.url, event, { encryptKey: KEY }); // new nonce each time
      assert.equal(response.status, 200);
      await response.body?.cancel();
    }
    const ids = host.outcomes.flatMap((o) => o.kind === "messages" ? o.messages : [])
      .map((m) => m.message_id);
    assert.deepEqual(ids, ["om_retry", "om_retry", "om_retry"]);
    assert.equal(host.stored.length, 1);
  });
});

Deno.test("lark: rich text, other mentions, threads and other kinds of messages", async () => {
  await withLark({ bot_open_id: "ou_bot" }, async ({ fake, host }) => {
    const post = {
      title: "Incident",
      content: [
        [{ tag: "at", user_id: "@_user_1", user_name: "Courier" }, {
          tag: "text",
          text: " db is down",
        }],
        [{ tag: "text", text: "see " }, { tag: "a", text: "runbook", href: "https://x" }],
        [{ tag: "img", image_key: "img_1" }],
      ],
    };
    const events = [
      messageEvent({ messageId: "om_post", messageType: "post", content: post }),
      messageEvent({
        messageId: "om_mention",
        content: { text: "@_user_1 ask @_user_2 please" },
        mentions: [
          { key: "@_user_1", id: { open_id: "ou_bot" }, name: "Courier" },
          { key: "@_user_2", id: { open_id: "ou_bob" }, name: "Bob" },
        ],
      }),
      messageEvent({ messageId: "om_thread", threadId: "omt_9" }),
      messageEvent({ messageId: "om_file", messageType: "file", content: { file_name: "a.log" } }),
      messageEvent({ messageId: "om_dm", chatType: "p2p", mentions: [], content: { text: "hi" } }),
    ];
    for (const event of events) {
      const response = await fake.deliver(host.url, event, { encryptKey: KEY });
      await response.body?.cancel();
    }
    const byId = (id: string) => host.stored.find((m) => m.message_id === id) as ChatMessage;
    assert.equal(byId("om_post").text, "Incident\ndb is down\nsee runbook\n[image]");
    assert.equal(byId("om_mention").text, "ask @Bob please");
    assert.deepEqual(byId("om_thread").session, {
      id: "oc_42",
      type: "thread",
      thread_key: "omt_9",
    });
    assert.deepEqual(byId("om_thread").extra.reply, {
      message_id: "om_thread",
      chat_id: "oc_42",
      chat_type: "group",
      thread_id: "omt_9",
      root_id: "om_root",
    });
    assert.equal(byId("om_file").text, "[file: a.log]");
    assert.equal(byId("om_dm").session.type, "direct");
    assert.equal(byId("om_dm").extra.mentioned, false);
    // The configured bot_open_id spares the bot/v3/info call.
    assert.equal(fake.http.requestsTo("/open-apis/bot/v3/info").length, 0);
  });
});

Deno.test("lark: require_mention and allow_from drop messages, counted", async () => {
  await withLark(
    { require_mention: true, allow_from: ["ou_alice"] },
    async ({ fake, host, provider }) => {
      const events = [
        messageEvent({ messageId: "om_a", mentions: [], content: { text: "chatter" } }),
        messageEvent({ messageId: "om_b", sender: "ou_mallory" }),
        messageEvent({ messageId: "om_c" }),
        messageEvent({ messageId: "om_d", chatType: "p2p", mentions: [], content: { text: "dm" } }),
      ];
      for (const event of events) {
        const response = await fake.deliver(host.url, event, { encryptKey: KEY });
        assert.equal(response.status, 200);
        await response.body?.cancel();
      }
      assert.deepEqual(host.stored.map((m) => m.message_id), ["om_c", "om_d"]);
      assert.equal(provider.status().dropped, 2);
    },
  );
});

Deno.test("lark: other events are answered and not stored", async () => {
  await withLark({}, async ({ fake, host }) => {
    const event = messageEvent();
    (event.header as Record<string, unknown>).event_type = "im.chat.member.bot.added_v1";
    const response = await fake.deliver(host.url, event, { encryptKey: KEY });
    assert.equal(response.status, 200);
    await response.body?.cancel();
    assert.equal(host.stored.length, 0);
  });
});

Deno.test("lark: sends share one cached tenant token, refreshed before it expires", async () => {
  await withLark({}, async ({ fake, provider, clock }) => {
    const results = await Promise.all(
      ["one", "two", "three"].map((text) => provider.send({ to: "oc_42", text })),
    );
    assert.equal(fake.tokensIssued, 1);
    assert.deepEqual(results.map((r) => r.message_id).sort(), [
      "om_sent_1",
      "om_sent_2",
      "om_sent_3",
    ]);
    assert.deepEqual(fake.sent.map((s) => s.target), [
      "chat_id:oc_42",
      "chat_id:oc_42",
      "chat_id:oc_42",
    ]);
    await provider.send({ to: "ou_bob", text: "direct" });
    assert.equal(fake.sent.at(-1)?.target, "open_id:ou_bob");
    assert.equal(fake.tokensIssued, 1);
    // With less than five minutes left, the next send takes a new token.
    clock.now += 7200_000 - 4 * 60_000;
    await provider.send({ to: "oc_42", text: "later" });
    assert.equal(fake.tokensIssued, 2);
    // A token the platform no longer accepts is replaced once, and the send goes through.
    fake.revokeTokens();
    await provider.send({ to: "oc_42", text: "after rotation" });
    assert.equal(fake.tokensIssued, 3);
    assert.equal(fake.sent.at(-1)?.text, "after rotation");
  });
});

Deno.test("lark: a reply goes to the message it answers, in its thread", async () => {
  await withLark({}, async ({ fake, host, provider }) => {
    for (
      const event of [
        messageEvent({ messageId: "om_q" }),
        messageEvent({ messageId: "om_t", threadId: "omt_1" }),
      ]
    ) {
      const response = await fake.deliver(host.url, event, { encryptKey: KEY });
      await response.body?.cancel();
    }
    for (const m of host.stored) {
      await provider.send({
        to: m.session.id,
        text: `re ${m.message_id}`,
        replyTo: { message_id: m.message_id, reply: m.extra.reply, session_id: m.session.id },
        idempotencyKey: `mail-${m.message_id}`,
      });
    }
    assert.deepEqual(fake.sent, [
      { kind: "reply", text: "re om_q", target: "om_q", inThread: false, uuid: "mail-om_q" },
      { kind: "reply", text: "re om_t", target: "om_t", inThread: true, uuid: "mail-om_t" },
    ]);
    // The same idempotency key again: the platform delivers it once.
    const again = await provider.send({
      to: "oc_42",
      text: "re om_q",
      replyTo: { message_id: "om_q", reply: host.stored[0].extra.reply, session_id: "oc_42" },
      idempotencyKey: "mail-om_q",
    });
    assert.equal(again.message_id, "om_sent_1");
    assert.equal(fake.sent.length, 2);
  });
});

Deno.test("lark: a 429 is a retryable ProviderError with the platform's delay", async () => {
  await withLark({}, async ({ fake, provider }) => {
    fake.http.inject("/open-apis/im/v1/messages", {
      status: 429,
      headers: { "x-ogw-ratelimit-reset": "7" },
      body: { code: 99991400, msg: "request trigger frequency limit" },
    });
    const error = await provider.send({ to: "oc_42", text: "hi" }).catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.retryable, true);
    assert.equal(error.retryAfterMs, 7000);
    assert.equal(error.platformError, "99991400 request trigger frequency limit");
    // The old APIs say it with HTTP 400: the code decides.
    fake.http.inject("/open-apis/im/v1/messages", {
      status: 400,
      headers: { "x-ogw-ratelimit-reset": "3" },
      body: { code: 99991400, msg: "request trigger frequency limit" },
    });
    const old = await provider.send({ to: "oc_42", text: "hi" }).catch((e) => e);
    assert.equal(old.retryable, true);
    assert.equal(old.retryAfterMs, 3000);
    assert.match(provider.status().last_error ?? "", /frequency limit/);
    // A 429 from the gateway, with no Lark code: its msg is kept all the same.
    fake.http.inject("/open-apis/im/v1/messages", {
      status: 429,
      body: { msg: "too many requests, slow down" },
    });
    const gateway = await provider.send({ to: "oc_42", text: "hi" }).catch((e) => e);
    assert.equal(gateway.retryable, true);
    assert.match(gateway.message, /failed: HTTP 429 \(too many requests, slow down\)/);
    assert.equal(gateway.platformError, "HTTP 429 (too many requests, slow down)");
  });
});

Deno.test("lark: platform errors are failures with the platform's message kept", async () => {
  await withLark({}, async ({ fake, provider }) => {
    fake.http.inject("/open-apis/im/v1/messages", {
      status: 400,
      body: { code: 230001, msg: "Your request contains an invalid request parameter." },
    });
    const error = await provider.send({ to: "oc_nope", text: "hi" }).catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.retryable, false);
    assert.equal(error.platformError, "230001 Your request contains an invalid request parameter.");
    assert.match(error.message, /^Lark im\/v1\/messages failed: 230001/);
    // A 200 with code != 0 is a failure too.
    fake.http.inject("/open-apis/im/v1/messages", {
      status: 200,
      body: { code: 230002, msg: "The bot can not be outside the group." },
    });
    const inside = await provider.send({ to: "oc_42", text: "hi" }).catch((e) => e);
    assert.equal(inside.platformError, "230002 The bot can not be outside the group.");
  });
});

Deno.test("lark: check fetches the tenant token and the bot, and says what is wrong", async () => {
  await withLark({}, async ({ provider }) => {
    const result = await provider.check();
    assert.equal(result.ok, true);
    assert.match(result.detail, /cli_fake.*Courier \(ou_bot\)/);
  });
  await withLark({ app_secret: "wrong" }, async ({ provider }) => {
    const result = await provider.check();
    assert.equal(result.ok, false);
    assert.match(result.detail, /10014 app secret invalid; check app_id and app_secret/);
    const error = await provider.send({ to: "oc_42", text: "x" }).catch((e) => e);
    assert.equal(error.retryable, false);
  });
});

Deno.test("lark: a custom bot webhook gets timestamp and sign", async () => {
  await withLark({}, async ({ fake }) => {
    const provider = createLarkProvider("feishu", {
      type: "lark",
      webhook_url: fake.webhookUrl,
      webhook_secret: "bot-secret",
    });
    await provider.send({ to: "ignored", text: "build is green" });
    assert.deepEqual(fake.sent, [
      { kind: "webhook", text: "build is green", target: "/open-apis/bot/v2/hook/hook-1" },
    ]);
    const wrong = createLarkProvider("feishu", {
      type: "lark",
      webhook_url: fake.webhookUrl,
      webhook_secret: "not-it",
    });
    const error = await wrong.send({ to: "x", text: "y" }).catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.retryable, false);
    assert.match(error.platformError ?? "", /^19021 sign match fail/);
    assert.match(error.message, /check webhook_url and webhook_secret/);
    assert.equal(fake.sent.length, 1);
  }, { webhookSecret: "bot-secret" });
});

Deno.test("lark: config reads env: secrets, regional hosts, and names the field at fault", () => {
  const env = (n: string) =>
    ({ LARK_TOKEN: "tok", LARK_SECRET: "sec" } as Record<string, string>)[n];
  const config = parseLarkConfig("feishu", {
    type: "lark",
    verification_token: "env:LARK_TOKEN",
    app_id: "cli_1",
    app_secret: "env:LARK_SECRET",
    api_base: "https://open.larksuite.com/open-apis/",
  }, { env });
  assert.equal(config.verificationToken, "tok");
  assert.deepEqual(config.app, { id: "cli_1", secret: "sec" });
  assert.equal(config.apiBase, "https://open.larksuite.com");
  assert.equal(config.mode, "webhook");
  assert.equal(
    parseLarkConfig("f", { type: "lark", verification_token: "t" }).apiBase,
    "https://open.feishu.cn",
  );
  assert.throws(
    () => parseLarkConfig("feishu", { type: "lark", app_id: "cli_1" }),
    (e: unknown) => e instanceof ConfigError && /app_id and app_secret go together/.test(e.message),
  );
  assert.throws(
    () => parseLarkConfig("feishu", { type: "lark", verification_token: "t", mode: "socket" }),
    (e: unknown) => e instanceof ConfigError && e.where === "config.json providers.feishu.mode",
  );
  assert.throws(
    () => parseLarkConfig("feishu", { type: "lark", verification_token: "env:MISSING" }, { env }),
    (e: unknown) => e instanceof ConfigError && /MISSING is not set/.test(e.message),
  );
  assert.throws(() => parseLarkConfig("feishu", { type: "lark" }), ConfigError);
});
