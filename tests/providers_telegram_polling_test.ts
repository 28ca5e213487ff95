import assert from "node:assert/strict";
import {
  type ChatMessage,
  createTelegramProvider,
  type Provider,
  type ProviderContext,
} from "../lib/providers/mod.ts";
import { recordingLog } from "./helpers/log.ts";
import { eventually } from "./helpers/mail.ts";
import { FAKE_TELEGRAM, FakeTelegram, telegramUpdate } from "./fakes/telegram_server.ts";

const TOKEN = FAKE_TELEGRAM.token;

// --- Polling -------------------------------------------------------------------------------------

interface Polling {
  tg: Provider;
  stop(): Promise<void>;
}

function poll(
  fake: FakeTelegram,
  sink: (messages: ChatMessage[]) => Promise<void>,
  context: ProviderContext = {},
): Polling {
  const tg = createTelegramProvider("tg", fake.config(), { reconnectDelay: () => 20, ...context });
  const controller = new AbortController();
  const done = tg.connect!(sink, controller.signal);
  return {
    tg,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

Deno.test("telegram polling: long polls with timeout 50 and moves the offset only after the sink resolved", async () => {
  await using fake = await FakeTelegram.start();
  const stored: ChatMessage[][] = [];
  let release!: () => void;
  let held = new Promise<void>((resolve) => (release = resolve));
  const run = poll(fake, async (messages) => {
    await held;
    stored.push(messages);
  });
  try {
    await fake.polled(1);
    assert.equal(fake.polls[0].timeout, 50);
    assert.deepEqual(fake.polls[0].allowed_updates, ["message"]);
    assert.equal(fake.polls[0].offset, undefined);
    const a = fake.push(telegramUpdate({ text: "one" }));
    const b = fake.push(telegramUpdate({ text: "two" }));
    // Hand-over in progress: no new poll (which would confirm the batch) until the sink resolves.
    await eventually(() => run.tg.status().connected === true, { what: "polling" });
    assert.equal(fake.polls.length, 1);
    release();
    await fake.polled(2);
    assert.equal(fake.polls[1].offset, (b.update_id as number) + 1);
    assert.deepEqual(stored[0].map((m) => m.text), ["one", "two"]);
    assert.ok((a.update_id as number) < (b.update_id as number));
    held = Promise.resolve();
  } finally {
    await run.stop();
  }
  // On stop, the offset reached is confirmed so a restart does not fetch the batch again.
  assert.equal(fake.polls.at(-1)!.offset, fake.polls[1].offset);
});

Deno.test("telegram polling: a failed store re-reads the same updates; a crash loses nothing", async () => {
  await using fake = await FakeTelegram.start();
  let failures = 1;
  const stored: string[] = [];
  const run = poll(fake, (messages) => {
    if (failures-- > 0) return Promise.reject(new Error("journal unavailable"));
    stored.push(...messages.map((m) => m.message_id));
    return Promise.resolve();
  });
  try {
    await fake.polled(1);
    const update = fake.push(telegramUpdate({ message_id: 500 }));
    await eventually(() => stored.length === 1, { what: "the stored message" });
    assert.deepEqual(stored, ["42:500"]);
    const offsets = fake.polls.map((p) => p.offset);
    // The failed batch was asked for again from the same offset (none yet), then confirmed.
    assert.deepEqual(offsets.slice(0, 2), [undefined, undefined]);
    await fake.polled(3);
    assert.equal(fake.polls[2].offset, (update.update_id as number) + 1);
    assert.match(run.tg.status().last_error ?? "", /journal unavailable/);
  } finally {
    await run.stop();
  }

  // A crash mid-store (the sink never resolves, the process goes): the next run reads it again.
  const first = fake.polls.length;
  const hang = poll(fake, () => new Promise(() => {}));
  const update = fake.push(telegramUpdate({ message_id: 501 }));
  await eventually(() => hang.tg.status().connected === true, { what: "polling" });
  const before = fake.polls.length;
  await hang.stop().catch(() => {}); // the abandoned sink keeps nothing
  const rerunFrom = fake.polls.length;
  const again: string[] = [];
  const rerun = poll(fake, (messages) => {
    again.push(...messages.map((m) => m.message_id));
    return Promise.resolve();
  });
  try {
    await eventually(() => again.includes("42:501"), { what: "the message read again" });
    assert.ok(fake.polls.length > before);
    // Nothing confirmed the update while it was not stored.
    const id = update.update_id as number;
    assert.ok(
      fake.polls.slice(first, rerunFrom + 1).every((p) =>
        p.offset === undefined || Number(p.offset) <= id
      ),
    );
  } finally {
    await rerun.stop();
  }
});

Deno.test("telegram polling: a webhook on the bot (409) says to delete it; check says so too", async () => {
  await using fake = await FakeTelegram.start();
  fake.webhookUrl = "https://example.com/hook";
  const log = recordingLog();
  const run = poll(fake, () => Promise.resolve(), { log });
  try {
    await fake.polled(2);
    const status = run.tg.status();
    assert.equal(status.connected, false);
    assert.match(
      status.last_error ?? "",
      /Conflict: can't use getUpdates method while webhook is active/,
    );
    assert.match(status.last_error ?? "", /deleteWebhook/);
    assert.match(status.last_error ?? "", /mode "webhook"/);
  } finally {
    await run.stop();
  }
  const check = await run.tg.check();
  assert.equal(check.ok, false);
  assert.match(check.detail, /a webhook is set \(https:\/\/example\.com\/hook\)/);
  for (const line of [...log.lines, check.detail, run.tg.status().last_error ?? ""]) {
    assert.ok(!line.includes(TOKEN) && !line.includes(TOKEN.split(":")[1]), line);
  }
});

Deno.test("telegram polling: 429 waits retry_after before the next getUpdates", async () => {
  await using fake = await FakeTelegram.start();
  fake.inject("getUpdates", {
    body: {
      ok: false,
      error_code: 429,
      description: "Too Many Requests: retry after 0",
      parameters: { retry_after: 0 },
    },
  });
  const stored: ChatMessage[] = [];
  const run = poll(fake, (m) => {
    stored.push(...m);
    return Promise.resolve();
  });
  try {
    fake.push(telegramUpdate({ text: "after the limit" }));
    await eventually(() => stored.length === 1, { what: "the message after a 429" });
    assert.match(run.tg.status().last_error ?? "", /Too Many Requests/);
  } finally {
    await run.stop();
  }
});
