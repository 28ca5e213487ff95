import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/mod.ts";
import {
  type ChatMessage,
  createTelegramProvider,
  type Provider,
  type ProviderContext,
  ProviderError,
  TelegramApiError,
  type WebhookOutcome,
} from "../lib/providers/mod.ts";
import { eventually } from "./helpers/mail.ts";
import { recordingLog } from "./helpers/log.ts";
import { leaseTestPort } from "./helpers/ports.ts";
import { FAKE_TELEGRAM, FakeTelegram, telegramUpdate } from "./fakes/telegram_server.ts";

const SECRET = "s3cret_token-for-tests";
const TOKEN = FAKE_TELEGRAM.token;
const BOT = FAKE_TELEGRAM.botId;

function provider(
  extra: Record<string, unknown> = {},
  context: ProviderContext = {},
): Provider {
  return createTelegramProvider("tg", {
    type: "telegram",
    bot_token: TOKEN,
    ...extra,
  }, { reconnectDelay: () => 20, ...context });
}

function hook(body: unknown, secret: string | null = SECRET) {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (secret !== null) headers["x-telegram-bot-api-secret-token"] = secret;
  return {
    request: new Request("http://127.0.0.1/api/v1/inbound/tg", {
      method: "POST",
      headers,
      body: text,
    }),
    body: new TextEncoder().encode(text),
  };
}

async function deliver(p: Provider, update: unknown, secret?: string | null) {
  const { request, body } = hook(update, secret);
  return await p.handleWebhook(request, body);
}

function messagesOf(outcome: WebhookOutcome): ChatMessage[] {
  assert.equal(outcome.kind, "messages", JSON.stringify(outcome));
  return (outcome as { messages: ChatMessage[] }).messages;
}

/** A webhook provider whose getMe (for the bot's username) goes to the fake. */
function webhookOn(fake: FakeTelegram, extra: Record<string, unknown> = {}, context = {}) {
  return provider(
    { mode: "webhook", secret_token: SECRET, api_base: fake.apiBase, ...extra },
    context,
  );
}

// --- Webhook -------------------------------------------------------------------------------------

Deno.test("telegram webhook: the secret token is required and compared before parsing", async () => {
  await using fake = await FakeTelegram.start();
  const tg = webhookOn(fake);
  const update = { update_id: 1, ...telegramUpdate({ text: "hi" }) };
  assert.equal(messagesOf(await deliver(tg, update)).length, 1);
  for (const secret of [null, "", "wrong", SECRET + "x", SECRET.slice(1)]) {
    const outcome = await deliver(tg, update, secret);
    assert.equal(outcome.kind, "rejected", String(secret));
    if (outcome.kind === "rejected") assert.equal(outcome.status, 401);
  }
  // Wrong token and garbage body: 401, not 400 (nothing is parsed before the check).
  const garbage = new Request("http://127.0.0.1/", {
    method: "POST",
    headers: { "x-telegram-bot-api-secret-token": "wrong" },
    body: "{",
  });
  assert.equal((await tg.handleWebhook(garbage, new TextEncoder().encode("{"))).kind, "rejected");
  const { request } = hook({});
  const bad = await tg.handleWebhook(request, new TextEncoder().encode("{"));
  assert.deepEqual(bad, {
    kind: "rejected",
    status: 400,
    reason: "the body is not a Telegram update",
  });
});

Deno.test("telegram webhook: closed when no secret_token is configured; webhook mode requires one", async () => {
  const polling = provider();
  const outcome = await deliver(polling, { update_id: 1, ...telegramUpdate() });
  assert.equal(outcome.kind, "rejected");
  assert.throws(
    () => provider({ mode: "webhook" }),
    (e) => e instanceof ConfigError && /secret_token: is required in webhook mode/.test(e.message),
  );
  assert.throws(
    () => provider({ mode: "webhook", secret_token: "has spaces" }),
    (e) => e instanceof ConfigError && /1-256 characters/.test(e.message),
  );
  assert.throws(
    () => provider({ bot_token: "not-a-token" }),
    (e) => e instanceof ConfigError && /bot_token: is not a Telegram bot token/.test(e.message),
  );
  const fromEnv = createTelegramProvider("tg", {
    type: "telegram",
    bot_token: "env:TG_TOKEN",
  }, { env: (n) => (n === "TG_TOKEN" ? TOKEN : undefined) });
  assert.equal(fromEnv.mode, "polling");
  assert.equal(typeof fromEnv.connect, "function");
  assert.equal(provider({ mode: "webhook", secret_token: SECRET }).connect, undefined);
});

