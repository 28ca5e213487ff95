import assert from "node:assert/strict";
import {
  type ChatMessage,
  createDingTalkProvider,
  dingTalkSign,
  openStreamConnection,
  parseDingTalkConfig,
  type Provider,
  type ProviderContext,
  ProviderError,
} from "../lib/providers/mod.ts";
import { ConfigError } from "../lib/config/mod.ts";
import { dingSign, FakeDingTalk, type FakeDingTalkOptions } from "./fakes/dingtalk_server.ts";
import { startWebhookHost, type WebhookHost } from "./helpers/webhook_host.ts";

const SECRET = "fake-client-secret";

interface Rig {
  fake: FakeDingTalk;
  provider: Provider;
  clock: { now: number };
}

async function withDingTalk(
  config: Record<string, unknown>,
  fn: (rig: Rig) => Promise<void>,
  fakeOptions: FakeDingTalkOptions = {},
  context: ProviderContext = {},
): Promise<void> {
  const clock = { now: Date.now() };
  const fake = await FakeDingTalk.start(fakeOptions);
  const provider = createDingTalkProvider("ding", {
    type: "dingtalk",
    client_id: "dingfake",
    client_secret: SECRET,
    api_base: fake.apiBase,
    oapi_base: fake.apiBase,
    ...config,
  }, { now: () => clock.now, reconnectDelay: () => 20, ...context });
  try {
    await fn({ fake, provider, clock });
  } finally {
    await fake.close();
  }
}

async function withHost(
  provider: Provider,
  fn: (host: WebhookHost) => Promise<void>,
): Promise<void> {
  const host = await startWebhookHost(provider);
  try {
    await fn(host);
  } finally {
    await host.close();
  }
}

Deno.test("dingtalk: sign is base64 HMAC-SHA256 of timestamp\\nsecret keyed by the secret", async () => {
  assert.equal(
    await dingTalkSign("1577262236757", "this is secret"),
    dingSign("1577262236757", "this is secret"),
  );
});

Deno.test("dingtalk: a signed callback becomes a chat message with its session webhook", async () => {
  await withDingTalk({}, async ({ fake, provider }) => {
    await withHost(provider, async (host) => {
      const robot = fake.robotMessage({ msgId: "msg-1" });
      const response = await fake.deliver(host.url, robot);
      assert.equal(response.status, 200);
      await response.body?.cancel();
      assert.equal(host.stored.length, 1);
      const m = host.stored[0];
      assert.equal(m.message_id, "msg-1");
      assert.deepEqual(m.session, { id: "cidGroup42==", type: "group", name: "Ops" });
      assert.deepEqual(m.sender, { id: "staff-7", name: "Alice" });
      assert.equal(m.text, "deploy is red again");
      assert.equal(m.extra.mentioned, true);
      assert.deepEqual(m.extra.reply, {
        conversation_id: "cidGroup42==",
        conversation_type: "2",
        session_webhook: robot.sessionWebhook,
        expires_at: new Date(robot.sessionWebhookExpiredTime as number).toISOString(),
        sender_staff_id: "staff-7",
        robot_code: "dingfake",
      });
      assert.deepEqual(m.extra.raw, robot);
    });
  });
});

Deno.test("dingtalk: bad, stale or missing signs get 401 and store nothing", async () => {
  await withDingTalk({}, async ({ fake, provider, clock }) => {
    await withHost(provider, async (host) => {
      const cases: [string, Promise<Response>][] = [
        ["wrong secret", fake.deliver(host.url, fake.robotMessage(), { secret: "guess" })],
        [
          "stale",
          fake.deliver(host.url, fake.robotMessage(), { timestamp: clock.now - 2 * 3600_000 }),
        ],
        [
          "future",
          fake.deliver(host.url, fake.robotMessage(), { timestamp: clock.now + 2 * 3600_000 }),
        ],
        ["unsigned", fake.deliver(host.url, fake.robotMessage(), { unsigned: true })],
      ];
      for (const [what, pending] of cases) {
        const response = await pending;
        assert.equal(response.status, 401, what);
        await response.body?.cancel();
      }
      assert.equal(host.stored.length, 0);
      // Within the hour is fine.
      const ok = await fake.deliver(host.url, fake.robotMessage(), {
        timestamp: clock.now - 50 * 60_000,
      });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      assert.equal(host.stored.length, 1);
    });
  });
});

