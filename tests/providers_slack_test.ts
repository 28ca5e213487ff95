import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/mod.ts";
import {
  type ChatMessage,
  createSlackProvider,
  type Provider,
  type ProviderContext,
  ProviderError,
  type WebhookOutcome,
} from "../lib/providers/mod.ts";
import { recordingLog } from "./helpers/log.ts";
import {
  FAKE_SLACK,
  FakeSlack,
  signedSlackRequest,
  slackEvent,
  type SlackEventOptions,
} from "./fakes/slack_server.ts";

const SECRET = FAKE_SLACK.signingSecret;

function webhookProvider(extra: Record<string, unknown> = {}, context: ProviderContext = {}) {
  return createSlackProvider("team", {
    type: "slack",
    mode: "webhook",
    signing_secret: SECRET,
    bot_token: FAKE_SLACK.botToken,
    ...extra,
  }, context);
}

async function post(
  provider: Provider,
  payload: unknown,
  options: { timestamp?: number; headers?: Record<string, string> } = {},
): Promise<WebhookOutcome> {
  const { request, body } = await signedSlackRequest(SECRET, JSON.stringify(payload), options);
  return provider.handleWebhook(request, body);
}

function messagesOf(outcome: WebhookOutcome): ChatMessage[] {
  assert.equal(outcome.kind, "messages", JSON.stringify(outcome));
  return (outcome as { messages: ChatMessage[] }).messages;
}

async function eventMessages(provider: Provider, options: SlackEventOptions) {
  return messagesOf(await post(provider, slackEvent(options)));
}

// --- Signature verification ---------------------------------------------------------------------

// The worked example of Slack's "Verifying requests from Slack", verbatim.
const DOCS = {
  secret: "8f742231b10e8888abcd99yyyzzz85a5",
  timestamp: "1531420618",
  body: "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&" +
    "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&" +
    "command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F" +
    "T1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&" +
    "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
  signature: "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
};

function docsRequest(body: string, signature = DOCS.signature): Request {
  return new Request("http://127.0.0.1/api/v1/inbound/team", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-slack-request-timestamp": DOCS.timestamp,
      "x-slack-signature": signature,
    },
    body,
  });
}

Deno.test("slack: Slack's published signing example verifies (and is a slash command, ignored)", async () => {
  const slack = createSlackProvider("team", {
    type: "slack",
    mode: "webhook",
    signing_secret: DOCS.secret,
    bot_token: "xoxb-1",
  }, { now: () => Number(DOCS.timestamp) * 1000 + 1000 });
  const body = new TextEncoder().encode(DOCS.body);
  const outcome = await slack.handleWebhook(docsRequest(DOCS.body), body);
  assert.equal(outcome.kind, "answer", JSON.stringify(outcome));
  if (outcome.kind === "answer") assert.equal(outcome.response.status, 200);

  // One byte changed in the body, or in the signature: refused.
  const tampered = DOCS.body.replace("roadrunner", "roadrunnes");
  const badBody = await slack.handleWebhook(
    docsRequest(tampered),
    new TextEncoder().encode(tampered),
  );
  assert.deepEqual(badBody, {
    kind: "rejected",
    status: 401,
    reason: "X-Slack-Signature does not match",
  });
  const badSignature = await slack.handleWebhook(
    docsRequest(DOCS.body, DOCS.signature.replace(/3$/, "4")),
    body,
  );
  assert.equal(badSignature.kind, "rejected");
});

Deno.test("slack: stale, future, unsigned and wrongly signed requests get 401", async () => {
  const slack = webhookProvider();
  const payload = slackEvent();
  const now = Math.floor(Date.now() / 1000);
  const stale = await post(slack, payload, { timestamp: now - 301 });
  assert.equal(stale.kind, "rejected");
  if (stale.kind === "rejected") {
    assert.equal(stale.status, 401);
    assert.match(stale.reason, /5 minutes/);
  }
  assert.equal((await post(slack, payload, { timestamp: now + 301 })).kind, "rejected");
  assert.equal((await post(slack, payload, { timestamp: now - 290 })).kind, "messages");

  const unsigned = new Request("http://127.0.0.1/", {
    method: "POST",
    body: JSON.stringify(payload),
  });
  const outcome = await slack.handleWebhook(unsigned, new TextEncoder().encode("{}"));
  assert.equal(outcome.kind, "rejected");

  const otherSecret = await signedSlackRequest("not-the-secret", JSON.stringify(payload));
  assert.equal((await slack.handleWebhook(otherSecret.request, otherSecret.body)).kind, "rejected");
});