Deno.test("telegram: private chats, groups, forum topics, captions and mentions", async () => {
  await using fake = await FakeTelegram.start();
  const tg = webhookOn(fake);
  const [direct] = messagesOf(
    await deliver(tg, { update_id: 5, ...telegramUpdate({ text: "hi", message_id: 7 }) }),
  );
  assert.deepEqual(direct.session, { id: "42", type: "direct", name: "Ann Lee" });
  assert.deepEqual(direct.sender, { id: "42", name: "Ann Lee" });
  assert.equal(direct.message_id, "42:7");
  assert.equal(direct.time, "2023-11-14T22:13:20.000Z");
  assert.deepEqual(direct.extra.reply, { chat_id: 42, message_id: 7 });
  assert.equal(direct.extra.update_id, 5);

  const group = { id: -1001234, type: "supergroup", title: "Ops", is_forum: true };
  const [topic] = messagesOf(
    await deliver(tg, {
      update_id: 6,
      ...telegramUpdate({
        chat: group,
        message_id: 90,
        text: `@${FAKE_TELEGRAM.username} deploy?`,
        extra: {
          message_thread_id: 77,
          is_topic_message: true,
          entities: [{ type: "mention", offset: 0, length: FAKE_TELEGRAM.username.length + 1 }],
          reply_to_message: { message_id: 77, forum_topic_created: { name: "deploys" } },
        },
      }),
    }),
  );
  assert.deepEqual(topic.session, {
    id: "-1001234",
    type: "thread",
    name: "Ops",
    thread_key: "77",
  });
  assert.deepEqual(topic.extra.reply, {
    chat_id: -1001234,
    message_id: 90,
    message_thread_id: 77,
  });
  assert.equal(topic.extra.mentioned, true);

  const plainGroup = { id: -5, type: "group", title: "Team" };
  const [caption] = messagesOf(
    await deliver(tg, {
      update_id: 7,
      ...telegramUpdate({ chat: plainGroup, text: null, extra: { caption: "the graph" } }),
    }),
  );
  assert.equal(caption.text, "the graph");
  assert.deepEqual(caption.session, { id: "-5", type: "group", name: "Team" });
  assert.equal(caption.extra.mentioned, false);

  const replyToBot = telegramUpdate({
    chat: plainGroup,
    extra: { reply_to_message: { message_id: 3, from: { id: BOT, is_bot: true } } },
  });
  const [reply] = messagesOf(await deliver(tg, { update_id: 8, ...replyToBot }));
  assert.equal(reply.extra.mentioned, true);
  const textMention = telegramUpdate({
    chat: plainGroup,
    text: "Courier, look",
    extra: { entities: [{ type: "text_mention", offset: 0, length: 7, user: { id: BOT } }] },
  });
  assert.equal(
    messagesOf(await deliver(tg, { update_id: 9, ...textMention }))[0].extra.mentioned,
    true,
  );
  const otherMention = telegramUpdate({
    chat: plainGroup,
    text: "@someone_else look",
    extra: { entities: [{ type: "mention", offset: 0, length: 13 }] },
  });
  assert.equal(
    messagesOf(await deliver(tg, { update_id: 10, ...otherMention }))[0].extra.mentioned,
    false,
  );
  assert.equal(fake.calls.filter((c) => c.method === "getMe").length, 1, "getMe once, cached");
});

Deno.test("telegram: edits, stickers and the bot's own messages are answered and not taken", async () => {
  const tg = provider({ mode: "webhook", secret_token: SECRET });
  const skipped = [
    { update_id: 1, edited_message: telegramUpdate().message },
    { update_id: 2, ...telegramUpdate({ text: null, extra: { sticker: { file_id: "x" } } }) },
    { update_id: 3, ...telegramUpdate({ from: { id: BOT, is_bot: true, first_name: "C" } }) },
  ];
  for (const update of skipped) {
    const outcome = await deliver(tg, update);
    assert.equal(outcome.kind, "answer", JSON.stringify(update));
    if (outcome.kind === "answer") assert.equal(outcome.response.status, 200);
  }
});

