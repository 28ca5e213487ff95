import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { readProcessIdentity } from "../lib/proc/mod.ts";
import { type DaemonState, findDaemons } from "../lib/service/mod.ts";
import { authedFetch, courier, courierCommand, json, withHome } from "./helpers/courier.ts";
import { leaseTestPort, makeTimeWait } from "./helpers/ports.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("start, status, health, stop: the whole round trip", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    const started = await h.run(["start", "--port", String(port), "--json"]);
    assert.equal(started.code, 0, started.stderr);
    const info = json<{ pid: number; api_url: string; port: number }>(started);
    assert.equal(info.port, port);
    assert.equal(info.api_url, `http://127.0.0.1:${port}`);

    const layout = homeLayout(h.home);
    assert.equal(await Deno.readTextFile(layout.pidFile), `${info.pid}\n`);
    const state: DaemonState = JSON.parse(await Deno.readTextFile(layout.stateFile));
    assert.equal(state.pid, info.pid);
    assert.equal(state.identity.startTime, (await readProcessIdentity(info.pid))?.startTime);

    const status = await h.run(["status", "--json"]);
    assert.equal(status.code, 0);
    const body = json(status);
    assert.deepEqual(Object.keys(body).sort(), [
      "api_url",
      "home",
      "host",
      "pid",
      "port",
      "state",
      "supervisor",
      "uptime_s",
      "version",
    ]);
    assert.equal(body.state, "running");
    assert.equal(body.pid, info.pid);
    assert.equal(body.supervisor, null);

    const health = await fetch(`${info.api_url}/health`);
    const healthBody = await health.json();
    assert.equal(health.status, 200);
    assert.equal(healthBody.status, "healthy");
    assert.equal(healthBody.pid, info.pid);
    assert.equal(typeof healthBody.uptime_s, "number");
    const apiStatus = await (await authedFetch(h.home, `${info.api_url}/api/v1/status`)).json();
    assert.equal(apiStatus.port, port);
    assert.equal(apiStatus.home, layout.root);
    const missing = await authedFetch(h.home, `${info.api_url}/no/such/path`);
    assert.equal(missing.status, 404);
    assert.match((await missing.json()).error, /not found/);

    const stopped = await h.run(["stop"]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, new RegExp(`Stopped Courier \\(PID ${info.pid}\\)`));
    assert.equal(await exists(layout.pidFile), false);
    assert.equal(await exists(layout.stateFile), false);
    assert.equal(await exists(layout.lockFile), true, "the lock file is never deleted");
    assert.equal(await readProcessIdentity(info.pid), null);
    assert.equal((await h.run(["status"])).code, 3);
    const again = await h.run(["stop"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /Courier is not running/);

    const log = await Deno.readTextFile(layout.logFile);
    assert.match(log, /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO .*started: listening on/m);
    assert.match(log, /stopping \(SIGTERM\)/);
    assert.match(log, /INFO .* stopped$/m);
  });
});

