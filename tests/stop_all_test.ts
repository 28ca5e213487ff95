import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { readProcessIdentity } from "../lib/proc/mod.ts";
import { courier, json, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

/** Spawns a process that waits for its stdout line "up", then returns it. */
async function spawnReady(command: string, args: string[]): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(command, { args, stdout: "piped", stderr: "null" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("up")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${command} exited before it was up`);
    text += value;
  }
  reader.releaseLock();
  return child;
}

async function startIn(home: string): Promise<number> {
  const result = await courier([
    "start",
    "--home",
    home,
    "--port",
    String(await leaseTestPort()),
    "--json",
  ]);
  assert.equal(result.code, 0, result.stderr);
  return json<{ pid: number }>(result).pid;
}

Deno.test("stop --all stops every daemon, orphans included, and never a look-alike", async () => {
  await withHome(async (h) => {
    const homeA = h.sibling("a"), homeB = h.sibling("b"), homeC = h.sibling("c");
    const pidA = await startIn(homeA);
    const pidB = await startIn(homeB);
    const pidC = await startIn(homeC);
    // B becomes an orphan no PID file names; C's whole home is deleted under it.
    await Deno.remove(homeLayout(homeB).pidFile);
    await Deno.remove(homeLayout(homeB).stateFile);
    await Deno.remove(homeC, { recursive: true });

    const fake = h.sibling("fake");
    await Deno.mkdir(`${fake}/run`, { recursive: true });
    await Deno.writeTextFile(`${fake}/run/courier.lock`, "");
    await Deno.writeTextFile(`${h.root}/courier-daemon`, "#!/bin/sh\necho up\nexec sleep 120\n");
    await Deno.chmod(`${h.root}/courier-daemon`, 0o755);
    const daemonArgv = ["daemon", "--home", fake, "--host", "127.0.0.1", "--port", "1"];
    const lookalikes = [
      // argv copies a daemon's (argv[0] "courier", then the daemon's arguments)
      await spawnReady("bash", [
        "-c",
        `exec -a courier bash -c "echo up; sleep 120; :" ${daemonArgv.join(" ")}`,
      ]),
      // a script named courier-daemon
      await spawnReady(`${h.root}/courier-daemon`, daemonArgv),
      // an editor-like process on courier.ts
      await spawnReady("bash", [
        "-c",
        `exec -a vim bash -c "echo up; sleep 120; :" courier.ts main.ts daemon --home ${fake}`,
      ]),
      // has the lock file open (not locked) and a daemon's argv
      await spawnReady(Deno.execPath(), [
        "eval",
        `const f = Deno.openSync(${
          JSON.stringify(`${fake}/run/courier.lock`)
        }); console.log("up"); setTimeout(() => f.close(), 120000);`,
        "courier",
        ...daemonArgv,
      ]),
    ];
    try {
      const result = await h.run(["stop", "--all", "--within", h.root, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const stopped = json<{ stopped: { pid: number; home: string }[] }>(result).stopped;
      assert.deepEqual(stopped.map((s) => s.pid).sort(), [pidA, pidB, pidC].sort());
      assert.deepEqual(stopped.map((s) => s.home).sort(), [homeA, homeB, homeC]);
      for (const pid of [pidA, pidB, pidC]) assert.equal(await readProcessIdentity(pid), null);
      for (const child of lookalikes) {
        assert.notEqual(
          await readProcessIdentity(child.pid),
          null,
          `look-alike ${child.pid} survives`,
        );
      }
      const none = await h.run(["stop", "--all", "--within", h.root]);
      assert.equal(none.code, 1);
      assert.match(none.stdout, /No courier daemons found/);
    } finally {
      for (const child of lookalikes) {
        // The bash look-alikes run `sleep` as their child: stop it too, not only the parent.
        const children = await Deno.readTextFile(`/proc/${child.pid}/task/${child.pid}/children`)
          .catch(() => "");
        for (const pid of children.split(" ").filter(Boolean).map(Number)) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }
        child.kill("SIGKILL");
        await child.status;
        await child.stdout.cancel().catch(() => {});
      }
    }
  });
});

Deno.test("stop --all reports each PID in text mode", async () => {
  await withHome(async (h) => {
    const pid = await startIn(h.sibling("only"));
    const result = await h.run(["stop", "--all", "--within", h.root]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(`^Stopped PID ${pid} \\(home ${h.sibling("only")}\\)$`, "m"),
    );
  });
});
