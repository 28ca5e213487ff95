/**
 * What status, start and doctor say when the daemon is frozen, killed, or
 * its files or home are not what they should be: exactly what is true.
 */
import assert from "node:assert/strict";
import type { Diagnosis } from "../lib/doctor/mod.ts";
import { homeLayout } from "../lib/home/mod.ts";
import { readProcessIdentity, waitForExit } from "../lib/proc/mod.ts";
import { courier, json, type TestHome, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

async function start(h: TestHome): Promise<{ pid: number; port: number }> {
  const port = await leaseTestPort();
  const started = await h.run(["start", "--port", String(port), "--json"]);
  assert.equal(started.code, 0, started.stderr);
  return { pid: json<{ pid: number }>(started).pid, port };
}

Deno.test("a SIGSTOPped daemon: status says it is stopped (state T) and what to do; start --if-not-running fails", async () => {
  await withHome(async (h) => {
    const { pid, port } = await start(h);
    Deno.kill(pid, "SIGSTOP"); // the daemon this test started
    try {
      const status = await h.run(["status", "--json"]);
      assert.equal(status.code, 4, status.stderr);
      const body = json<{ state: string; reason: string; process_state: string }>(status);
      assert.equal(body.state, "unhealthy");
      assert.equal(body.process_state, "T");
      assert.match(body.reason, new RegExp(`PID ${pid} is stopped \\(state T\\)`));
      const text = await h.run(["status"]);
      assert.match(text.stdout, new RegExp(`kill -CONT ${pid}`));
      assert.match(text.stdout, /courier restart/);

      const again = await h.run(["start", "--if-not-running", "--port", String(port)]);
      assert.notEqual(again.code, 0, "a frozen daemon is not a running service");
      assert.match(again.stderr, new RegExp(`PID ${pid} is stopped \\(state T\\)`));
      assert.match(again.stderr, new RegExp(`kill -CONT ${pid}`));
    } finally {
      Deno.kill(pid, "SIGCONT");
    }
    assert.equal((await h.run(["start", "--if-not-running"])).code, 0, "resumed, it runs");
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("after kill -9: status says no process has that PID; with the state file gone, status and doctor agree", async () => {
  await withHome(async (h) => {
    const first = await start(h);
    const identity = (await readProcessIdentity(first.pid))!;
    Deno.kill(first.pid, "SIGKILL"); // the daemon this test started
    assert.equal(await waitForExit(identity, { timeoutMs: 5000 }), true);
    const stale = json<{ state: string; reason: string }>(await h.run(["status", "--json"]));
    assert.equal(stale.state, "stale");
    assert.match(stale.reason, new RegExp(`no process has PID ${first.pid} any more`));
    assert.doesNotMatch(stale.reason, /is not the daemon/);

    // A daemon whose PID and state files are removed while it runs.
    const second = await start(h);
    const layout = homeLayout(h.home);
    await Deno.remove(layout.stateFile);
    await Deno.remove(layout.pidFile);
    const status = json<{ state: string; reason: string; port: number }>(
      await h.run(["status", "--json"]),
    );
    assert.equal(status.state, "unhealthy");
    assert.match(
      status.reason,
      new RegExp(`PID ${second.pid} .*listens on port ${second.port}.* state file .* is gone`),
    );
    assert.equal(status.port, second.port);
    const doctor = json<Diagnosis>(await h.run(["doctor", "--json"]));
    const state = doctor.findings.find((f) => f.check === "state")!;
    assert.match(state.message, new RegExp(`PID ${second.pid} .*state file .* is gone`));
    assert.ok(
      !doctor.findings.some((f) => f.check === "daemons" && f.level === "problem"),
      JSON.stringify(doctor.findings),
    );
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("a PID reused by another program: status names the program", async () => {
  await withHome(async (h) => {
    const layout = homeLayout(h.home);
    await Deno.mkdir(layout.runDir, { recursive: true });
    // A state file naming this test process with another start time: its PID, reused.
    const self = (await readProcessIdentity(Deno.pid))!;
    await Deno.writeTextFile(
      layout.stateFile,
      JSON.stringify({
        pid: Deno.pid,
        host: "127.0.0.1",
        port: 1,
        api_url: "http://127.0.0.1:1",
        started_at: new Date().toISOString(),
        version: "0.0.0",
        home: layout.root,
        identity: { ...self, startTime: "1" },
        exe: Deno.execPath(),
      }),
    );
    const status = json<{ state: string; reason: string }>(await h.run(["status", "--json"]));
    assert.equal(status.state, "stale");
    assert.match(
      status.reason,
      new RegExp(`PID ${Deno.pid} now belongs to another program \\(.*deno`),
    );
  });
});

Deno.test("a home that is a regular file: every command says it is not a directory (exit 3)", async () => {
  await withHome(async (h) => {
    const file = h.sibling("a-file");
    await Deno.writeTextFile(file, "not a directory");
    for (const home of [file, `${file}/home`]) {
      for (
        const args of [["status"], ["start", "--port", String(await leaseTestPort())], ["stop"]]
      ) {
        const result = await courier([...args, "--home", home]);
        assert.equal(result.code, 3, `${args[0]} --home ${home}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`${file} is not a directory \\(ENOTDIR\\)`));
        assert.doesNotMatch(result.stdout + result.stderr, /stale/);
      }
    }
  });
});

Deno.test("stop resumes a SIGSTOPped daemon so that it stops gracefully, without SIGKILL", async () => {
  await withHome(async (h) => {
    const { pid } = await start(h);
    Deno.kill(pid, "SIGSTOP"); // the daemon this test started
    const stopped = await h.run(["stop", "--timeout", "5"]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, new RegExp(`Stopped Courier \\(PID ${pid}\\)$`, "m"));
    assert.match(await Deno.readTextFile(homeLayout(h.home).logFile), /stopping \(SIGTERM\)/);
  });
});

Deno.test("kill --signal says in the daemon's log what it sent to whom", async () => {
  await withHome(async (h) => {
    const { pid } = await start(h);
    for (const signal of ["STOP", "CONT", "KILL"]) {
      const sent = await h.run(["kill", "--signal", signal]);
      assert.equal(sent.code, 0, sent.stderr);
    }
    const log = await Deno.readTextFile(homeLayout(h.home).logFile);
    for (const signal of ["SIGSTOP", "SIGCONT", "SIGKILL"]) {
      assert.match(
        log,
        new RegExp(`INFO +pid=\\d+ kill: sent ${signal} to the daemon \\(PID ${pid}\\)`),
      );
    }
  });
});