Deno.test("slack: the signature covers the raw bytes, so a body that is not JSON is only refused after it", async () => {
  const slack = webhookProvider();
  const { request, body } = await signedSlackRequest(SECRET, "{not json");
  assert.deepEqual(await slack.handleWebhook(request, body), {
    kind: "rejected",
    status: 400,
    reason: "the body is not a JSON object",
  });
});

Deno.test("slack: url_verification is answered with its challenge", async () => {
  const slack = webhookProvider();
  const outcome = await post(slack, {
    token: "Jhj5dZrVaK7ZwHHjRyZWjbDl",
    challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    type: "url_verification",
  });
  assert.equal(outcome.kind, "answer");
  if (outcome.kind !== "answer") return;
  assert.equal(outcome.response.status, 200);
  assert.deepEqual(await outcome.response.json(), {
    challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
  });
});

// --- Events --------------------------------------------------------------------------------------

Deno.test("slack: a channel message becomes a chat message", async () => {
  const slack = webhookProvider();
  const [message] = await eventMessages(slack, {
    channel: "C9",
    ts: "1700000000.000200",
    user: "U7",
    text: "deploy is red &amp; <@U2> says &lt;rollback&gt;",
    extra: { user_profile: { display_name: "alice", real_name: "Alice A" } },
  });
  assert.deepEqual(message.session, { id: "C9", type: "group" });
  assert.deepEqual(message.sender, { id: "U7", name: "alice" });
  assert.equal(message.text, "deploy is red & <@U2> says <rollback>");
  assert.equal(message.message_id, "C9:1700000000.000200");
  assert.equal(message.time, "2023-11-14T22:13:20.000Z");
  assert.deepEqual(message.extra.reply, { channel: "C9", ts: "1700000000.000200" });
  assert.equal(message.extra.mentioned, false);
  const raw = message.extra.raw as Record<string, unknown>;
  assert.equal(raw.token, undefined, "the legacy verification token is not kept");
  assert.equal(raw.event_id !== undefined, true);
});

Deno.test("slack: a message in a thread is keyed by its thread, and a reply goes to the thread", async () => {
  const slack = webhookProvider();
  const [message] = await eventMessages(slack, {
    ts: "1700000005.000100",
    thread_ts: "1700000001.000100",
  });
  assert.deepEqual(message.session, { id: "C1", type: "thread", thread_key: "1700000001.000100" });
  assert.deepEqual(message.extra.reply, {
    channel: "C1",
    ts: "1700000005.000100",
    thread_ts: "1700000001.000100",
  });
  // The thread's root message itself is a channel message.
  const [root] = await eventMessages(slack, {
    ts: "1700000001.000100",
    thread_ts: "1700000001.000100",
  });
  assert.equal(root.session.type, "group");

  const threaded = webhookProvider({ reply_in_thread: true });
  const [top] = await eventMessages(threaded, { ts: "1700000009.000100" });
  assert.equal(top.extra.reply.thread_ts, "1700000009.000100");
  const [dm] = await eventMessages(threaded, { channel: "D1", channel_type: "im" });
  assert.equal(dm.session.type, "direct");
  assert.equal(dm.extra.reply.thread_ts, undefined, "no thread in a direct message");
});

Deno.test("slack: the bot's own messages, edits, deletions and joins are answered and not taken", async () => {
  const slack = webhookProvider();
  const cases: SlackEventOptions[] = [
    { user: FAKE_SLACK.botUserId },
    { user: "U5", extra: { bot_id: "B5", app_id: FAKE_SLACK.appId } },
    { extra: { subtype: "message_changed" } },
    { extra: { subtype: "message_deleted" } },
    { extra: { subtype: "channel_join" } },
    { text: "" },
    { type: "reaction_added" },
  ];
  for (const options of cases) {
    const outcome = await post(slack, slackEvent(options));
    assert.equal(outcome.kind, "answer", JSON.stringify(options));
    if (outcome.kind === "answer") assert.equal(outcome.response.status, 200);
  }
  // Another bot's message is a message (an alert for the agent).
  const [alert] = await eventMessages(slack, { user: "U9", extra: { bot_id: "BOTHER" } });
  assert.equal(alert.sender.id, "U9");
});

