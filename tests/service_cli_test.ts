/**
 * `courier service install|uninstall|status` and the supervised daemon,
 * against a fake `systemctl`/`loginctl`/`journalctl`/`launchctl` on `PATH`
 * that records its calls and runs the unit's command line as systemd would
 * (see `helpers/fake_service_manager.ts`). Real daemons, temporary homes,
 * leased ports; the user's own unit directory is never touched (`HOME` and
 * `XDG_CONFIG_HOME` point into the test's scratch root).
 */
import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { getStatus } from "../lib/service/mod.ts";
import { installService, uninstallService } from "../lib/supervise/mod.ts";
import { locateService, SUPERVISOR_ENV } from "../lib/service_manager/mod.ts";
import { sourceRunMode } from "../lib/proc/mod.ts";
import {
  courier,
  courierCommand,
  json,
  type RunResult,
  TestHome,
  withHome,
} from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";
import { FakeServiceManager } from "./helpers/service_manager.ts";

/** The cache Deno uses now: the daemons run with another `HOME` and must find it. */
const DENO_DIR = JSON.parse(
  new TextDecoder().decode(
    (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
      .output()).stdout,
  ),
).denoDir as string;

interface Setup {
  home: TestHome;
  fake: FakeServiceManager;
  env: Record<string, string>;
  unitDir: string;
  run(args: string[], extra?: Record<string, string>): Promise<RunResult>;
}

async function setup(home: TestHome): Promise<Setup> {
  const fake = await FakeServiceManager.create(home.sibling("manager"));
  const env = {
    ...fake.env(),
    HOME: home.sibling("user"),
    XDG_CONFIG_HOME: home.sibling("config"),
    DENO_DIR,
  };
  await Deno.mkdir(env.HOME, { recursive: true });
  return {
    home,
    fake,
    env,
    unitDir: `${env.XDG_CONFIG_HOME}/systemd/user`,
    run: (args, extra) => home.run(args, { env: { ...env, ...extra } }),
  };
}

function assertOk(result: RunResult, what: string): void {
  assert.equal(result.code, 0, `${what}: exit ${result.code}\n${result.stdout}\n${result.stderr}`);
}

Deno.test("service install writes a systemd user unit, enables it, and the daemon it runs is supervised", async () => {
  await withHome(async (home) => {
    const t = await setup(home);
    const port = await leaseTestPort();
    const installed = await t.run(["service", "install", "--port", String(port)]);
    assertOk(installed, "install");
    const location = await locateService(home.home, { manager: "systemd", env: toReader(t.env) });
    const unit = location.supervisor.name;
    assert.match(unit, /^courier-[0-9a-f]{8}\.service$/);
    assert.equal(location.file, `${t.unitDir}/${unit}`);
    const text = await Deno.readTextFile(location.file);
    assert.match(text, new RegExp(`--home ${home.home} --host 127.0.0.1 --port ${port}\n`));
    assert.match(text, new RegExp(`^Environment=${SUPERVISOR_ENV}=systemd:${unit}$`, "m"));
    assert.deepEqual(await t.fake.changes(), [
      "systemctl --user daemon-reload",
      `systemctl --user enable --now ${unit}`,
    ]);
    assert.match(installed.stdout, new RegExp(`^Wrote ${location.file}:`, "m"));
    assert.match(installed.stdout, new RegExp(`^Ran: systemctl --user enable --now ${unit}$`, "m"));
    assert.match(installed.stdout, /Lingering is off: .*loginctl enable-linger/s);

    const status = json<{ supervisor: { manager: string; name: string }; pid: number }>(
      await t.run(["status", "--json"]),
    );
    assert.deepEqual(status.supervisor, { manager: "systemd", name: unit });
    assert.match((await t.run(["status"])).stdout, new RegExp(`run by +systemd \\(${unit}\\)`));

    // The supervised daemon logs to stderr (the fake's journal), not to the log file.
    const layout = homeLayout(home.home);
    const logFile = await Deno.readTextFile(layout.logFile).catch(() => "");
    assert.doesNotMatch(logFile, new RegExp(`pid=${status.pid} started`));
    const logs = await t.run(["logs", "-n", "50"]);
    assertOk(logs, "logs");
    assert.match(logs.stdout, new RegExp(`pid=${status.pid} started: listening`));
    assert.ok(
      (await t.fake.calls()).some(([tool, ...args]) =>
        tool === "journalctl" && args.join(" ").startsWith(`--user --unit ${unit} --output cat`)
      ),
    );

    const report = json<Record<string, unknown>>(await t.run(["service", "status", "--json"]));
    assert.equal(report.installed, true);
    assert.equal(report.active, true);
    assert.equal(report.pid, status.pid);
    assert.equal(report.linger, false);
    assert.equal((report.courier as { state: string }).state, "running");

    // Idempotent: the same options again change nothing.
    await t.fake.clearCalls();
    const mtime = (await Deno.stat(location.file)).mtime?.getTime();
    const again = await t.run(["service", "install", "--port", String(port)]);
    assertOk(again, "second install");
    assert.match(again.stdout, /already installed, nothing changed/);
    assert.deepEqual(await t.fake.changes(), []);
    assert.equal((await Deno.stat(location.file)).mtime?.getTime(), mtime);
    assert.equal(json<{ pid: number }>(await t.run(["status", "--json"])).pid, status.pid);

    // Other options: the unit is rewritten and the daemon restarted on the new port.
    const port2 = await leaseTestPort();
    const changed = json<{ pid: number; api_url: string; written: boolean }>(
      await t.run(["service", "install", "--port", String(port2), "--json"]),
    );
    assert.equal(changed.written, true);
    assert.notEqual(changed.pid, status.pid);
    assert.equal(changed.api_url, `http://127.0.0.1:${port2}`);
    assert.deepEqual(await t.fake.changes(), [
      "systemctl --user daemon-reload",
      `systemctl --user restart ${unit}`,
    ]);

    // stop tells systemd (so it does not start it again), start goes through it.
    await t.fake.clearCalls();
    assertOk(await t.run(["stop"]), "stop");
    assert.deepEqual(await t.fake.changes(), [`systemctl --user stop --no-block ${unit}`]);
    assert.equal((await getStatus(layout)).state, "stopped");
    await t.fake.clearCalls();
    const started = await t.run(["start"]);
    assertOk(started, "start");
    assert.match(started.stdout, new RegExp(`^Courier started by systemd \\(${unit}\\)`));
    assert.deepEqual(await t.fake.changes(), [
      `systemctl --user reset-failed ${unit}`,
      `systemctl --user start ${unit}`,
    ]);
    const restarted = await getStatus(layout);
    assert.equal(restarted.state, "running");
    assert.equal(restarted.port, port2);

    // Uninstall stops it and removes the unit; a second uninstall finds nothing.
    await t.fake.clearCalls();
    const removed = await t.run(["service", "uninstall"]);
    assertOk(removed, "uninstall");
    assert.deepEqual(await t.fake.changes(), [
      `systemctl --user disable --now ${unit}`,
      "systemctl --user daemon-reload",
      `systemctl --user reset-failed ${unit}`,
    ]);
    assert.equal(await Deno.stat(location.file).then(() => true, () => false), false);
    assert.equal((await getStatus(layout)).state, "stopped");
    const nothing = await t.run(["service", "uninstall"]);
    assertOk(nothing, "second uninstall");
    assert.match(nothing.stdout, /No courier service is installed/);
    const none = await t.run(["service", "status"]);
    assert.equal(none.code, 1);
    assert.match(none.stdout, /not installed/);
  });
});