Deno.test("a second start is refused with exit 2 and names the running daemon", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    const first = await h.run(["start", "--port", String(port), "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const { pid } = json<{ pid: number }>(first);
    const second = await h.run(["start", "--port", String(await leaseTestPort())]);
    assert.equal(second.code, 2);
    assert.match(
      second.stderr,
      new RegExp(`Courier is already running \\(PID ${pid}, port ${port}\\)`),
    );
    const quiet = await h.run(["start", "--if-not-running", "--port", String(port)]);
    assert.equal(quiet.code, 0, "--if-not-running is a no-op when it runs");
    assert.match(quiet.stdout, /already running/);
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("ten starts at once on one home: exactly one daemon, one exit 0, nine exit 2", async () => {
  await withHome(async (h) => {
    const results = await Promise.all(
      Array.from(
        { length: 10 },
        async () => h.run(["start", "--port", String(await leaseTestPort())]),
      ),
    );
    const codes = results.map((r) => r.code).sort();
    assert.deepEqual(
      codes,
      [0, 2, 2, 2, 2, 2, 2, 2, 2, 2],
      results.map((r) => `exit ${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`).join("\n"),
    );
    const daemons = await findDaemons({ within: h.root });
    assert.equal(daemons.length, 1);
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("restart replaces the daemon; kill sends SIGKILL and cleans up", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    const first = json<{ pid: number }>(await h.run(["start", "--port", String(port), "--json"]));
    const restarted = await h.run(["restart", "--port", String(port), "--json"]);
    assert.equal(restarted.code, 0, restarted.stderr);
    const second = json<{ pid: number }>(restarted);
    assert.notEqual(second.pid, first.pid);
    assert.equal(await readProcessIdentity(first.pid), null);

    const killed = await h.run(["kill", "--json"]);
    assert.equal(killed.code, 0, killed.stderr);
    assert.deepEqual(json(killed), { pid: second.pid, signal: "SIGKILL", exited: true });
    const layout = homeLayout(h.home);
    assert.equal(await exists(layout.pidFile), false);
    assert.equal(await exists(layout.stateFile), false);
    assert.equal((await h.run(["status"])).code, 3);
    assert.equal((await h.run(["kill"])).code, 1);
  });
});

Deno.test("logs prints the last lines, as text and JSON", async () => {
  await withHome(async (h) => {
    assert.equal((await h.run(["start", "--port", String(await leaseTestPort())])).code, 0);
    assert.equal((await h.run(["stop"])).code, 0);
    const all = await h.run(["logs"]);
    assert.equal(all.code, 0);
    const lines = all.stdout.trim().split("\n");
    assert.ok(lines.some((line) => /started: listening on/.test(line)));
    assert.match(lines.at(-1)!, /INFO .* stopped$/);
    const two = await h.run(["logs", "-n", "2"]);
    assert.deepEqual(two.stdout.trim().split("\n"), all.stdout.trim().split("\n").slice(-2));
    const asJson = json<{ lines: string[] }>(await h.run(["logs", "-n", "1", "--json"]));
    assert.equal(asJson.lines.length, 1);
    assert.match(asJson.lines[0], /stopped$/);
  });
});

Deno.test("bad input: exit 64 with a one-line reason and a usage hint", async () => {
  const cases: [string[], RegExp][] = [
    [["start", "--port", "abc"], /invalid --port "abc"/],
    [["start", "--port", "0"], /invalid --port "0"/],
    [["start", "--port", "70000"], /invalid --port "70000"/],
    [["start", "--bogus"], /unknown option "--bogus"/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["stop", "--timeout", "soon"], /invalid --timeout "soon"/],
    [["kill", "--signal", "NOPE"], /unknown signal "NOPE"/],
    [["logs", "--lines=-3"], /invalid -n "-3"/],
    [["logs", "-n", "-3"], /option -n got a value starting with "-"/],
    [["start", "--port"], /option --port needs a value/],
    [["status", "extra"], /unexpected argument "extra"/],
  ];
  for (const [args, message] of cases) {
    const result = await courier(["--home", "/nonexistent-courier-home", ...args]);
    assert.equal(result.code, 64, `${args.join(" ")}: ${result.stderr}`);
    const [first, hint] = result.stderr.trim().split("\n");
    assert.match(first, message);
    assert.match(hint, /Run 'courier .*--help' for usage\./);
  }
  const env = await courier(["start", "--home", "/nonexistent-courier-home"], {
    env: { COURIER_PORT: "http" },
  });
  assert.equal(env.code, 64);
  assert.match(env.stderr, /invalid COURIER_PORT "http"/);
});

Deno.test("a home that cannot be created gives exit 3 with the path", async () => {
  await withHome(async (h) => {
    const file = h.sibling("a-file");
    await Deno.writeTextFile(file, "not a directory");
    const result = await courier([
      "start",
      "--home",
      `${file}/home`,
      "--port",
      String(await leaseTestPort()),
    ]);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, new RegExp(`Cannot create or write the courier home ${file}/home`));
  });
});

Deno.test("--version and --help", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const version = await courier(["--version"]);
  assert.equal(version.stdout, `courier ${config.version}\n`);
  const help = await courier(["--help"]);
  assert.equal(help.code, 0);
  for (const name of ["start", "stop", "restart", "status", "kill", "logs"]) {
    assert.match(help.stdout, new RegExp(`^  ${name} `, "m"));
  }
  assert.doesNotMatch(help.stdout, /^ {2}daemon /m, "internal commands are hidden");
  const startHelp = await courier(["start", "--help"]);
  assert.match(startHelp.stdout, /--port N\|auto/);
  assert.match(startHelp.stdout, /--foreground/);
});

Deno.test("--port auto leases the preferred port for the daemon's PID and gives it back on stop", async () => {
  await withHome(async (h) => {
    const preferred = await leaseTestPort();
    const env = { COURIER_PORT: String(preferred) };
    const started = await h.run(["start", "--port", "auto", "--json"], { env });
    assert.equal(started.code, 0, started.stderr);
    const info = json<{ pid: number; port: number }>(started);
    assert.equal(info.port, preferred);
    const leases = json<{ leases: { port: number; owner: { pid: number }; alive: boolean }[] }>(
      await h.run(["port", "list", "--json"]),
    ).leases;
    assert.deepEqual(leases.map((l) => [l.port, l.owner.pid, l.alive]), [[
      preferred,
      info.pid,
      true,
    ]]);
    assert.equal((await h.run(["stop"])).code, 0);
    assert.deepEqual(
      json<{ leases: unknown[] }>(await h.run(["port", "list", "--json"])).leases,
      [],
    );
  });
});

Deno.test("--port auto keeps the preferred port when only TIME_WAIT sockets are left on it", async () => {
  await withHome(async (h) => {
    const preferred = await leaseTestPort();
    // What a daemon that served connections and stopped leaves behind on its port.
    await makeTimeWait(preferred);
    const started = await h.run(["start", "--port", "auto", "--json"], {
      env: { COURIER_PORT: String(preferred) },
    });
    assert.equal(started.code, 0, started.stderr);
    assert.equal(json<{ port: number }>(started).port, preferred);
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("--port auto falls back to the lease range when the preferred port is taken", async () => {
  await withHome(async (h) => {
    const preferred = await leaseTestPort();
    const holder = Deno.listen({ hostname: "127.0.0.1", port: preferred });
    try {
      const started = await h.run(["start", "--port", "auto", "--json"], {
        env: { COURIER_PORT: String(preferred) },
      });
      assert.equal(started.code, 0, started.stderr);
      const { port } = json<{ port: number }>(started);
      assert.notEqual(port, preferred);
      assert.ok(port >= 10000 && port <= 10999, `port ${port} is in the default lease range`);
      assert.equal((await h.run(["stop"])).code, 0);
    } finally {
      holder.close();
    }
  });
});

Deno.test("logs --follow prints lines as the daemon writes them", async () => {
  await withHome(async (h) => {
    const { command, args } = courierCommand(["logs", "--follow", "--home", h.home]);
    const follower = new Deno.Command(command, { args, stdout: "piped", stderr: "null" }).spawn();
    const reader = follower.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      // The start lines arrive either as history or as followed lines; the stop lines can only
      // arrive by following, since the follower has printed before the daemon is stopped.
      let text = "";
      let started = false;
      while (!/started: listening on/.test(text)) {
        if (!started) {
          started = true;
          assert.equal((await h.run(["start", "--port", String(await leaseTestPort())])).code, 0);
        }
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      assert.match(text, /INFO .*started: listening on/);
      assert.equal((await h.run(["stop"])).code, 0);
      while (!/INFO .* stopped\n/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      assert.match(text, /stopping \(SIGTERM\)/);
    } finally {
      reader.releaseLock();
      follower.kill("SIGTERM");
      await follower.status;
      await follower.stdout.cancel().catch(() => {});
    }
  });
});
