/**
 * `courier mail work`: a real daemon, a real worker process, and shell
 * scripts as the agent's command.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { failureReason, MailWorker, replyText, type WorkerEvent } from "../lib/agent/mod.ts";
import { homeLayout } from "../lib/home/mod.ts";
import { MailClient } from "../lib/mail/mod.ts";
import { type TestHome, withHome } from "./helpers/courier.ts";
import {
  apiGet,
  postMail,
  startDaemon,
  stopDaemon,
  type TestDaemon,
  writeHomeConfig,
} from "./helpers/api.ts";
import { eventually, webhookReceiver } from "./helpers/mail.ts";
import { CourierProcess, runIn } from "./helpers/process.ts";

const FAST = ["--debounce-window", "20", "--debounce-max-wait", "50"];

/** Waits (30 s at most) until `$DIR/go` exists, after saying it started. */
const WAIT_FOR_GO = `touch "$DIR/started-$COURIER_MAIL_ID"
i=0
while [ ! -e "$DIR/go" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
`;

/**
 * Starts `courier mail work --agent w ARGS…` in the test's scratch root,
 * which its commands find as `$DIR`.
 */
function startWorker(h: TestHome, args: string[]): CourierProcess {
  return CourierProcess.start(h, ["mail", "work", "--agent", "w", ...args], {
    cwd: h.root,
    env: { DIR: h.root },
  });
}

/** Writes an executable shell script `name` in `dir`. */
async function script(dir: string, name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}`);
  await Deno.chmod(path, 0o755);
  return path;
}

interface Mail {
  status: string;
  delivery: { attempts: number; failures: { reason: string }[]; dead_reason?: string };
  claim?: { agent_id: string; expires_at: string };
}

async function mail(d: TestDaemon, id: string): Promise<Mail> {
  return (await apiGet(d, `/api/v1/messages/${id}`)).body as unknown as Mail;
}

async function status(d: TestDaemon, id: string): Promise<string> {
  return (await mail(d, id)).status;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("mail work: done on exit 0, retried on 1, dead at once on a --no-retry code; stdin, environment, JSON log", async () => {
  await withHome(async (h) => {
    await writeHomeConfig(h, { retry_backoff_ms: 50, retry_backoff_cap_ms: 100, max_attempts: 3 });
    const d = await startDaemon(h, FAST);
    const dir = h.root;
    await script(
      dir,
      "agent.sh",
      `cat > "$DIR/$COURIER_MAIL_ID.json"