Deno.test("slack: a retry and the message/app_mention twins of one message share one message_id", async () => {
  const slack = webhookProvider();
  const payload = slackEvent({
    ts: "1700000100.000100",
    text: `<@${FAKE_SLACK.botUserId}> deploy`,
  });
  const first = messagesOf(await post(slack, payload));
  const retry = messagesOf(
    await post(slack, payload, {
      headers: { "x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout" },
    }),
  );
  const mention = messagesOf(
    await post(
      slack,
      slackEvent({ type: "app_mention", ts: "1700000100.000100", text: payload.text as string }),
    ),
  );
  assert.equal(first[0].message_id, "C1:1700000100.000100");
  assert.equal(retry[0].message_id, first[0].message_id);
  assert.equal(mention[0].message_id, first[0].message_id);
  // Both twins say the bot was mentioned (the id is learned from the event's authorizations).
  assert.equal(first[0].extra.mentioned, true);
  assert.equal(mention[0].extra.mentioned, true);
});

Deno.test("slack: allow_from and require_mention drop messages, with a log line and no text", async () => {
  const log = recordingLog();
  const slack = webhookProvider({ allow_from: ["U1"], require_mention: true }, { log });
  const stranger = await post(slack, slackEvent({ user: "U2", text: "secret plans" }));
  assert.equal(stranger.kind, "answer");
  const unmentioned = await post(slack, slackEvent({ user: "U1", text: "secret plans" }));
  assert.equal(unmentioned.kind, "answer");
  const mentioned = await eventMessages(slack, { type: "app_mention", user: "U1" });
  assert.equal(mentioned.length, 1);
  const direct = await eventMessages(slack, { user: "U1", channel: "D1", channel_type: "im" });
  assert.equal(direct.length, 1, "require_mention is for group conversations only");
  assert.equal(log.lines.length, 2);
  assert.equal(slack.status().dropped, 2);
  assert.ok(log.lines.every((l) => !l.includes("secret plans")));
  assert.match(log.lines[0], /U2 is not in allow_from/);
});

// --- Configuration -------------------------------------------------------------------------------

Deno.test("slack: config is checked field by field, secrets may come from the environment", () => {
  const env = (name: string) => ({ BOT: "xoxb-from-env", APP: "xapp-from-env" })[name];
  const socket = createSlackProvider("team", {
    type: "slack",
    bot_token: "env:BOT",
    app_token: "env:APP",
  }, { env });
  assert.equal(socket.mode, "socket", "an app token makes socket the default");
  assert.equal(typeof socket.connect, "function");
  const webhook = webhookProvider();
  assert.equal(webhook.mode, "webhook");
  assert.equal(webhook.connect, undefined);
  assert.deepEqual(webhook.status(), { connected: null, dropped: 0 });

  const bad: [Record<string, unknown>, RegExp][] = [
    [{ bot_token: "xoxb-1" }, /signing_secret: is required in webhook mode/],
    [{ bot_token: "xoxb-1", mode: "socket" }, /app_token: is required in socket mode/],
    [{ bot_token: "xoxb-1", app_token: "xoxb-2" }, /app_token: must be an app-level token/],
    [{ signing_secret: "s" }, /bot_token: must be a non-empty string/],
    [{ bot_token: "env:NOPE", signing_secret: "s" }, /NOPE is not set/],
    [{ bot_token: "x", signing_secret: "s", mode: "rtm" }, /mode: must be one of/],
    [{ bot_token: "x", signing_secret: "s", api_base: "ftp://x" }, /api_base/],
  ];
  for (const [raw, message] of bad) {
    assert.throws(
      () => createSlackProvider("team", { type: "slack", ...raw }, { env }),
      (e) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(raw),
    );
  }
});