Deno.test("service install hands over a daemon started outside it; stop after a crash tells systemd", async () => {
  await withHome(async (home) => {
    const t = await setup(home);
    const port = await leaseTestPort();
    const plain = json<{ pid: number }>(await t.run(["start", "--port", String(port), "--json"]));
    const installed = json<{ pid: number; stopped: { pid: number } }>(
      await t.run(["service", "install", "--port", String(port), "--json"]),
    );
    assert.equal(installed.stopped.pid, plain.pid);
    assert.notEqual(installed.pid, plain.pid);
    // After a crash, systemd would start it again: stop tells it not to, though none runs.
    Deno.kill(installed.pid, "SIGKILL");
    await t.fake.clearCalls();
    const stop = await t.run(["stop"]);
    assert.equal(stop.code, 1, stop.stderr);
    assert.match(stop.stderr, /Courier is not running \(removed stale files naming PID/);
    const unit = (await locateService(home.home, { manager: "systemd", env: toReader(t.env) }))
      .supervisor.name;
    assert.deepEqual(await t.fake.changes(), [`systemctl --user stop --no-block ${unit}`]);
    assertOk(await t.run(["service", "uninstall"]), "uninstall");
  });
});

Deno.test("service install refuses a port held by another program and changes nothing", async () => {
  await withHome(async (home) => {
    const t = await setup(home);
    const port = await leaseTestPort();
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      const result = await t.run(["service", "install", "--port", String(port)]);
      assert.equal(result.code, 4, result.stderr);
      assert.match(result.stderr, new RegExp(`Port ${port} is already in use by PID ${Deno.pid}`));
      assert.deepEqual(await t.fake.changes(), []);
      assert.deepEqual(
        [...Deno.readDirSync(home.root)].map((e) => e.name).includes("config"),
        false,
      );
    } finally {
      listener.close();
    }
  });
});

Deno.test("service install and uninstall report usage errors and a missing user manager", async () => {
  await withHome(async (home) => {
    const t = await setup(home);
    const bad = await t.run(["service", "install", "--port", "70000"]);
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /invalid --port "70000"/);
    const unknown = await t.run(["service", "reinstall"]);
    assert.equal(unknown.code, 64);
    // A systemctl that cannot reach a user manager: nothing is written.
    const broken = `${home.sibling("broken")}`;
    await Deno.mkdir(broken);
    await Deno.writeTextFile(
      `${broken}/systemctl`,
      "#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n",
      { mode: 0o755 },
    );
    const result = await t.run(["service", "install"], {
      PATH: `${broken}:${t.env.PATH}`,
    });
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /systemctl --user show --property=Version' failed .*No medium found/,
    );
    assert.match(result.stderr, /No systemd user manager answers/);
    assert.equal(await Deno.stat(t.unitDir).then(() => true, () => false), false);
  });
});

