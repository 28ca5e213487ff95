import assert from "node:assert/strict";
import {
  type ChatMessage,
  createSlackProvider,
  type Provider,
  type ProviderContext,
} from "../lib/providers/mod.ts";
import { recordingLog } from "./helpers/log.ts";
import { eventually } from "./helpers/mail.ts";
import { FAKE_SLACK, FakeSlack, slackEvent } from "./fakes/slack_server.ts";

// --- Socket Mode ---------------------------------------------------------------------------------

interface Running {
  slack: Provider;
  stored: ChatMessage[][];
  stop(): Promise<void>;
}

/** Runs Socket Mode with a sink that stores, or does what `sink` says. */
function runSocket(
  fake: FakeSlack,
  sink?: (messages: ChatMessage[]) => Promise<void>,
  context: ProviderContext = {},
): Running {
  const slack = createSlackProvider("team", fake.config({ mode: "socket" }), {
    reconnectDelay: () => 20,
    ...context,
  });
  const stored: ChatMessage[][] = [];
  const controller = new AbortController();
  const done = slack.connect!(async (messages) => {
    if (sink) await sink(messages);
    stored.push(messages);
  }, controller.signal);
  return {
    slack,
    stored,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

Deno.test("slack socket: hello, an event reaches the sink, and the ack follows the sink", async () => {
  await using fake = await FakeSlack.start();
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let called = 0;
  const run = runSocket(fake, async () => {
    called++;
    await held;
  });
  try {
    await fake.connected();
    await eventually(() => run.slack.status().connected === true, { what: "connected" });
    const envelope = fake.sendEnvelope(slackEvent({ ts: "1700000400.000100", text: "hi" }));
    await eventually(() => called === 1, { what: "the sink call" });
    // A full round trip through the fake while the sink holds: still no ack.
    await fetch(`${fake.apiBase}/nothing`).then((r) => r.body?.cancel());
    assert.deepEqual(fake.acks, []);
    release();
    await fake.acked(envelope);
    assert.equal(run.stored[0][0].message_id, "C1:1700000400.000100");
    assert.equal(run.stored[0][0].text, "hi");
    // auth.test taught it the bot's ids.
    assert.ok(fake.calls.some((c) => c.method === "auth.test"));
  } finally {
    await run.stop();
  }
  assert.equal(run.slack.status().connected, false);
});

Deno.test("slack socket: an envelope whose sink rejected is not acked; skipped events are acked at once", async () => {
  await using fake = await FakeSlack.start();
  let fail = true;
  const run = runSocket(fake, () => {
    if (fail) {
      fail = false;
      return Promise.reject(new Error("disk full"));
    }
    return Promise.resolve();
  });
  try {
    await fake.connected();
    const rejected = fake.sendEnvelope(slackEvent({ ts: "1700000500.000100" }));
    const own = fake.sendEnvelope(slackEvent({ user: FAKE_SLACK.botUserId }));
    const command = fake.sendEnvelope({ command: "/deploy", text: "now" }, "slash_commands");
    const taken = fake.sendEnvelope(slackEvent({ ts: "1700000501.000100" }));
    await fake.acked(taken);
    // Envelopes are handled in order, so anything acked is acked by now.
    assert.deepEqual(fake.acks, [own, command, taken]);
    assert.ok(!fake.acks.includes(rejected));
    assert.equal(run.stored.length, 1);
    assert.match(run.slack.status().last_error ?? "", /disk full/);
  } finally {
    await run.stop();
  }
});

Deno.test("slack socket: a disconnect from Slack is followed by a new connection at once", async () => {
  await using fake = await FakeSlack.start();
  const run = runSocket(fake);
  try {
    await fake.connected(1);
    fake.disconnect("refresh_requested");
    await fake.connected(2);
    const envelope = fake.sendEnvelope(slackEvent({ ts: "1700000600.000100" }));
    await fake.acked(envelope);
    assert.equal(run.stored.length, 1);
    const opens = fake.calls.filter((c) => c.method === "apps.connections.open");
    assert.equal(opens.length, 2);
    assert.ok(opens.every((c) => c.token === FAKE_SLACK.appToken));
  } finally {
    await run.stop();
  }
});

Deno.test("slack socket: a dropped socket and a refused apps.connections.open are retried with backoff", async () => {
  await using fake = await FakeSlack.start();
  const log = recordingLog();
  const run = runSocket(fake, undefined, { log });
  try {
    await fake.connected(1);
    fake.inject("apps.connections.open", { status: 429, headers: { "retry-after": "0" } });
    fake.inject("apps.connections.open", { body: { ok: false, error: "internal_error" } });
    fake.drop();
    await fake.connected(2);
    const envelope = fake.sendEnvelope(slackEvent({ ts: "1700000700.000100" }));
    await fake.acked(envelope);
    assert.equal(run.stored.length, 1);
    assert.equal(fake.calls.filter((c) => c.method === "apps.connections.open").length, 4);
    assert.match(run.slack.status().last_error ?? "", /internal_error/);
    assert.ok(log.lines.some((l) => /WebSocket closed/.test(l)), log.lines.join("\n"));
    assert.ok(log.lines.every((l) => !l.includes("ticket")), "the socket URL is never logged");
  } finally {
    await run.stop();
  }
});
