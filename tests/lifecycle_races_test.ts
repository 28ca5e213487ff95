/**
 * Lifecycle habits of dotfiles and scripts: many shells starting courier at
 * once, restart keeping how it was started, and clean-up that tolerates
 * nothing running.
 */
import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { findDaemons } from "../lib/service/mod.ts";
import { json, type RunResult, type TestHome, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

function report(results: RunResult[]): string {
  return results.map((r) => `exit ${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`).join("\n");
}

async function health(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  await response.body?.cancel();
  return response.status;
}

async function daemonPid(h: TestHome): Promise<number> {
  const status = json<{ state: string; pid: number }>(await h.run(["status", "--json"]));
  assert.equal(status.state, "running");
  return status.pid;
}

for (const command of ["start", "restart"]) {
  Deno.test(`five '${command} --if-not-running' at once: all exit 0, one daemon, answering`, async () => {
    await withHome(async (h) => {
      const port = String(await leaseTestPort());
      for (let round = 0; round < 3; round++) {
        const results = await Promise.all(
          Array.from({ length: 5 }, () => h.run([command, "--if-not-running", "--port", port])),
        );
        assert.deepEqual(results.map((r) => r.code), [0, 0, 0, 0, 0], report(results));
        const daemons = await findDaemons({ within: h.root });
        assert.equal(daemons.length, 1, report(results));
        assert.equal(await health(Number(port)), 200);
        for (const result of results) assert.match(result.stdout, /PID \d+/);
        assert.equal((await h.run(["stop"])).code, 0);
      }
    });
  });
}

Deno.test("restart --if-not-running leaves a running daemon alone and starts one that is not", async () => {
  await withHome(async (h) => {
    const port = String(await leaseTestPort());
    const started = await h.run(["restart", "--if-not-running", "--port", port, "--json"]);
    assert.equal(started.code, 0, started.stderr);
    assert.equal(json(started).started, true);
    const pid = await daemonPid(h);
    const again = await h.run(["restart", "--if-not-running", "--port", port, "--json"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(json(again).started, false);
    assert.equal(json(again).pid, pid);
    assert.equal(await daemonPid(h), pid, "not restarted");
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("restart reuses the recorded host, port and options unless new ones are given", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    const other = await leaseTestPort();
    const started = await h.run(["start", "--port", String(port), "--debounce-window", "250"]);
    assert.equal(started.code, 0, started.stderr);
    const first = await daemonPid(h);
    const lastDebounce = async () =>
      [...(await Deno.readTextFile(homeLayout(h.home).logFile)).matchAll(/debounce (\d+) ms/g)]
        .at(-1)?.[1];

    // COURIER_PORT is start's default; what the daemon was started with wins on restart.
    const restarted = await h.run(["restart", "--json"], { env: { COURIER_PORT: String(other) } });
    assert.equal(restarted.code, 0, restarted.stderr);
    assert.equal(json(restarted).port, port);
    assert.equal(json(restarted).host, "127.0.0.1");
    assert.notEqual(await daemonPid(h), first);
    assert.equal(await lastDebounce(), "250");

    const moved = await h.run(["restart", "--port", String(other), "--json"]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(json(moved).port, other);
    assert.equal(await lastDebounce(), "250", "options not given are kept");
    assert.equal(await health(other), 200);
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("stop --if-running exits 0 when nothing runs; stop alone still exits 1", async () => {
  await withHome(async (h) => {
    const quiet = await h.run(["stop", "--if-running"]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(quiet.stdout, /Courier is not running/);
    const json_ = await h.run(["stop", "--if-running", "--json"]);
    assert.deepEqual(json(json_), { stopped: [] });
    const loud = await h.run(["stop"]);
    assert.equal(loud.code, 1);
    assert.match(loud.stderr, /Courier is not running/);
    assert.equal((await h.run(["stop", "--all", "--within", h.root, "--if-running"])).code, 0);

    assert.equal((await h.run(["start", "--port", String(await leaseTestPort())])).code, 0);
    const stopped = await h.run(["stop", "--if-running"]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /Stopped Courier \(PID \d+\)/);
  });
});
