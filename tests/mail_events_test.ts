import assert from "node:assert/strict";
import {
  EVENT_BUFFER_SIZE,
  handleMailRequest,
  MailClient,
  type MailStreamEvent,
  readServerSentEvents,
} from "../lib/mail/mod.ts";
import { homeLayout } from "../lib/home/mod.ts";
import { withHome } from "./helpers/courier.ts";
import { apiGet, apiPost, startDaemon } from "./helpers/api.ts";
import { eventually, inbound, type MailHarness, withMail } from "./helpers/mail.ts";

/** Serves a harness's mail API on a real port (for streaming). */
function serve(h: MailHarness): { url: string; close: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) =>
      await handleMailRequest(h.service, request, new URL(request.url)) ??
        new Response(null, { status: 404 }),
  );
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

/** Reads frames from a stream until `until` says stop (or the stream ends). */
async function frames(
  response: Response,
  until: (seen: { id?: string; event?: string; data: string }[]) => boolean,
): Promise<{ id?: string; event?: string; data: string }[]> {
  const seen: { id?: string; event?: string; data: string }[] = [];
  for await (const frame of readServerSentEvents(response.body!)) {
    seen.push(frame);
    if (until(seen)) break;
  }
  return seen;
}

Deno.test("events: replay after Last-Event-ID, one reset for a client too far behind", async () => {
  await withMail({ settings: { debounceWindowMs: 10 } }, async (h) => {
    const server = serve(h);
    try {
      const events = h.service.events;
      const first = events.emit("mail.new", { id: "lark_a" });
      events.emit("mail.claimed", { id: "lark_a", agent_id: "x" });
      events.emit("mail.done", { id: "lark_a", agent_id: "x" });
      const resumed = await fetch(`${server.url}/api/v1/events`, {
        headers: { "last-event-id": String(first.id) },
      });
      assert.equal(resumed.headers.get("content-type"), "text/event-stream; charset=utf-8");
      const got = await frames(resumed, (seen) => seen.length === 2);
      assert.deepEqual(got.map((f) => f.event), ["mail.claimed", "mail.done"]);
      assert.deepEqual(got.map((f) => Number(f.id)), [first.id + 1, first.id + 2]);
      assert.equal(JSON.parse(got[1].data).data.agent_id, "x");
      // More than the buffer holds happened since: one reset, then live events.
      for (let i = 0; i < EVENT_BUFFER_SIZE + 5; i++) events.emit("mail.new", { id: `lark_${i}` });
      const behind = await fetch(`${server.url}/api/v1/events?last_event_id=${first.id}`);
      const live = frames(behind, (seen) => seen.length === 2);
      await eventually(() => events.listeners === 1);
      events.emit("mail.dead", { id: "lark_z" });
      const [reset, next] = await live;
      assert.equal(reset.event, "reset");
      assert.equal(Number(reset.id), events.lastId - 1);
      assert.equal(JSON.parse(reset.data).last_event_id, first.id);
      assert.equal(next.event, "mail.dead");
      // Only the types asked for.
      const only = await fetch(`${server.url}/api/v1/events?types=mail.done`);
      const filtered = frames(only, (seen) => seen.length === 1);
      await eventually(() => events.listeners === 1);
      events.emit("mail.new", { id: "skip" });
      events.emit("mail.done", { id: "keep" });
      assert.equal(JSON.parse((await filtered)[0].data).data.id, "keep");
      const bad = await fetch(`${server.url}/api/v1/events?types=mail.nope`);
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
    } finally {
      await server.close();
    }
  });
});

Deno.test("events: heartbeat comments, and the stream ends when the service stops", async () => {
  await withMail({ settings: { eventsHeartbeatMs: 30 } }, async (h) => {
    const server = serve(h);
    try {
      const response = await fetch(`${server.url}/api/v1/events`);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes(": heartbeat")) text += (await reader.read()).value ?? "";
      const stopped = h.service.stop();
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
      await stopped;
      assert.equal(h.service.events.listeners, 0);
    } finally {
      await server.close();
    }
  });
});

Deno.test("events: a real daemon streams the life of mails; a client follows it across a restart", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, ["--debounce-window", "20", "--debounce-max-wait", "50"]);
    const client = await MailClient.connect(homeLayout(h.home));
    const stop = new AbortController();
    const seen: MailStreamEvent[] = [];
    const following = (async () => {
      for await (const event of client.events({ reconnect: true, signal: stop.signal })) {
        seen.push(event);
      }
    })();
    try {
      await eventually(async () =>
        ((await apiGet(d, "/health")).body.metrics as { event_clients: number } | undefined)
          ?.event_clients === 1
      );
      await apiPost(d, "/api/v1/inbound/lark", inbound({ text: "watch me" }));
      const claimed = await client.claimNext("agent", { waitS: 10 });
      assert.ok(claimed);
      await client.fail(claimed.id as string, "agent", { reason: "flaky", retryable: true });
      await eventually(() => seen.some((e) => e.type === "mail.retrying"));
      assert.deepEqual(seen.map((e) => e.type), ["mail.new", "mail.claimed", "mail.retrying"]);
      assert.ok(seen.every((e) => e.type !== "reset" && e.data.id === claimed.id));
      const ids = seen.map((e) => e.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "ids increase");
      const stopped = await h.run(["stop"]);
      assert.equal(stopped.code, 0, "an open event stream does not hold up the stop");
      // A new daemon (on another port): the client finds it and is told to resync.
      const again = await startDaemon(h, ["--debounce-window", "20", "--debounce-max-wait", "50"]);
      await eventually(
        async () =>
          ((await apiGet(again, "/health")).body.metrics as { event_clients: number } | undefined)
            ?.event_clients === 1,
        {
          timeoutMs: 20_000,
          what: "the client to reconnect",
        },
      );
      await apiPost(again, "/api/v1/inbound/lark", inbound({ text: "after restart" }));
      await eventually(() => seen.at(-1)?.type === "mail.new" && seen.length > 3);
      assert.deepEqual(seen.slice(3).map((e) => e.type), ["reset", "mail.new"]);
      assert.ok(seen[4].id > ids.at(-1)!, "ids keep increasing across the restart");
      await again.home.run(["stop"]);
    } finally {
      stop.abort();
      await following;
    }
  });
});
