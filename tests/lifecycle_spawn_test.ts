/**
 * How `start` spawns the daemon and waits for its readiness line: with a
 * stand-in daemon (a shell script run as if it were the compiled courier)
 * that hangs, exits early, or answers at the last moment; and a real daemon
 * in its own session.
 */
import assert from "node:assert/strict";
import { CourierError } from "../lib/errors/mod.ts";
import { parseProcStat, readProcessIdentity, type RunMode } from "../lib/proc/mod.ts";
import { READINESS_PREFIX, StartFailedError, startService } from "../lib/service/mod.ts";
import { json, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

/** A stand-in for the compiled courier: `script` run by sh, whatever its arguments. */
async function standIn(dir: string, script: string): Promise<RunMode> {
  const path = `${dir}/fake-courier`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return { standalone: true, execPath: path, mainModule: "" };
}

Deno.test("start: a daemon that never becomes ready is killed at the deadline, its output shown", async () => {
  await withHome(async (h) => {
    await Deno.mkdir(h.root, { recursive: true });
    const pidFile = h.sibling("hung.pid");
    const mode = await standIn(
      h.root,
      `echo $$ > ${pidFile}; echo "still loading" >&2; exec sleep 30`,
    );
    const error = await startService(h.home, { port: await leaseTestPort(), timeoutMs: 500, mode })
      .then(() => null, (e) => e);
    assert.ok(error instanceof StartFailedError, String(error));
    assert.match(error.message, /did not become ready within 0\.5 s \(PID \d+ killed\)/);
    assert.ok(error.details.includes("  still loading"), error.details.join("\n"));
    const pid = Number(await Deno.readTextFile(pidFile));
    for (let i = 0; i < 100 && await readProcessIdentity(pid); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await readProcessIdentity(pid), null, `PID ${pid} was killed`); // zombies count as gone
  });
});

Deno.test("start: a daemon that exits before it is ready: its exit code and output", async () => {
  await withHome(async (h) => {
    await Deno.mkdir(h.root, { recursive: true });
    const mode = await standIn(h.root, `echo "cannot load" >&2; exit 7`);
    const error = await startService(h.home, { port: await leaseTestPort(), mode })
      .then(() => null, (e) => e);
    assert.ok(error instanceof StartFailedError, String(error));
    assert.match(error.message, /exited before it was ready \(exit code 7\)/);
    assert.deepEqual(error.details.slice(0, 2), ["Daemon output:", "  cannot load"]);
  });
});

Deno.test("start: a readiness line written just before exiting, without a newline, counts", async () => {
  await withHome(async (h) => {
    await Deno.mkdir(h.root, { recursive: true });
    const message = JSON.stringify({
      courier: "error",
      exit_code: 4,
      message: "Port 1 is already in use",
      details: ["try another"],
      type: "PortInUseError",
    });
    const mode = await standIn(h.root, `printf '%s' '${READINESS_PREFIX}${message}'; exit 4`);
    const error = await startService(h.home, { port: await leaseTestPort(), mode })
      .then(() => null, (e) => e);
    assert.ok(error instanceof CourierError, String(error));
    assert.equal(error.message, "Port 1 is already in use");
    assert.equal(error.exitCode, 4);
    assert.deepEqual(error.details, ["try another"]);
  });
});

Deno.test("start: a courier that cannot be run is named", async () => {
  await withHome(async (h) => {
    const mode = { standalone: true, execPath: h.sibling("no-such-courier"), mainModule: "" };
    await assert.rejects(
      startService(h.home, { port: await leaseTestPort(), mode }),
      /cannot run .*no-such-courier/,
    );
  });
});

Deno.test("start: the daemon runs in a session of its own", async () => {
  await withHome(async (h) => {
    const started = await h.run(["start", "--port", String(await leaseTestPort()), "--json"]);
    assert.equal(started.code, 0, started.stderr);
    const { pid } = json<{ pid: number }>(started);
    // /proc/<pid>/stat: "pid (comm) state ppid pgrp session …"; comm may hold spaces.
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const [, , pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    assert.equal(session, pid, "setsid: a new session, led by the daemon");
    assert.equal(pgrp, pid);
    assert.equal(parseProcStat(stat)?.tpgid, -1, "no controlling terminal");
    assert.equal((await h.run(["stop"])).code, 0);
  });
});