Deno.test("telegram: require_mention and allow_from filter group messages", async () => {
  await using fake = await FakeTelegram.start();
  const log = recordingLog();
  const tg = webhookOn(fake, { require_mention: true, allow_from: [42] }, { log });
  const group = { id: -5, type: "group", title: "Team" };
  const quiet = await deliver(tg, {
    update_id: 1,
    ...telegramUpdate({ chat: group, text: "psst" }),
  });
  assert.equal(quiet.kind, "answer");
  const dm = await deliver(tg, { update_id: 2, ...telegramUpdate({ text: "psst" }) });
  assert.equal(messagesOf(dm).length, 1);
  const stranger = telegramUpdate({ from: { id: 7, first_name: "Eve" }, text: "psst" });
  assert.equal((await deliver(tg, { update_id: 3, ...stranger })).kind, "answer");
  assert.ok(log.lines.some((l) => /sender 7 is not in allow_from/.test(l)));
  assert.equal(tg.status().dropped, 2);
  assert.ok(log.lines.every((l) => !l.includes("psst")));
});

// --- Send and check ------------------------------------------------------------------------------

Deno.test("telegram send: a reply goes to the chat, topic and message it answers", async () => {
  await using fake = await FakeTelegram.start();
  const tg = webhookOn(fake);
  const group = { id: -1001234, type: "supergroup", title: "Ops", is_forum: true };
  const [inbound] = messagesOf(
    await deliver(tg, {
      update_id: 1,
      ...telegramUpdate({
        chat: group,
        message_id: 90,
        extra: { message_thread_id: 77, is_topic_message: true },
      }),
    }),
  );
  const sent = await tg.send({
    to: "-1001234",
    text: "On it.",
    replyTo: {
      message_id: inbound.message_id,
      reply: inbound.extra.reply,
      session_id: "-1001234",
    },
    extra: { parse_mode: "HTML", chat_id: "evil" },
  });
  assert.deepEqual(fake.sent[0], {
    chat_id: -1001234,
    text: "On it.",
    message_thread_id: 77,
    parse_mode: "HTML",
    reply_parameters: { message_id: 90, allow_sending_without_reply: true },
  });
  assert.equal(sent.message_id, "-1001234:1");
  await tg.send({ to: "42", text: "fresh" });
  assert.deepEqual(fake.sent[1], { chat_id: "42", text: "fresh" });
});

Deno.test("telegram send: a long text is split at line breaks into messages Telegram takes", async () => {
  await using fake = await FakeTelegram.start();
  const tg = webhookOn(fake);
  const line = "x".repeat(99);
  const text = Array.from({ length: 90 }, () => line).join("\n"); // 8,999 characters
  await tg.send({
    to: "42",
    text,
    replyTo: { message_id: "42:1", reply: { chat_id: 42, message_id: 1 }, session_id: "42" },
  });
  assert.equal(fake.sent.length, 3);
  assert.ok(fake.sent.every((s) => (s.text as string).length <= 4096));
  assert.equal(fake.sent.map((s) => s.text).join("\n"), text);
  assert.ok(fake.sent[0].reply_parameters !== undefined);
  assert.equal(fake.sent[1].reply_parameters, undefined);
});