Deno.test("courier stop on a daemon run by launchd boots the agent out, then stops it", async () => {
  await withHome(async (home) => {
    const t = await setup(home);
    const port = await leaseTestPort();
    const label = "dev.courier.courier-0123abcd";
    const { command, args } = courierCommand([
      "start",
      "--foreground",
      "--home",
      home.home,
      "--port",
      String(port),
    ]);
    const daemon = new Deno.Command(command, {
      args,
      env: { ...t.env, [SUPERVISOR_ENV]: `launchd:${label}` },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const layout = homeLayout(home.home);
    try {
      let status = await getStatus(layout);
      for (let i = 0; i < 400 && status.state !== "running"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        status = await getStatus(layout);
      }
      assert.deepEqual(status.supervisor, { manager: "launchd", name: label });
      const stopped = await t.run(["stop"]);
      assertOk(stopped, "stop");
      assert.deepEqual(await t.fake.changes(), [`launchctl bootout gui/${Deno.uid()}/${label}`]);
    } finally {
      const output = await daemon.output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      // Supervised: the log went to stderr (launchd appends it to the log file), only there.
      assert.match(stderr, /started: listening on/);
      assert.equal(new TextDecoder().decode(output.stdout), "");
      assert.equal(await Deno.stat(layout.logFile).then(() => true, () => false), false);
    }
  });
});

Deno.test("a supervised daemon that cannot start exits with the README's code and says why", async () => {
  await withHome(async (home) => {
    const port = await leaseTestPort();
    const supervised = (homeDir: string) =>
      courier(["start", "--foreground", "--home", homeDir, "--port", String(port)], {
        env: { [SUPERVISOR_ENV]: "systemd:courier-0123abcd.service" },
      });
    // Home unusable: 3.
    const noHome = await supervised("/proc/self/no/such/home");
    assert.equal(noHome.code, 3, noHome.stderr);
    assert.match(
      noHome.stderr,
      /WARN {2}pid=\d+ start refused: Cannot create or write the courier home/,
    );
    // Port in use: 4.
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      const busy = await supervised(home.home);
      assert.equal(busy.code, 4, busy.stderr);
      assert.match(
        busy.stderr,
        new RegExp(`start failed: PortInUseError: Port ${port} is already in use`),
      );
    } finally {
      listener.close();
    }
    // Already running: 2.
    assertOk(await home.run(["start", "--port", String(port)]), "plain start");
    const twice = await supervised(home.home);
    assert.equal(twice.code, 2, twice.stderr);
    assert.match(twice.stderr, /start refused: Courier is already running/);
    assertOk(await home.run(["stop"]), "stop");
  });
});

Deno.test("launchd: install bootstraps the agent, reinstall changes nothing, new options reload it", async () => {
  await withHome(async (home) => {
    const t = await setup(home);
    const runner = t.fake.runner();
    const env = toReader(t.env);
    const mode = sourceRunMode(new URL("../main.ts", import.meta.url).href);
    const port = await leaseTestPort();
    const options = { home: home.home, port, manager: "launchd" as const, runner, env, mode };
    const first = await installService(options);
    const label = first.name;
    assert.match(label, /^dev\.courier\.courier-[0-9a-f]{8}$/);
    assert.equal(first.file, `${t.env.HOME}/Library/LaunchAgents/${label}.plist`);
    const target = `gui/${Deno.uid()}/${label}`;
    assert.deepEqual(await t.fake.changes(), [
      `launchctl enable ${target}`,
      `launchctl bootstrap gui/${Deno.uid()} ${first.file}`,
    ]);
    const layout = homeLayout(home.home);
    assert.deepEqual((await getStatus(layout)).supervisor, { manager: "launchd", name: label });

    await t.fake.clearCalls();
    const second = await installService(options);
    assert.equal(second.changed, false);
    assert.deepEqual(await t.fake.changes(), []);

    const port2 = await leaseTestPort();
    const third = await installService({ ...options, port: port2 });
    assert.equal(third.written, true);
    assert.equal(third.state.port, port2);
    assert.deepEqual(await t.fake.changes(), [
      `launchctl bootout ${target}`,
      `launchctl enable ${target}`,
      `launchctl bootstrap gui/${Deno.uid()} ${first.file}`,
    ]);

    await t.fake.clearCalls();
    const removed = await uninstallService({ home: home.home, manager: "launchd", runner, env });
    assert.equal(removed.removed, true);
    assert.equal(removed.stopped, third.state.pid);
    assert.deepEqual(await t.fake.changes(), [`launchctl bootout ${target}`]);
    assert.equal(await Deno.stat(first.file).then(() => true, () => false), false);
    assert.equal((await getStatus(layout)).state, "stopped");
  });
});

function toReader(env: Record<string, string>): { get(name: string): string | undefined } {
  return { get: (name) => env[name] };
}
