/**
 * The durability promise, tested on a real daemon: a message acknowledged
 * with 202 is never lost, even when the daemon is SIGKILLed in the middle
 * of a flood, and none is stored twice after the restart folds the journal.
 */
import assert from "node:assert/strict";
import { readProcessIdentity, waitForExit } from "../lib/proc/mod.ts";
import { json, type TestHome, withHome } from "./helpers/courier.ts";
import { readMails } from "./helpers/mail.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const SENDERS = 16;

async function start(h: TestHome, port: number, debounce: string[]): Promise<number> {
  const started = await h.run(["start", "--port", String(port), "--json", ...debounce]);
  assert.equal(started.code, 0, started.stderr);
  return json<{ pid: number }>(started).pid;
}

/**
 * Floods the daemon with uniquely numbered messages from 16 concurrent
 * senders until `stop` resolves or requests start failing, and returns the
 * message ids acknowledged with 202.
 */
async function flood(
  url: string,
  round: string,
  options: { stop: Promise<void>; token: string },
): Promise<Set<string>> {
  const acked = new Set<string>();
  let stopped = false;
  options.stop.then(() => (stopped = true));
  await Promise.all(Array.from({ length: SENDERS }, async (_, sender) => {
    for (let n = 0; !stopped; n++) {
      const id = `${round}-${sender}-${n}`;
      try {
        const response = await fetch(`${url}/api/v1/inbound/flood`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${options.token}`,
          },
          body: JSON.stringify({
            session_id: `session-${n % 8}`,
            sender: { id: `sender-${sender}`, name: `Sender ${sender}` },
            text: `message ${id}`,
            message_id: id,
          }),
        });
        await response.body?.cancel();
        if (response.status === 202) acked.add(id);
      } catch {
        return; // the daemon is gone
      }
    }
  }));
  return acked;
}

async function killDuringFlood(
  pid: number,
  url: string,
  options: { round: string; token: string },
): Promise<Set<string>> {
  const identity = await readProcessIdentity(pid);
  assert.ok(identity, "the daemon runs");
  const { promise: never } = Promise.withResolvers<void>();
  const flooding = flood(url, options.round, { stop: never, token: options.token });
  // Kill once a good number of messages went through, with requests in flight.
  let seen = 0;
  const giveUp = Date.now() + 60_000; // a safety net, not a threshold
  while (seen < 1500) {
    if (Date.now() > giveUp) throw new Error(`only ${seen} messages acknowledged`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const health = await fetch(`${url}/health`, {
      headers: { authorization: `Bearer ${options.token}` },
    }).then((r) => r.json()).catch(() => null);
    seen = health?.metrics?.received ?? seen;
  }
  Deno.kill(pid, "SIGKILL"); // the PID this test started
  assert.ok(await waitForExit(identity, { timeoutMs: 10_000 }), "killed");
  const acked = await flooding;
  assert.ok(acked.size >= 1500, `acknowledged ${acked.size}`);
  return acked;
}

Deno.test("SIGKILL during a flood loses no acknowledged message (restart, then count)", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    const url = `http://127.0.0.1:${port}`;
    // Round 1: short windows, so mails are being written and the journal trimmed when it dies.
    let pid = await start(h, port, ["--debounce-window", "50", "--debounce-max-wait", "200"]);
    const token = await h.token();
    const round1 = await killDuringFlood(pid, url, { round: "r1", token });
    // Round 2: long windows, so the acknowledged messages are only in the journal.
    pid = await start(h, port, ["--debounce-window", "60000", "--debounce-max-wait", "60000"]);
    const round2 = await killDuringFlood(pid, url, { round: "r2", token });
    // The restart folds the journal into mail before it serves; a clean stop flushes the rest.
    await start(h, port, []);
    const stopped = await h.run(["stop"]);
    assert.equal(stopped.code, 0, stopped.stderr);

    const stored = new Map<string, number>();
    for (const mail of await readMails(h.home, "inbound")) {
      for (const m of mail.frontMatter.messages) {
        stored.set(m.message_id!, (stored.get(m.message_id!) ?? 0) + 1);
      }
    }
    const lost = [...round1, ...round2].filter((id) => !stored.has(id));
    assert.deepEqual(lost, [], `${lost.length} acknowledged messages lost`);
    const twice = [...stored].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(twice, [], "no message stored twice");
    // Stored but not acknowledged is fine: the daemon died before the 202 went out.
    assert.ok(stored.size >= round1.size + round2.size);
  });
});