Deno.test("dingtalk: direct chats, rich text, and require_mention/allow_from", async () => {
  await withDingTalk(
    { require_mention: true, allow_from: ["staff-7"] },
    async ({ fake, provider }) => {
      await withHost(provider, async (host) => {
        const messages = [
          fake.robotMessage({
            msgId: "rich",
            msgtype: "richText",
            text: undefined,
            content: {
              richText: [{ text: "line one" }, { type: "picture", downloadCode: "d1" }, {
                text: "line two",
              }],
            },
          }),
          fake.robotMessage({
            msgId: "dm",
            conversationType: "1",
            conversationId: "cidDirect",
            isInAtList: false,
          }),
          fake.robotMessage({ msgId: "quiet", isInAtList: false }),
          fake.robotMessage({ msgId: "stranger", senderStaffId: "staff-99" }),
        ];
        for (const message of messages) {
          const response = await fake.deliver(host.url, message);
          assert.equal(response.status, 200);
          await response.body?.cancel();
        }
        assert.deepEqual(host.stored.map((m) => m.message_id), ["rich", "dm"]);
        assert.equal(host.stored[0].text, "line one\n[picture]\nline two");
        assert.deepEqual(host.stored[1].session, { id: "cidDirect", type: "direct" });
        assert.equal(provider.status().dropped, 2);
      });
    },
  );
});

/** A sink the test resolves or rejects by hand. */
function controlledSink() {
  const calls: { messages: ChatMessage[]; resolve: () => void; reject: (e: Error) => void }[] = [];
  let wake = () => {};
  return {
    calls,
    sink: (messages: ChatMessage[]) => {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      calls.push({ messages, resolve, reject });
      wake();
      return promise;
    },
    next(index: number): Promise<void> {
      if (calls.length > index) return Promise.resolve();
      return new Promise((resolve) => {
        wake = () => calls.length > index && resolve();
      });
    },
  };
}

async function withStream(
  fn: (rig: Rig & { sink: ReturnType<typeof controlledSink> }) => Promise<void>,
): Promise<void> {
  await withDingTalk({ mode: "stream" }, async (rig) => {
    const sink = controlledSink();
    const stop = new AbortController();
    assert.ok(rig.provider.connect);
    const running = rig.provider.connect(sink.sink, stop.signal);
    try {
      await rig.fake.http.until(() => rig.fake.connected, "a stream connection");
      await fn({ ...rig, sink });
    } finally {
      stop.abort();
      await running;
    }
    assert.equal(rig.provider.status().connected, false);
  });
}

