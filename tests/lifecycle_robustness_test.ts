import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { readProcessIdentity, waitForExit } from "../lib/proc/mod.ts";
import {
  type DaemonExtension,
  type DaemonState,
  getStatus,
  tryAcquireInstanceLock,
} from "../lib/service/mod.ts";
import {
  authedFetch,
  courierCommand,
  json,
  runDaemonInProcess,
  withHome,
} from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

/** Runs `deno eval script` and returns once it has printed "up". */
async function spawnUp(script: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  assert.equal(new TextDecoder().decode((await reader.read()).value).trim(), "up");
  reader.releaseLock();
  return child;
}

Deno.test("a port held on IPv4 by another process: exit 4 naming its PID and command line", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    const holder = await spawnUp(
      `Deno.listen({ hostname: "127.0.0.1", port: ${port} }); console.log("up"); setTimeout(() => {}, 60000);`,
    );
    try {
      const result = await h.run(["start", "--port", String(port)]);
      assert.equal(result.code, 4, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`Port ${port} is already in use by PID ${holder.pid} \\(.*deno eval .*\\)`),
      );
      assert.equal(await exists(homeLayout(h.home).pidFile), false);
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
      await holder.stdout.cancel().catch(() => {});
    }
  });
});

const hasIpv6 = (() => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "a port held only on ::1 counts as taken for a loopback start",
  ignore: !hasIpv6, // no IPv6 loopback on this machine: nothing to compete with
  async fn() {
    const port = await leaseTestPort();
    const listener = Deno.listen({ hostname: "::1", port });
    try {
      await withHome(async (h) => {
        const result = await h.run(["start", "--port", String(port)]);
        assert.equal(result.code, 4, result.stderr);
        assert.match(
          result.stderr,
          new RegExp(`Port ${port} is already in use by PID ${Deno.pid} `),
        );
      });
    } finally {
      listener.close();
    }
  },
});