env | grep '^COURIER_' | sort > "$DIR/$COURIER_MAIL_ID.env"
code=\${COURIER_MAIL_SESSION#exit-}
echo "line one" >&2
echo "failing with $code" >&2
exit "$code"
`,
    );
    const [ok, flaky, broken] = [
      await postMail(d, "exit-0"),
      await postMail(d, "exit-1"),
      await postMail(d, "exit-2"),
    ];
    const worker = startWorker(h, ["--no-retry", "2", "--json", "--", "./agent.sh"]);
    try {
      await eventually(
        async () =>
          (await status(d, ok)) === "done" && (await status(d, flaky)) === "dead" &&
          (await status(d, broken)) === "dead",
        { what: "every mail settled" },
      );
      worker.signal("SIGTERM");
      assert.equal(await worker.exit(), 0, worker.stderr.join("\n"));
    } finally {
      await worker.end();
    }
    const stdin = JSON.parse(await Deno.readTextFile(join(dir, `${ok}.json`)));
    assert.equal(stdin.id, ok);
    assert.equal(stdin.claim.agent_id, "w");
    assert.match(stdin.body, /secret body of exit-0/);
    const env = await Deno.readTextFile(join(dir, `${ok}.env`));
    assert.match(env, new RegExp(`^COURIER_MAIL_ID=${ok}$`, "m"));
    assert.match(env, /^COURIER_MAIL_PROVIDER=lark$/m);
    assert.match(env, /^COURIER_MAIL_SESSION=exit-0$/m);
    assert.match(env, new RegExp(`^COURIER_MAIL_PATH=.*/inbound/lark/\\w+_${ok}\\.md$`, "m"));
    assert.match(env, new RegExp(`^COURIER_HOME=${h.home}$`, "m"));

    const retried = await mail(d, flaky);
    assert.equal(retried.delivery.attempts, 3);
    assert.deepEqual(
      retried.delivery.failures.map((f) => f.reason),
      Array(3).fill("exit 1: line one\nfailing with 1"),
    );
    const dead = await mail(d, broken);
    assert.equal(dead.delivery.attempts, 1, "a --no-retry code is not retried");
    assert.equal(dead.delivery.dead_reason, "exit 2: line one\nfailing with 2");

    const log = worker.stderr.map((line) => JSON.parse(line));
    const of = (event: string) => log.filter((e) => e.event === event);
    assert.equal(of("claimed").length, 5);
    assert.deepEqual(of("done").map((e) => [e.id, e.exit_code]), [[ok, 0]]);
    const failed = (id: string) =>
      of("failed").filter((e) => e.id === id).map((e) => [e.exit_code, e.status, e.no_retry]);
    assert.deepEqual(failed(flaky), [
      [1, "retrying", false],
      [1, "retrying", false],
      [1, "dead", false],
    ]);
    assert.deepEqual(failed(broken), [[2, "dead", true]]);
    assert.ok(of("stderr").some((e) => e.id === ok && e.line === "failing with 0"));
    assert.deepEqual(of("stopped").map((e) => [e.done, e.failed, e.released]), [[1, 4, 0]]);
    assert.ok(log.every((e) => typeof e.at === "string"));
    assert.ok(!worker.stderr.some((line) => line.includes("secret body")), "no body in the log");
    await stopDaemon(d);
  });
});

Deno.test("mail work: the claim is renewed past its timeout while the command runs", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    await script(h.root, "slow.sh", "sleep 3\n");
    const id = await postMail(d, "slow");
    const worker = startWorker(h, ["--timeout", "1", "--", "./slow.sh"]);
    try {
      await worker.line("stderr", new RegExp(`claimed ${id}`));
      // Three times the claim's length later, it is still ours and nothing counted as failed.
      await worker.line("stderr", new RegExp(`done ${id}: exit 0`));
      worker.signal("SIGINT");
      assert.equal(await worker.exit(), 0);
    } finally {
      await worker.end();
    }
    const done = await mail(d, id);
    assert.equal(done.status, "done");
    assert.deepEqual(done.delivery.failures, [], "no claim expired while it ran");
    assert.equal(done.delivery.attempts, 0);
    assert.ok(!worker.stderr.some((l) => /renew|lost/.test(l)), worker.stderr.join("\n"));
    await stopDaemon(d);
  });
});

Deno.test("mail work --reply: the command's stdout goes back to the conversation, reply_to set", async () => {
  const receiver = webhookReceiver([200]);
  try {
    await withHome(async (h) => {
      await writeHomeConfig(h, { outbound: { lark: { url: receiver.url } } });
      const d = await startDaemon(h, FAST);
      await script(
        h.root,
        "answer.sh",
        `[ "$COURIER_MAIL_SESSION" = quiet ] && exit 0
printf '\\n  On it: %s\\n\\n' "$COURIER_MAIL_ID"
`,
      );
      const talk = await postMail(d, "talk");
      const quiet = await postMail(d, "quiet");
      const worker = startWorker(h, ["--reply", "--", "./answer.sh"]);
      try {
        const done = await worker.line("stderr", new RegExp(`done ${talk}: exit 0`));
        assert.match(done, /reply queued as lark_\w+/);
        await worker.line("stderr", new RegExp(`done ${quiet}: exit 0 after [\\d.]+ s$`));
        await eventually(() => receiver.posts.length === 1, { what: "the reply delivered" });
        worker.signal("SIGTERM");
        assert.equal(await worker.exit(), 0);
      } finally {
        await worker.end();
      }
      const reply = receiver.posts[0].body as {
        reply_to: string;
        session: { id: string };
        content: { text: string };
      };
      assert.equal(reply.reply_to, talk);
      assert.equal(reply.session.id, "talk");
      assert.equal(reply.content.text, `  On it: ${talk}`);
      const outbound = await apiGet(d, "/api/v1/messages?direction=outbound");
      assert.equal(outbound.body.count, 1, "an empty stdout is no reply");
      await stopDaemon(d);
    });
  } finally {
    await receiver.close();
  }
});

Deno.test("mail work --reply: a reply that cannot be queued fails the mail, which is not completed", async () => {
  await withHome(async (h) => {
    await writeHomeConfig(h, { max_attempts: 1 }); // and no outbound route for lark
    const d = await startDaemon(h, FAST);
    await script(h.root, "answer.sh", "echo 'On it.'\n");
    const id = await postMail(d, "unrouted");
    const worker = startWorker(h, ["--reply", "--", "./answer.sh"]);
    try {
      const failed = await worker.line("stderr", new RegExp(`failed ${id}: exit 0`));
      assert.match(failed, /but the reply could not be queued: \S/);
      assert.match(failed, /dead after 1 failed attempt/);
      worker.signal("SIGTERM");
      assert.equal(await worker.exit(), 0);
    } finally {
      await worker.end();
    }
    const dead = await mail(d, id);
    assert.equal(dead.status, "dead");
    assert.match(dead.delivery.dead_reason!, /^the reply could not be queued: \S/);
    await stopDaemon(d);
  });
});

Deno.test("mail work: SIGTERM lets the running command finish and complete; no new claims", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    await script(h.root, "wait.sh", WAIT_FOR_GO);
    const first = await postMail(d, "first");
    const worker = startWorker(h, ["--", "./wait.sh"]);
    try {
      await eventually(() => exists(join(h.root, `started-${first}`)));
      worker.signal("SIGTERM");
      await worker.line("stderr", /stopping: no new mail; waiting for 1 running command/);
      const second = await postMail(d, "second");
      await Deno.writeTextFile(join(h.root, "go"), "");
      assert.equal(await worker.exit(), 0, worker.stderr.join("\n"));
      assert.equal(await status(d, first), "done");
      const untouched = await mail(d, second);
      assert.equal(untouched.status, "new", "a stopping worker claims nothing more");
      assert.equal(untouched.delivery.attempts, 0);
      assert.match(worker.stderr.at(-1)!, /stopped: 1 done, 0 failed, 0 released$/);
    } finally {
      await worker.end();
    }
    await stopDaemon(d);
  });
});

Deno.test("mail work: a second SIGTERM is passed on to the command; its mail is released, not failed", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    await script(
      h.root,
      "stubborn.sh",
      `trap 'echo "$COURIER_MAIL_ID" > "$DIR/term"; exit 3' TERM
${WAIT_FOR_GO}`,
    );
    const id = await postMail(d, "stubborn");
    const worker = startWorker(h, ["--", "./stubborn.sh"]);
    try {
      await eventually(() => exists(join(h.root, `started-${id}`)));
      worker.signal("SIGTERM");
      await worker.line("stderr", /stopping: no new mail/);
      worker.signal("SIGTERM");
      await worker.line("stderr", /passed SIGTERM on to 1 running command/);
      assert.equal(await worker.exit(), 0, worker.stderr.join("\n"));
      assert.equal((await Deno.readTextFile(join(h.root, "term"))).trim(), id);
      await worker.line("stderr", new RegExp(`released ${id}: the command ended on the SIGTERM`));
      const back = await mail(d, id);
      assert.equal(back.status, "new");
      assert.deepEqual(back.delivery.failures, []);
    } finally {
      await worker.end();
    }
    await stopDaemon(d);
  });
});

Deno.test("mail work --concurrency 3 runs three commands at once, the fourth mail waits", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    await script(h.root, "wait.sh", WAIT_FOR_GO);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await postMail(d, `c${i}`));
    const worker = startWorker(h, ["--concurrency", "3", "--", "./wait.sh"]);
    try {
      const started = async () => {
        const names: string[] = [];
        for await (const entry of Deno.readDir(h.root)) {
          if (entry.name.startsWith("started-")) names.push(entry.name);
        }
        return names;
      };
      await eventually(async () => (await started()).length === 3, { what: "three running" });
      const claimed = await apiGet(d, "/api/v1/messages?status=claimed");
      assert.equal(claimed.body.count, 3);
      const waiting = await apiGet(d, "/api/v1/messages?status=new");
      assert.equal(waiting.body.count, 1);
      assert.ok(!worker.stderr.some((l) => / done /.test(l)), "none finished yet");
      await Deno.writeTextFile(join(h.root, "go"), "");
      await eventually(async () => {
        const statuses = await Promise.all(ids.map((id) => status(d, id)));
        return statuses.every((s) => s === "done");
      }, { what: "all four done" });
      worker.signal("SIGTERM");
      assert.equal(await worker.exit(), 0);
      assert.match(worker.stderr.at(-1)!, /stopped: 4 done/);
    } finally {
      await worker.end();
    }
    await stopDaemon(d);
  });
});

Deno.test("mail work survives a daemon restart mid-run: the claim is kept, mail goes on", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    await script(h.root, "wait.sh", WAIT_FOR_GO);
    const first = await postMail(d, "before");
    const worker = startWorker(h, ["--concurrency", "2", "--timeout", "9", "--", "./wait.sh"]);
    try {
      await eventually(() => exists(join(h.root, `started-${first}`)));
      const before = (await mail(d, first)).claim!.expires_at;
      const restarted = await h.run(["restart"]);
      assert.equal(restarted.code, 0, restarted.stderr);
      await worker.line("stderr", /the daemon does not answer/);
      await worker.line("stderr", /the daemon answers again/);
      // The claim is renewed on the new daemon (every third of its 9 s).
      await eventually(async () => (await mail(d, first)).claim!.expires_at > before, {
        what: "the claim renewed after the restart",
      });
      const second = await postMail(d, "after");
      await eventually(() => exists(join(h.root, `started-${second}`)));
      await Deno.writeTextFile(join(h.root, "go"), "");
      await eventually(async () =>
        (await status(d, first)) === "done" && (await status(d, second)) === "done"
      );
      const kept = await mail(d, first);
      assert.deepEqual(kept.delivery.failures, [], "the claim never ran out");
      worker.signal("SIGTERM");
      assert.equal(await worker.exit(), 0);
    } finally {
      await worker.end();
    }
    await stopDaemon(d);
  });
});

Deno.test("mail work: a command that cannot be started releases its mail and ends the worker (64)", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const path = await script(h.root, "gone.sh", "exit 0\n");
    const worker = startWorker(h, ["--", path]);
    try {
      await worker.line("stderr", /worker "w" started/);
      await Deno.remove(path);
      const id = await postMail(d, "orphan");
      assert.equal(await worker.exit(), 64, worker.stderr.join("\n"));
      await worker.line("stderr", new RegExp(`released ${id}: the command could not be started`));
      await worker.line("stderr", /courier: cannot run/);
      const back = await mail(d, id);
      assert.equal(back.status, "new");
      assert.equal(back.delivery.attempts, 0);
    } finally {
      await worker.end();
    }
    const missing = await runIn(h, ["mail", "work", "--agent", "w", "--", "./nowhere.sh"]);
    assert.equal(missing.code, 64);
    assert.match(missing.stderr, /cannot run "\.\/nowhere\.sh": no such file/);
    const none = await runIn(h, ["mail", "work", "--agent", "w"]);
    assert.equal(none.code, 64);
    assert.match(none.stderr, /missing the command to run/);
    const badProvider = await runIn(h, [
      "mail",
      "work",
      "--agent",
      "w",
      "--provider",
      "a b",
      "--",
      "true",
    ]);
    assert.equal(badProvider.code, 65, badProvider.stderr);
    assert.match(badProvider.stderr, /provider/);
    const badCodes = await runIn(h, [
      "mail",
      "work",
      "--agent",
      "w",
      "--no-retry",
      "0",
      "--",
      "true",
    ]);
    assert.equal(badCodes.code, 64);
    await stopDaemon(d);
    const down = await runIn(h, ["mail", "work", "--agent", "w", "--", "true"]);
    assert.equal(down.code, 69);
    assert.match(down.stderr, /Courier is not running/);
  });
});

Deno.test("MailWorker as a library: events, the summary, stop()", async () => {
  await withHome(async (h) => {
    const d = await startDaemon(h, FAST);
    const ok = await postMail(d, "lib-ok");
    const bad = await postMail(d, "lib-bad");
    const events: WorkerEvent[] = [];
    const lines: [string, string][] = [];
    const worker = new MailWorker(await MailClient.connect(homeLayout(h.home)), {
      agentId: "lib",
      command: [
        "sh",
        "-c",
        'cat > /dev/null; echo "about $COURIER_MAIL_SESSION" >&2; [ "$COURIER_MAIL_SESSION" = lib-ok ]',
      ],
      onEvent: (event) => events.push(event),
      onStderrLine: (line, id) => lines.push([id, line]),
    });
    const running = worker.run();
    await eventually(() =>
      events.filter((e) => e.event === "done" || e.event === "failed").length === 2
    );
    worker.stop();
    const summary = await running;
    assert.deepEqual(summary, { done: 1, failed: 1, released: 0, lost: 0 });
    assert.deepEqual(events.map((e) => e.event), [
      "started",
      "claimed",
      "done",
      "claimed",
      "failed",
      "stopping",
      "stopped",
    ]);
    assert.deepEqual(lines, [[ok, "about lib-ok"], [bad, "about lib-bad"]]);
    const failed = await mail(d, bad);
    assert.equal(failed.delivery.failures[0].reason, "exit 1: about lib-bad");
    await stopDaemon(d);
  });
});

Deno.test("failureReason and replyText", () => {
  const result = { code: 137, signal: "SIGKILL" as const, stdout: null, durationMs: 5 };
  assert.equal(failureReason({ ...result, stderrTail: [] }), "killed by SIGKILL (exit 137)");
  const long = failureReason({ ...result, signal: null, code: 1, stderrTail: ["x".repeat(5000)] });
  assert.equal(long.length, 4000);
  assert.ok(long.startsWith("…") && long.endsWith("x"));
  assert.equal(replyText("\n \n  indented\nlast  \n\n"), "  indented\nlast");
  assert.equal(replyText(" \n\t\n"), "");
});
