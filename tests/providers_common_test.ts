import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/mod.ts";
import {
  admitMessage,
  baseUrl,
  callPlatform,
  type ChatMessage,
  describeFetchError,
  fromBase64,
  hmacSha256,
  jsonObject,
  optionalSecretField,
  parseCommonConfig,
  ProviderError,
  ProviderState,
  reconnectDelayMs,
  redactSecrets,
  requestPlatform,
  retryAfterMs,
  runReconnecting,
  secretField,
  sha256,
  sleepUnlessAborted,
  splitText,
  timingSafeEqual,
  toBase64,
  toHex,
  unlessAborted,
} from "../lib/providers/mod.ts";
import { recordingLog } from "./helpers/log.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const OPTIONS = { modes: ["webhook", "socket"], defaultApiBase: "https://slack.com/api" };

function message(overrides: Partial<ChatMessage> = {}): ChatMessage {
  return {
    session: { id: "C1", type: "group" },
    sender: { id: "U1", name: "Ann" },
    text: "private words",
    message_id: "C1:1",
    extra: { raw: {}, reply: {}, mentioned: false },
    ...overrides,
  };
}

// --- Config ----------------------------------------------------------------------------------------

Deno.test("common config: mode, api_base, allow_from and require_mention", () => {
  const plain = parseCommonConfig("team", { type: "slack" }, OPTIONS);
  assert.deepEqual(plain, {
    name: "team",
    type: "slack",
    mode: "webhook",
    apiBase: "https://slack.com/api",
    allowFrom: undefined,
    requireMention: false,
  });
  const full = parseCommonConfig("team", {
    type: "slack",
    mode: "socket",
    api_base: "http://127.0.0.1:9000/api//",
    allow_from: ["U1", 42],
    require_mention: true,
  }, OPTIONS);
  assert.equal(full.mode, "socket");
  assert.equal(full.apiBase, "http://127.0.0.1:9000/api");
  assert.deepEqual([...full.allowFrom!], ["U1", "42"]);
  assert.equal(full.requireMention, true);

  const bad: [Record<string, unknown>, RegExp][] = [
    [{ mode: "rtm" }, /providers\.team\.mode: must be one of "webhook", "socket"/],
    [{ api_base: "slack.com" }, /providers\.team\.api_base: must be a http:\/\/ or https:\/\//],
    [{ allow_from: "U1" }, /allow_from: must be a list of sender ids/],
    [{ allow_from: [{}] }, /allow_from/],
    [{ require_mention: "yes" }, /require_mention: must be true or false/],
  ];
  for (const [raw, pattern] of bad) {
    assert.throws(
      () => parseCommonConfig("team", { type: "slack", ...raw }, OPTIONS),
      (e) => e instanceof ConfigError && pattern.test(e.message),
      JSON.stringify(raw),
    );
  }
  assert.equal(baseUrl("wss://h.example/ws/", "x", ["wss:"]), "wss://h.example/ws");
});

Deno.test("common config: secrets as they are or from env:NAME, never in an error", () => {
  const env = (name: string) => (name === "TOKEN" ? "xoxb-secret" : undefined);
  const raw = { a: "plain-secret", b: "env:TOKEN", c: "env:MISSING", d: "" };
  assert.equal(secretField("team", raw, "a", { env }), "plain-secret");
  assert.equal(secretField("team", raw, "b", { env }), "xoxb-secret");
  assert.throws(
    () => secretField("team", raw, "c", { env }),
    /providers\.team\.c: the environment variable MISSING is not set/,
  );
  assert.throws(() => secretField("team", raw, "d", { env }), /must be a non-empty string/);
  assert.equal(optionalSecretField("team", raw, "absent", { env }), undefined);
  assert.equal(optionalSecretField("team", raw, "b", { env }), "xoxb-secret");
});

Deno.test("common: admitMessage applies allow_from everywhere and require_mention in groups", () => {
  const config = parseCommonConfig("team", {
    type: "slack",
    allow_from: ["U1"],
    require_mention: true,
  }, OPTIONS);
  assert.deepEqual(admitMessage(config, message({ sender: { id: "U2", name: "Eve" } })), {
    ok: false,
    reason: "sender U2 is not in allow_from",
  });
  assert.deepEqual(admitMessage(config, message()), {
    ok: false,
    reason: "no mention of the bot in group C1",
  });
  const mentioned = message({ extra: { raw: {}, reply: {}, mentioned: true } });
  assert.deepEqual(admitMessage(config, mentioned), { ok: true });
  const direct = message({ session: { id: "D1", type: "direct" } });
  assert.deepEqual(admitMessage(config, direct), { ok: true });
  const thread = message({ session: { id: "C1", type: "thread", thread_key: "1" } });
  assert.equal(admitMessage(config, thread).ok, false, "a thread is a group conversation");
});

// --- Crypto and encodings ---------------------------------------------------------------------------

Deno.test("common: HMAC-SHA256 and SHA-256 match published vectors", async () => {
  // RFC 4231, test case 2.
  const mac = await hmacSha256("Jefe", "what do ya want for nothing?");
  assert.equal(toHex(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // FIPS 180-2, "abc".
  assert.equal(
    toHex(await sha256("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  const bytes = new Uint8Array([0, 1, 254, 255, 128]);
  assert.equal(toHex(await hmacSha256(bytes, bytes)), toHex(await hmacSha256(bytes, bytes)));
  assert.equal(toBase64(new TextEncoder().encode("courier")), "Y291cmllcg==");
  assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  assert.throws(() => fromBase64("not base64!"));
});

Deno.test("common: timingSafeEqual compares whole strings, lengths included", () => {
  assert.equal(timingSafeEqual("v0=abc", "v0=abc"), true);
  assert.equal(timingSafeEqual("v0=abc", "v0=abd"), false);
  assert.equal(timingSafeEqual("v0=abc", "v0=ab"), false);
  assert.equal(timingSafeEqual("", "x"), false);
  assert.equal(timingSafeEqual("", ""), true);
  assert.equal(timingSafeEqual("é", "e\u0301"), false);
});

Deno.test("common: jsonObject, redactSecrets, describeFetchError", () => {
  assert.deepEqual(jsonObject({ a: 1 }), { a: 1 });
  assert.equal(jsonObject([1]), undefined);
  assert.equal(jsonObject(null), undefined);
  assert.equal(jsonObject("x"), undefined);
  assert.equal(redactSecrets("a TOKEN b TOKEN", ["TOKEN", ""]), "a *** b ***");
  const fetchError = new TypeError("fetch failed", {
    cause: new Error(
      "error sending request for url (http://h/bot1:SECRET/getMe): client error (Connect): " +
        "tcp connect error: Connection refused (os error 111)",
    ),
  });
  assert.equal(
    describeFetchError(fetchError, ["1:SECRET"]),
    "client error (Connect): tcp connect error: Connection refused (os error 111)",
  );
  assert.equal(describeFetchError(new Error("see https://h/bot1:SECRET/x")), "see <url>");
});

Deno.test("common: retryAfterMs reads seconds and HTTP dates", () => {
  assert.equal(retryAfterMs("30"), 30_000);
  assert.equal(retryAfterMs("1.5"), 1500);
  assert.equal(retryAfterMs(null), undefined);
  assert.equal(retryAfterMs(" "), undefined);
  assert.equal(retryAfterMs("soon"), undefined);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfterMs("Thu, 01 Jan 2026 00:00:10 GMT", now), 10_000);
  assert.equal(retryAfterMs("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
});

// --- Platform calls --------------------------------------------------------------------------------

/** A `fetch` that answers from a table and records the URLs. */
function fakeFetch(answer: () => Response | Promise<Response>): typeof fetch & { urls: string[] } {
  const urls: string[] = [];
  const f = (input: string | URL | Request, _init?: RequestInit) => {
    urls.push(String(input));
    return Promise.resolve(answer());
  };
  return Object.assign(f as typeof fetch, { urls });
}

const CALL = { platform: "Slack", what: "chat.postMessage" };

Deno.test("common: callPlatform returns a 2xx JSON object and maps failures to ProviderErrors", async () => {
  const ok = fakeFetch(() => Response.json({ ok: true, ts: "1" }));
  assert.deepEqual(await callPlatform("http://x/api", {}, { ...CALL, fetch: ok }), {
    ok: true,
    ts: "1",
  });

  const cases: [Response, { retryable: boolean; retryAfterMs?: number; message: RegExp }][] = [
    [
      new Response("slow down", { status: 429, headers: { "retry-after": "12" } }),
      {
        retryable: true,
        retryAfterMs: 12_000,
        message: /^Slack chat\.postMessage failed: HTTP 429$/,
      },
    ],
    [new Response("", { status: 503 }), { retryable: true, message: /HTTP 503/ }],
    [new Response("nope", { status: 404 }), { retryable: false, message: /HTTP 404/ }],
    [new Response("<html>", { status: 200 }), { retryable: true, message: /not a JSON object/ }],
    [Response.json([1, 2]), { retryable: true, message: /not a JSON object/ }],
  ];
  for (const [response, expected] of cases) {
    const error = await callPlatform("http://x", {}, { ...CALL, fetch: fakeFetch(() => response) })
      .catch((e) => e);
    assert.ok(error instanceof ProviderError, String(error));
    assert.equal(error.retryable, expected.retryable, error.message);
    assert.equal(error.retryAfterMs, expected.retryAfterMs);
    assert.match(error.message, expected.message);
  }
  const kept = await callPlatform("http://x", {}, {
    ...CALL,
    fetch: fakeFetch(() => new Response('{"error":"bad"}', { status: 400 })),
  }).catch((e) => e);
  assert.equal(kept.platformError, "bad");
  assert.match(kept.message, /^Slack chat\.postMessage failed: HTTP 400 \(bad\)$/);
});

Deno.test("common: a 429 or 5xx keeps the platform's short error, never a secret or a URL", async () => {
  const limited = await callPlatform("http://x", {}, {
    ...CALL,
    fetch: fakeFetch(() =>
      Response.json({ ok: false, error: "ratelimited" }, {
        status: 429,
        headers: { "retry-after": "3" },
      })
    ),
  }).catch((e) => e);
  assert.ok(limited instanceof ProviderError);
  assert.equal(limited.message, "Slack chat.postMessage failed: HTTP 429 (ratelimited)");
  assert.equal(limited.platformError, "ratelimited");
  assert.equal(limited.retryAfterMs, 3000);
  // Each platform's field: Telegram's description, Lark's msg, DingTalk's errmsg and message.
  const said: [Record<string, unknown>, string][] = [
    [{ ok: false, error_code: 429, description: "Too Many Requests: retry after 5" }, "Too Many"],
    [{ code: 0, msg: "request trigger frequency limit" }, "frequency limit"],
    [{ errcode: 0, errmsg: "too fast" }, "too fast"],
    [{ code: 42, message: "throttled" }, "throttled"],
  ];
  for (const [body, words] of said) {
    const error = await callPlatform("http://x", {}, {
      ...CALL,
      fetch: fakeFetch(() => Response.json(body, { status: 503 })),
    }).catch((e) => e);
    assert.match(error.message, new RegExp(`HTTP 503 \\(.*${words}.*\\)`));
    assert.ok(error.platformError.includes(words), error.platformError);
  }
  const token = "123456789:AAsecret_token";
  for (
    const body of [
      { description: `Too Many Requests at https://api.telegram.org/bot${token}/sendMessage` },
      `<html>proxy: https://api.telegram.org/bot${token}/sendMessage busy</html>`,
    ]
  ) {
    const error = await callPlatform("http://x", {}, {
      ...CALL,
      redact: [token],
      fetch: fakeFetch(() =>
        typeof body === "string"
          ? new Response(body, { status: 429 })
          : Response.json(body, { status: 429 })
      ),
    }).catch((e) => e);
    for (const text of [error.message, error.platformError ?? ""]) {
      assert.ok(!text.includes("AAsecret_token"), `secret kept: ${text}`);
      assert.ok(!text.includes("/bot"), `URL kept: ${text}`);
    }
    assert.match(error.platformError ?? "", /<url>/);
  }
});

Deno.test("common: requestPlatform hands back a body of any status; a failed request never names the URL", async () => {
  const answer = fakeFetch(() =>
    Response.json({ ok: false, error_code: 409, description: "Conflict" }, { status: 409 })
  );
  const response = await requestPlatform("http://x/bot1:SECRET/getUpdates", {}, {
    platform: "Telegram",
    what: "getUpdates",
    fetch: answer,
    redact: ["1:SECRET"],
  });
  assert.equal(response.status, 409);
  assert.deepEqual(response.body, { ok: false, error_code: 409, description: "Conflict" });
  const html = await requestPlatform("http://x", {}, {
    ...CALL,
    fetch: fakeFetch(() => new Response("<html>", { status: 502 })),
  });
  assert.deepEqual([html.status, html.body], [502, null]);

  // A real refused connection: Deno's own error names the URL; ours does not.
  const port = await leaseTestPort();
  const error = await requestPlatform(`http://127.0.0.1:${port}/bot1:SECRET/getMe`, {}, {
    platform: "Telegram",
    what: "getMe",
    redact: ["1:SECRET"],
  }).catch((e) => e);
  assert.ok(error instanceof ProviderError);
  assert.equal(error.retryable, true);
  assert.match(error.message, /^Telegram getMe failed: /);
  for (const text of [error.message, String(error.cause), error.stack ?? ""]) {
    assert.ok(!text.includes("SECRET") && !text.includes("/bot"), text);
  }
});

Deno.test("common: a call that times out or is cancelled says so", async () => {
  const never = ((_: unknown, init?: RequestInit) =>
    new Promise((_resolve, reject) => {
      init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
    })) as typeof fetch;
  const timedOut = await callPlatform("http://x", {}, { ...CALL, fetch: never, timeoutMs: 1 })
    .catch((e) => e);
  assert.equal(timedOut.message, "Slack chat.postMessage failed: timed out");
  assert.equal(timedOut.retryable, true);
  const controller = new AbortController();
  const pending = callPlatform("http://x", {}, {
    ...CALL,
    fetch: never,
    signal: controller.signal,
  });
  controller.abort();
  assert.equal((await pending.catch((e) => e)).message, "Slack chat.postMessage failed: cancelled");
});

// --- Long connections ------------------------------------------------------------------------------

Deno.test("common: reconnectDelayMs doubles from 1 s to 60 s with ±20% jitter", () => {
  assert.equal(reconnectDelayMs(1, () => 0.5), 1000);
  assert.equal(reconnectDelayMs(2, () => 0.5), 2000);
  assert.equal(reconnectDelayMs(3, () => 0), 3200);
  assert.equal(reconnectDelayMs(3, () => 1), 4800);
  assert.equal(reconnectDelayMs(30, () => 0.5), 60_000);
  assert.equal(reconnectDelayMs(0, () => 0.5), 1000);
});

Deno.test("common: sleepUnlessAborted and unlessAborted stop at abort", async () => {
  const controller = new AbortController();
  const sleeping = sleepUnlessAborted(60_000, controller.signal);
  const waiting = unlessAborted(new Promise(() => {}), controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(sleeping, /stop/);
  await assert.rejects(waiting, /stop/);
  await assert.rejects(sleepUnlessAborted(1, controller.signal), /stop/);
  assert.equal(await unlessAborted(Promise.resolve(7), new AbortController().signal), 7);
  await assert.rejects(
    unlessAborted(Promise.reject(new Error("x")), new AbortController().signal),
    /x/,
  );
});

Deno.test("common: ProviderState reports connected, the last error and drops", () => {
  const config = parseCommonConfig("team", { type: "slack", require_mention: true }, OPTIONS);
  const log = recordingLog();
  const state = new ProviderState(config, {
    connection: true,
    now: () => Date.parse("2026-01-01T00:00:00Z"),
    log,
  });
  assert.deepEqual(state.snapshot(), { connected: false, dropped: 0 });
  state.setConnected(true);
  assert.equal(state.connected, true);
  state.recordError(new Error("socket closed"));
  const mentioned = message({ extra: { raw: {}, reply: {}, mentioned: true } });
  const direct = message({ session: { id: "D1", type: "direct" }, message_id: "D1:2" });
  const kept = [message(), mentioned, direct, message({ message_id: "C1:3" })]
    .filter((m) => state.admit(m).ok);
  assert.deepEqual(kept, [mentioned, direct]);
  assert.deepEqual(state.snapshot(), {
    connected: true,
    last_error: "socket closed",
    last_error_at: "2026-01-01T00:00:00.000Z",
    dropped: 2,
  });
  assert.deepEqual(log.lines, [
    "provider team: dropped message C1:1: no mention of the bot in group C1",
    "provider team: dropped message C1:3: no mention of the bot in group C1",
  ], "each dropped message is logged by id and why, never by its text");
  state.connectionFailed("the gateway closed");
  assert.equal(state.connected, false);
  assert.equal(state.snapshot().last_error, "the gateway closed", "a text is kept as it is");
  const webhook = new ProviderState(config, { connection: false });
  webhook.setConnected(true);
  assert.equal(webhook.snapshot().connected, null, "no long connection: null");
});

Deno.test("common: runReconnecting backs off on failures, honours retryAfterMs, restarts at once after a healthy session", async () => {
  const controller = new AbortController();
  const waits: number[] = [];
  const script: (({ healthy }: { healthy(): void }) => void)[] = [
    () => {
      throw new Error("refused");
    },
    () => {
      throw new ProviderError("limited", { retryable: true, retryAfterMs: 5 });
    },
    () => {}, // returned without becoming healthy: a failure
    ({ healthy }) => healthy(), // healthy, then a planned end: next at once
    () => {
      throw new Error("dropped"); // the count started over
    },
    () => controller.abort(),
  ];
  let run = 0;
  await runReconnecting(async (session) => {
    await Promise.resolve();
    script[run++](session);
  }, {
    signal: controller.signal,
    delay: (attempt) => attempt, // 1, 2, 3… ms: the attempt number shows through
    onError: (_error, waitMs) => waits.push(waitMs),
  });
  assert.equal(run, script.length);
  assert.deepEqual(waits, [1, 5, 3, 1]);
});

Deno.test("common: splitText cuts at line breaks, then spaces, then hard, never inside a pair", () => {
  assert.deepEqual(splitText("short", 10), ["short"]);
  assert.deepEqual(splitText("aaaaaaa\nbbbbbbb", 10), ["aaaaaaa", "bbbbbbb"]);
  assert.deepEqual(splitText("aaaaaaaa bbbb", 10), ["aaaaaaaa", "bbbb"]);
  assert.deepEqual(splitText("abcdefghijklmno", 10), ["abcdefghij", "klmno"]);
  const emoji = "abcdefghi😀xyz"; // the pair starts at index 9
  const pieces = splitText(emoji, 10);
  assert.deepEqual(pieces, ["abcdefghi", "😀xyz"]);
  assert.equal(pieces.join(""), emoji);
  const long = Array.from({ length: 50 }, (_, i) => `line ${i}`).join("\n");
  assert.equal(splitText(long, 64).join("\n"), long);
  assert.ok(splitText(long, 64).every((p) => p.length <= 64));
});