Deno.test("SIGKILL leaves state that status calls stale and start recovers from", async () => {
  await withHome(async (h) => {
    const first = json<{ pid: number }>(
      await h.run(["start", "--port", String(await leaseTestPort()), "--json"]),
    );
    const identity = (await readProcessIdentity(first.pid))!;
    Deno.kill(first.pid, "SIGKILL"); // the PID this test started
    assert.equal(await waitForExit(identity, { timeoutMs: 5000 }), true);

    const stale = await h.run(["status", "--json"]);
    assert.equal(stale.code, 1);
    assert.equal(json(stale).state, "stale");
    assert.equal(json(stale).pid, first.pid);

    const second = await h.run(["start", "--port", String(await leaseTestPort()), "--json"]);
    assert.equal(second.code, 0, second.stderr);
    const { pid } = json<{ pid: number }>(second);
    assert.equal(await Deno.readTextFile(homeLayout(h.home).pidFile), `${pid}\n`);
    assert.match(
      await Deno.readTextFile(homeLayout(h.home).logFile),
      /removed stale .*courier\.pid/,
    );
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("a reused PID is never trusted: status says stale, stop and kill signal nothing", async () => {
  await withHome(async (h) => {
    const started = json<{ pid: number }>(
      await h.run(["start", "--port", String(await leaseTestPort()), "--json"]),
    );
    const layout = homeLayout(h.home);
    const state: DaemonState = JSON.parse(await Deno.readTextFile(layout.stateFile));
    const identity = (await readProcessIdentity(started.pid))!;
    Deno.kill(started.pid, "SIGKILL");
    await waitForExit(identity, { timeoutMs: 5000 });

    // Simulate PID reuse: the files now name a live process that is not our daemon.
    const stranger = new Deno.Command("sleep", { args: ["60"] }).spawn();
    try {
      await Deno.writeTextFile(layout.pidFile, `${stranger.pid}\n`);
      await Deno.writeTextFile(
        layout.stateFile,
        JSON.stringify({
          ...state,
          pid: stranger.pid,
          identity: { ...state.identity, pid: stranger.pid },
        }),
      );
      const status = await h.run(["status", "--json"]);
      assert.equal(status.code, 1);
      assert.equal(json(status).state, "stale");
      const stop = await h.run(["stop", "--timeout", "1"]);
      assert.equal(stop.code, 1);
      assert.match(stop.stderr, /Courier is not running/);
      const kill = await h.run(["kill"]);
      assert.equal(kill.code, 1);
      assert.notEqual(
        await readProcessIdentity(stranger.pid),
        null,
        "the stranger was not signalled",
      );
      assert.equal(await exists(layout.pidFile), false, "stale files are cleaned up");
    } finally {
      stranger.kill("SIGKILL");
      await stranger.status;
    }
  });
});

Deno.test("status never disturbs a start running at the same moment", async () => {
  await withHome(async (h) => {
    for (let round = 0; round < 3; round++) {
      let starting = true;
      const start = h.run(["start", "--port", String(await leaseTestPort())]).finally(
        () => (starting = false),
      );
      const statuses: number[] = [];
      while (starting) statuses.push((await h.run(["status"])).code);
      const result = await start;
      assert.equal(result.code, 0, `round ${round}: ${result.stderr}`);
      assert.ok(statuses.every((code) => [0, 1, 3, 4].includes(code)));
      assert.equal((await h.run(["stop"])).code, 0);
    }
  });
});

Deno.test("graceful stop: requests in flight finish, files go, the lock is released", async () => {
  await withHome(async (h) => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered: () => void = () => {};
    const inFlight = new Promise<void>((resolve) => (entered = resolve));
    const slow: DaemonExtension = {
      name: "slow",
      start: () => Promise.resolve(),
      async handle(_request, url) {
        if (url.pathname !== "/slow") return null;
        entered();
        await gate;
        return new Response("finished");
      },
      health: () => ({}),
      stop: () => Promise.resolve(),
    };
    const daemon = runDaemonInProcess({
      home: h.home,
      port: await leaseTestPort(),
      extensions: [slow],
    });
    const state = await daemon.ready;
    const response = authedFetch(h.home, `${state.api_url}/slow`);
    await inFlight;
    const stopped = daemon.stop(); // as SIGTERM does
    release();
    const answered = await response;
    assert.equal(answered.status, 200);
    assert.equal(await answered.text(), "finished");
    assert.equal(await stopped, 0);
    const layout = homeLayout(h.home);
    assert.equal(await exists(layout.pidFile), false);
    assert.equal(await exists(layout.stateFile), false);
    const lock = await tryAcquireInstanceLock(layout);
    assert.notEqual(lock, null, "the lock was released");
    lock?.release();
  });
});

Deno.test("SIGINT stops a background daemon cleanly", async () => {
  await withHome(async (h) => {
    const { pid } = json<{ pid: number }>(
      await h.run(["start", "--port", String(await leaseTestPort()), "--json"]),
    );
    const identity = (await readProcessIdentity(pid))!;
    Deno.kill(pid, "SIGINT");
    assert.equal(await waitForExit(identity, { timeoutMs: 10000 }), true);
    assert.equal(await exists(homeLayout(h.home).pidFile), false);
    assert.match(await Deno.readTextFile(homeLayout(h.home).logFile), /stopping \(SIGINT\)/);
  });
});

Deno.test("--foreground serves in this process and Ctrl-C (SIGINT) stops it with exit 0", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    const { command, args } = courierCommand([
      "start",
      "--foreground",
      "--json",
      "--home",
      h.home,
      "--port",
      String(port),
    ]);
    const child = new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("}")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const info = JSON.parse(text);
    assert.equal(info.pid, child.pid);
    assert.equal((await fetch(`${info.api_url}/health`).then((r) => r.json())).pid, child.pid);
    child.kill("SIGINT");
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    assert.equal(status.code, 0);
    assert.match(stderr, /started: listening on/, "the log is mirrored to stderr");
    assert.equal(await exists(homeLayout(h.home).pidFile), false);
  });
});

Deno.test("a daemon that fails after spawning: exit 1 with the reason and the last log lines", async () => {
  await withHome(async (h) => {
    const layout = homeLayout(h.home);
    // A PID file path that cannot be created (a non-empty directory in its place).
    await Deno.mkdir(`${layout.pidFile}/blocker`, { recursive: true });
    const result = await h.run(["start", "--port", String(await leaseTestPort())]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /courier: .*courier\.pid/);
    assert.match(result.stderr, /Last lines of .*courier\.log:/);
    assert.match(result.stderr, /ERROR .*start failed/);
  });
});

Deno.test("a lock holder without state is starting, then unhealthy once past the start limit", async () => {
  await withHome(async (h) => {
    const layout = homeLayout(h.home);
    await Deno.mkdir(layout.runDir, { recursive: true });
    // A daemon between taking the lock and listening: it holds the lock, serves nothing yet.
    const holder = await spawnUp(
      `const f = await Deno.open(${
        JSON.stringify(layout.lockFile)
      }, { read: true, write: true, create: true });
       await f.lock(true); console.log("up"); setTimeout(() => {}, 60000);`,
    );
    try {
      const fresh = await getStatus(layout);
      assert.equal(fresh.state, "starting");
      assert.equal(fresh.pid, holder.pid);
      const late = await getStatus(layout, { startingLimitS: 0 });
      assert.equal(late.state, "unhealthy");
      assert.match(
        late.reason!,
        new RegExp(`PID ${holder.pid} holds .*courier\\.lock but has written no state`),
      );
      // stop still finds it through the lock it holds.
      const stopped = await h.run(["stop", "--json"]);
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.equal((await holder.status).signal, "SIGTERM");
    } finally {
      try {
        holder.kill("SIGKILL");
      } catch {
        // stopped already
      }
      await holder.status;
      await holder.stdout.cancel().catch(() => {});
    }
  });
});