Deno.test("dingtalk stream: opens with the bot topic, answers pings with their data", async () => {
  await withStream(async ({ fake, provider }) => {
    assert.deepEqual(fake.lastOpen?.subscriptions, [{
      type: "CALLBACK",
      topic: "/v1.0/im/bot/messages/get",
    }]);
    assert.match(String(fake.lastOpen?.ua), /^courier\//);
    const answer = await fake.ping('{"opaque":"p-1"}');
    assert.equal(provider.status().connected, true);
    assert.equal(answer.code, 200);
    assert.equal(answer.data, '{"opaque":"p-1"}');
    assert.equal(answer.headers?.topic, "ping");
  });
});

Deno.test("dingtalk stream: a callback is acked only after the sink resolved", async () => {
  await withStream(async ({ fake, sink }) => {
    const frameId = fake.push(fake.robotMessage({ msgId: "msg-s1" }));
    await sink.next(0);
    assert.equal(sink.calls[0].messages[0].message_id, "msg-s1");
    // The sink has not resolved: a ping answered after the callback shows no ack was sent.
    await fake.ping("probe");
    assert.equal(fake.replyTo(frameId), undefined);
    sink.calls[0].resolve();
    await fake.http.until(() => fake.replyTo(frameId) !== undefined, "the ack");
    const ack = fake.replyTo(frameId)!;
    assert.equal(ack.code, 200);
    assert.deepEqual(ack.headers, { contentType: "application/json", messageId: frameId });
    assert.equal(ack.message, "OK");
    assert.equal(typeof ack.data, "string");
  });
});

Deno.test("dingtalk stream: a callback the sink rejects is not acked, and its redelivery is", async () => {
  await withStream(async ({ fake, sink, provider }) => {
    const message = fake.robotMessage({ msgId: "msg-s2" });
    const first = fake.push(message);
    await sink.next(0);
    sink.calls[0].reject(new Error("disk full"));
    await fake.ping("after-reject");
    assert.equal(fake.replyTo(first), undefined);
    assert.match(provider.status().last_error ?? "", /msg-s2 not stored: disk full/);
    // DingTalk delivers it again; this time it is stored and acked.
    const again = fake.push(message);
    await sink.next(1);
    assert.equal(sink.calls[1].messages[0].message_id, "msg-s2");
    sink.calls[1].resolve();
    await fake.http.until(() => fake.replyTo(again) !== undefined, "the ack of the redelivery");
    assert.equal(fake.replyTo(first), undefined);
  });
});

Deno.test("dingtalk stream: survives a requested disconnect and a dropped connection", async () => {
  await withStream(async ({ fake, sink }) => {
    fake.requestDisconnect();
    await fake.http.until(() => fake.connections === 2 && fake.connected, "a second connection");
    const a = fake.push(fake.robotMessage({ msgId: "after-disconnect" }));
    await sink.next(0);
    sink.calls[0].resolve();
    await fake.http.until(() => fake.replyTo(a) !== undefined, "an ack on the new connection");
    fake.dropConnection();
    await fake.http.until(() => fake.connections === 3 && fake.connected, "a third connection");
    const b = fake.push(fake.robotMessage({ msgId: "after-drop" }));
    await sink.next(1);
    sink.calls[1].resolve();
    await fake.http.until(() => fake.replyTo(b) !== undefined, "an ack after the drop");
    assert.equal(fake.http.requestsTo("/v1.0/gateway/connections/open").length, 3);
  });
});

Deno.test("dingtalk stream: filtered messages are acked without reaching the sink", async () => {
  await withDingTalk({ mode: "stream", allow_from: ["staff-1"] }, async ({ fake, provider }) => {
    const sink = controlledSink();
    const stop = new AbortController();
    const running = provider.connect!(sink.sink, stop.signal);
    try {
      await fake.http.until(() => fake.connected, "a stream connection");
      const id = fake.push(fake.robotMessage({ msgId: "from-stranger" }));
      await fake.http.until(() => fake.replyTo(id) !== undefined, "the ack of a dropped message");
      assert.equal(sink.calls.length, 0);
      assert.equal(provider.status().dropped, 1);
    } finally {
      stop.abort();
      await running;
    }
  });
});

function replyTo(m: ChatMessage) {
  return { message_id: m.message_id, reply: m.extra.reply, session_id: m.session.id };
}

async function inbound(fake: FakeDingTalk, provider: Provider, fields: Record<string, unknown>) {
  let message: ChatMessage | undefined;
  await withHost(provider, async (host) => {
    const response = await fake.deliver(host.url, fake.robotMessage(fields));
    await response.body?.cancel();
    message = host.stored[0];
  });
  return message!;
}

Deno.test("dingtalk: a reply goes through the session webhook while it is valid", async () => {
  await withDingTalk({}, async ({ fake, provider }) => {
    const m = await inbound(fake, provider, { msgId: "q1" });
    await provider.send({ to: m.session.id, text: "on it", replyTo: replyTo(m) });
    assert.equal(fake.sent.length, 1);
    assert.equal(fake.sent[0].kind, "session");
    assert.equal(fake.sent[0].text, "on it");
    assert.equal(
      fake.sent[0].target,
      new URL(m.extra.reply.session_webhook as string).searchParams.get("session"),
    );
    assert.equal(fake.tokensIssued, 0);
  });
});

Deno.test("dingtalk: after the session webhook expires, the OpenAPI reaches the same conversation", async () => {
  await withDingTalk({}, async ({ fake, provider, clock }) => {
    const group = await inbound(fake, provider, { msgId: "g1" });
    const direct = await inbound(fake, provider, {
      msgId: "d1",
      conversationType: "1",
      conversationId: "cidDirect7",
    });
    clock.now += 2 * 3600_000; // both session webhooks are past their expiry
    await Promise.all([
      provider.send({ to: group.session.id, text: "to the group", replyTo: replyTo(group) }),
      provider.send({ to: direct.session.id, text: "to alice", replyTo: replyTo(direct) }),
    ]);
    assert.deepEqual(
      fake.sent.map((s) => [s.kind, s.target, s.text, s.robotCode]).sort(),
      [
        ["group", "cidGroup42==", "to the group", "dingfake"],
        ["user", "staff-7", "to alice", "dingfake"],
      ],
    );
    assert.equal(fake.tokensIssued, 1); // one token, shared
    await provider.send({ to: "cidOther==", text: "new topic" });
    await provider.send({ to: "staff-8", text: "psst" });
    assert.deepEqual(fake.sent.slice(2).map((s) => [s.kind, s.target]), [["group", "cidOther=="], [
      "user",
      "staff-8",
    ]]);
    assert.equal(fake.tokensIssued, 1);
    // Refreshed before it expires, and replaced once when DingTalk rejects it.
    clock.now += 7200_000;
    await provider.send({ to: "cidOther==", text: "x" });
    assert.equal(fake.tokensIssued, 2);
    fake.revokeTokens();
    await provider.send({ to: "cidOther==", text: "y" });
    assert.equal(fake.tokensIssued, 3);
    assert.equal(fake.sent.at(-1)?.text, "y");
  });
});

Deno.test("dingtalk: a session webhook pointing elsewhere is not called", async () => {
  await withDingTalk({}, async ({ fake, provider }) => {
    const m = await inbound(fake, provider, { sessionWebhook: "https://attacker.example/hook" });
    const error = await provider.send({ to: m.session.id, text: "x", replyTo: replyTo(m) }).catch((
      e,
    ) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.retryable, false);
    assert.equal(fake.sent.length, 0);
  });
});

Deno.test("dingtalk: a custom robot webhook gets timestamp and URL-encoded sign", async () => {
  await withDingTalk({}, async ({ fake }) => {
    const robot = createDingTalkProvider("ding", {
      type: "dingtalk",
      webhook_url: fake.webhookUrl,
      webhook_secret: "SECrobot+/=",
    });
    await robot.send({ to: "ignored", text: "build is green" });
    assert.deepEqual(fake.sent, [{ kind: "robot", text: "build is green", target: "robot-1" }]);
    const wrong = createDingTalkProvider("ding", {
      type: "dingtalk",
      webhook_url: fake.webhookUrl,
      webhook_secret: "SECwrong",
    });
    const error = await wrong.send({ to: "x", text: "y" }).catch((e) => e);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.platformError, "310000 sign not match");
    assert.equal(error.retryable, false);
  }, { webhookSecret: "SECrobot+/=" });
});