// --- Send and check against the fake Slack -------------------------------------------------------

function fakeProvider(fake: FakeSlack, extra: Record<string, unknown> = {}) {
  return createSlackProvider("team", fake.config(extra));
}

Deno.test("slack: a reply reaches the channel and thread of the message it answers", async () => {
  await using fake = await FakeSlack.start();
  const slack = fakeProvider(fake, { mode: "webhook" });
  const [inbound] = await eventMessages(slack, {
    channel: "C42",
    ts: "1700000300.000100",
    thread_ts: "1700000200.000100",
  });
  const sent = await slack.send({
    to: "C42",
    text: "On it.",
    replyTo: {
      message_id: inbound.message_id,
      reply: inbound.extra.reply,
      session_id: inbound.session.id,
    },
    extra: { unfurl_links: false, channel: "CEVIL" },
  });
  assert.match(sent.message_id ?? "", /^C42:1700000000\.\d{6}$/);
  const [call] = fake.calls.filter((c) => c.method === "chat.postMessage");
  assert.equal(call.token, FAKE_SLACK.botToken);
  assert.deepEqual(call.body, {
    channel: "C42",
    text: "On it.",
    thread_ts: "1700000200.000100",
    unfurl_links: false,
  });
  // A new message (no reply) goes to `to`, top level.
  await slack.send({ to: "C7", text: "status: green" });
  assert.deepEqual(fake.posts[1], { channel: "C7", text: "status: green" });
});

Deno.test("slack: 429 is a retryable error with Retry-After's delay; ok:false keeps Slack's error", async () => {
  await using fake = await FakeSlack.start();
  const slack = fakeProvider(fake, { mode: "webhook" });
  fake.inject("chat.postMessage", { status: 429, headers: { "retry-after": "30" } });
  const limited = await slack.send({ to: "C1", text: "x" }).catch((e) => e);
  assert.ok(limited instanceof ProviderError);
  assert.equal(limited.retryable, true);
  assert.equal(limited.retryAfterMs, 30_000);
  assert.equal(limited.platformError, "ratelimited");
  assert.match(limited.message, /^Slack chat\.postMessage failed: HTTP 429 \(ratelimited\)/);

  fake.inject("chat.postMessage", { body: { ok: false, error: "not_in_channel" } });
  const refused = await slack.send({ to: "C1", text: "x" }).catch((e) => e);
  assert.ok(refused instanceof ProviderError);
  assert.equal(refused.retryable, false);
  assert.equal(refused.platformError, "not_in_channel");
  assert.match(refused.message, /not_in_channel: invite the bot/);

  fake.inject("chat.postMessage", {
    body: { ok: false, error: "missing_scope", needed: "chat:write" },
  });
  const scope = await slack.send({ to: "C1", text: "x" }).catch((e) => e);
  assert.match(scope.message, /needs scope chat:write/);

  fake.inject("chat.postMessage", { status: 503 });
  assert.equal((await slack.send({ to: "C1", text: "x" }).catch((e) => e)).retryable, true);
  fake.inject("chat.postMessage", { body: { ok: false, error: "internal_error" } });
  assert.equal((await slack.send({ to: "C1", text: "x" }).catch((e) => e)).retryable, true);
});

Deno.test("slack: check calls auth.test (and apps.connections.open in socket mode) and says what is wrong", async () => {
  await using fake = await FakeSlack.start();
  const good = await fakeProvider(fake).check();
  assert.equal(good.ok, true);
  assert.match(good.detail, /courier \(UBOT\) in workspace Fake Team \(TTEAM\)/);
  assert.match(good.detail, /app token works/);

  const badBot = await fakeProvider(fake, { bot_token: "xoxb-wrong" }).check();
  assert.equal(badBot.ok, false);
  assert.match(badBot.detail, /^bot_token: Slack auth\.test failed: invalid_auth/);
  assert.ok(!badBot.detail.includes("xoxb-wrong"));

  const badApp = await fakeProvider(fake, { app_token: "xapp-wrong" }).check();
  assert.equal(badApp.ok, false);
  assert.match(badApp.detail, /app_token: Slack apps\.connections\.open failed: invalid_auth/);
});