Deno.test("telegram send: 429 retry_after, ok:false description, group migration", async () => {
  await using fake = await FakeTelegram.start();
  const tg = webhookOn(fake);
  fake.inject("sendMessage", {
    body: {
      ok: false,
      error_code: 429,
      description: "Too Many Requests: retry after 7",
      parameters: { retry_after: 7 },
    },
  });
  const limited = await tg.send({ to: "42", text: "x" }).catch((e) => e);
  assert.ok(limited instanceof ProviderError);
  assert.equal(limited.retryable, true);
  assert.equal(limited.retryAfterMs, 7000);
  assert.match(limited.message, /^Telegram sendMessage failed: Too Many Requests: retry after 7/);
  assert.equal(limited.platformError, "Too Many Requests: retry after 7");
  // A description that names the bot's URL (a proxy in front of the Bot API) is kept without it.
  fake.inject("sendMessage", {
    body: {
      ok: false,
      error_code: 429,
      description: `Too Many Requests from ${fake.apiBase}/bot${TOKEN}/sendMessage`,
    },
  });
  const proxied = await tg.send({ to: "42", text: "x" }).catch((e) => e);
  for (const text of [proxied.message, proxied.platformError]) {
    assert.ok(!text.includes(TOKEN.split(":")[1]), `token kept: ${text}`);
    assert.ok(!text.includes("/bot"), `URL kept: ${text}`);
  }
  assert.match(proxied.message, /Too Many Requests from <url>/);

  fake.inject("sendMessage", {
    body: { ok: false, error_code: 400, description: "Bad Request: chat not found" },
  });
  const refused = await tg.send({ to: "999", text: "x" }).catch((e) => e);
  assert.ok(refused instanceof TelegramApiError);
  assert.equal(refused.retryable, false);
  assert.equal(refused.platformError, "Bad Request: chat not found");
  assert.equal(refused.errorCode, 400);
  assert.match(refused.message, /^Telegram sendMessage failed: Bad Request: chat not found/);

  fake.inject("sendMessage", {
    body: {
      ok: false,
      error_code: 403,
      description: "Forbidden: bot was blocked by the user",
    },
  });
  const blocked = await tg.send({ to: "42", text: "x" }).catch((e) => e);
  assert.equal(blocked.retryable, false);
  assert.match(blocked.message, /blocked by the user/);

  fake.inject("sendMessage", {
    body: {
      ok: false,
      error_code: 400,
      description: "Bad Request: group chat was upgraded to a supergroup chat",
      parameters: { migrate_to_chat_id: -1009999 },
    },
  });
  const migrated = await tg.send({ to: "-5", text: "moved" });
  assert.equal(fake.sent.at(-1)!.chat_id, -1009999);
  assert.equal(migrated.message_id, "-1009999:1");

  fake.inject("sendMessage", {
    status: 502,
    body: { ok: false, error_code: 502, description: "Bad Gateway" },
  });
  assert.equal((await tg.send({ to: "42", text: "x" }).catch((e) => e)).retryable, true);
});

Deno.test("telegram: the bot token never appears in an error, its cause, or a log line", async () => {
  const closed = await leaseTestPort(); // leased, nothing listens: connection refused
  const log = recordingLog();
  const tg = provider({ api_base: `http://127.0.0.1:${closed}` }, { log });
  const error = await tg.send({ to: "42", text: "x" }).catch((e) => e);
  assert.ok(error instanceof ProviderError);
  assert.equal(error.retryable, true);
  const check = await tg.check();
  assert.equal(check.ok, false);
  const controller = new AbortController();
  const done = tg.connect!(() => Promise.resolve(), controller.signal);
  await eventually(() => log.lines.length >= 2, { what: "failed polls in the log" });
  controller.abort();
  await done;
  const texts = [
    error.message,
    String(error.cause),
    String((error.cause as Error)?.cause ?? ""),
    error.stack ?? "",
    check.detail,
    tg.status().last_error ?? "",
    ...log.lines,
  ];
  for (const text of texts) {
    assert.ok(!text.includes(TOKEN.split(":")[1]), `token leaked: ${text}`);
    assert.ok(!text.includes("/bot"), `URL leaked: ${text}`);
  }
  await using fake = await FakeTelegram.start();
  const wrong = provider({ api_base: fake.apiBase, bot_token: "123456789:AAwrongtoken" });
  const result = await wrong.check();
  assert.equal(result.ok, false);
  assert.match(result.detail, /Unauthorized: the bot token was rejected/);
  assert.ok(!result.detail.includes("AAwrongtoken"));
});

Deno.test("telegram check: getMe, and the webhook's state in webhook mode", async () => {
  await using fake = await FakeTelegram.start();
  const polling = await provider({ api_base: fake.apiBase }).check();
  assert.deepEqual(polling, {
    ok: true,
    detail: `bot token works: @${FAKE_TELEGRAM.username} (${BOT})`,
  });
  const noHook = await webhookOn(fake).check();
  assert.equal(noHook.ok, false);
  assert.match(noHook.detail, /no webhook is set: call setWebhook/);
  fake.webhookUrl = "https://example.com/api/v1/inbound/tg";
  const hooked = await webhookOn(fake).check();
  assert.equal(hooked.ok, true);
  assert.match(hooked.detail, /webhook https:\/\/example\.com\/api\/v1\/inbound\/tg/);
});