Deno.test("dingtalk: 429 and rate-limit errcodes are retryable with their delay; errors kept", async () => {
  await withDingTalk({}, async ({ fake, provider }) => {
    fake.http.inject("/v1.0/robot/groupMessages/send", {
      status: 429,
      headers: { "retry-after": "5" },
      body: { code: "Throttling.Api", message: "too many requests" },
    });
    const limited = await provider.send({ to: "cidG==", text: "x" }).catch((e) => e);
    assert.ok(limited instanceof ProviderError);
    assert.equal(limited.retryable, true);
    assert.equal(limited.retryAfterMs, 5000);
    assert.equal(limited.platformError, "Throttling.Api too many requests");

    const m = await inbound(fake, provider, { msgId: "s1" });
    fake.http.inject("/robot/sendBySession", {
      status: 200,
      body: { errcode: 130101, errmsg: "send too fast, exceed 20 times per minute" },
    });
    const tooFast = await provider.send({ to: m.session.id, text: "x", replyTo: replyTo(m) })
      .catch((e) => e);
    assert.equal(tooFast.retryable, true);
    assert.equal(tooFast.retryAfterMs, 600_000);
    assert.match(tooFast.message, /send too fast/);

    fake.http.inject("/v1.0/robot/groupMessages/send", {
      status: 400,
      body: { code: "robot.notexist", message: "机器人不存在" },
    });
    const error = await provider.send({ to: "cidG==", text: "x" }).catch((e) => e);
    assert.equal(error.retryable, false);
    assert.equal(error.platformError, "robot.notexist 机器人不存在");
  });
});

Deno.test("dingtalk: check fetches an access token and says what is wrong", async () => {
  await withDingTalk({}, async ({ provider }) => {
    const result = await provider.check();
    assert.equal(result.ok, true);
    assert.match(result.detail, /dingfake/);
  });
  await withDingTalk({ client_secret: "wrong" }, async ({ provider }) => {
    const result = await provider.check();
    assert.equal(result.ok, false);
    assert.match(result.detail, /invalidClientIdOrSecret.*check client_id and client_secret/);
  });
});

Deno.test("dingtalk: stream with wrong credentials keeps retrying and reports why", async () => {
  await withDingTalk({ mode: "stream", client_secret: "wrong" }, async ({ fake, provider }) => {
    const stop = new AbortController();
    const running = provider.connect!(() => Promise.resolve(), stop.signal);
    await fake.http.until(
      () =>
        fake.http.requestsTo("/v1.0/gateway/connections/open").length >= 1 &&
        provider.status().last_error !== undefined,
      "a failed connection attempt",
    );
    stop.abort();
    await running;
    assert.equal(provider.status().connected, false);
    assert.match(provider.status().last_error ?? "", /invalidClientIdOrSecret/);
  });
});

Deno.test("dingtalk stream: waits the context's reconnectDelay, counting failures since the last good connection", async () => {
  const attempts: number[] = [];
  const reconnectDelay = (attempt: number) => {
    attempts.push(attempt);
    return 20;
  };
  await withDingTalk(
    { mode: "stream" },
    async ({ fake, provider }) => {
      const stop = new AbortController();
      const running = provider.connect!(() => Promise.resolve(), stop.signal);
      try {
        await fake.http.until(() => fake.connected, "a stream connection");
        await fake.ping("hello"); // a frame: the connection works
        fake.requestDisconnect();
        await fake.http.until(() => fake.connections === 2 && fake.connected, "connection 2");
        assert.deepEqual(attempts, [], "a disconnect the gateway asked for: at once");
        await fake.ping("hello again");
        fake.dropConnection();
        await fake.http.until(() => fake.connections === 3 && fake.connected, "connection 3");
        assert.deepEqual(attempts, [1], "a dropped connection that had worked: attempt 1");
      } finally {
        stop.abort();
        await running;
      }
    },
    {},
    { reconnectDelay },
  );
  attempts.length = 0;
  await withDingTalk(
    { mode: "stream", client_secret: "wrong" },
    async ({ fake, provider }) => {
      const stop = new AbortController();
      const running = provider.connect!(() => Promise.resolve(), stop.signal);
      await fake.http.until(
        () => fake.http.requestsTo("/v1.0/gateway/connections/open").length >= 3,
        "three refused connection attempts",
      );
      stop.abort();
      await running;
      assert.deepEqual(attempts.slice(0, 2), [1, 2], "refusals back off further each time");
    },
    {},
    { reconnectDelay },
  );
});

Deno.test("dingtalk: config reads env: secrets and names the field at fault", () => {
  const env = (n: string) => n === "DING_SECRET" ? "s3cret" : undefined;
  const config = parseDingTalkConfig("ding", {
    type: "dingtalk",
    mode: "stream",
    client_id: "dingabc",
    client_secret: "env:DING_SECRET",
  }, { env });
  assert.equal(config.clientSecret, "s3cret");
  assert.equal(config.robotCode, "dingabc");
  assert.equal(config.apiBase, "https://api.dingtalk.com");
  assert.equal(config.oapiBase, "https://oapi.dingtalk.com");
  assert.throws(
    () => parseDingTalkConfig("ding", { type: "dingtalk", mode: "stream", client_secret: "x" }),
    (e: unknown) => e instanceof ConfigError && /Stream mode needs client_id/.test(e.message),
  );
  assert.throws(
    () => parseDingTalkConfig("ding", { type: "dingtalk", client_id: "x" }),
    (e: unknown) =>
      e instanceof ConfigError && e.where === "config.json providers.ding.client_secret",
  );
  assert.throws(
    () => parseDingTalkConfig("ding", { type: "dingtalk", client_secret: "x", mode: "polling" }),
    ConfigError,
  );
  // A send-only entry needs no app.
  assert.equal(
    parseDingTalkConfig("ding", {
      type: "dingtalk",
      webhook_url: "https://oapi.dingtalk.com/robot/send?access_token=t",
    })
      .webhook?.url,
    "https://oapi.dingtalk.com/robot/send?access_token=t",
  );
  // Webhook mode has no long connection.
  assert.equal(
    createDingTalkProvider("ding", { type: "dingtalk", client_secret: "x" }).connect,
    undefined,
  );
});

Deno.test("dingtalk stream: ws_base replaces the endpoint's origin; the ticket is URL-encoded", async () => {
  const seen: { url: string; body: unknown }[] = [];
  const fakeFetch: typeof fetch = (input, init) => {
    seen.push({ url: String(input), body: JSON.parse(String(init?.body)) });
    return Promise.resolve(Response.json({
      endpoint: "wss://wss-open-connection.dingtalk.com:443/connect",
      ticket: "a+b/c=",
    }));
  };
  const url = await openStreamConnection({
    name: "ding",
    apiBase: "https://proxy.example/dingtalk",
    wsBase: "ws://127.0.0.1:18080",
    clientId: "dingabc",
    clientSecret: "s",
    ua: "courier/test",
    fetch: fakeFetch,
  });
  assert.equal(url, "ws://127.0.0.1:18080/connect?ticket=a%2Bb%2Fc%3D");
  assert.equal(seen[0].url, "https://proxy.example/dingtalk/v1.0/gateway/connections/open");
  assert.deepEqual(seen[0].body, {
    clientId: "dingabc",
    clientSecret: "s",
    subscriptions: [{ type: "CALLBACK", topic: "/v1.0/im/bot/messages/get" }],
    ua: "courier/test",
  });
});
