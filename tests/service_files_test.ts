/**
 * The systemd unit and launchd property list that `courier service install`
 * writes, for given options: their lines, `systemd-analyze --user verify` on
 * the unit, `plutil -lint` (or Python's plistlib) on the property list, the
 * quoting of paths with spaces, `%`, `$` and XML characters, names and
 * paths of services, what the managers' tools print, and the supervisor
 * marker a daemon reads.
 */
import assert from "node:assert/strict";
import { openLogger } from "../lib/log/mod.ts";
import type { RunMode } from "../lib/proc/mod.ts";
import {
  commandRunner,
  launchdPlist,
  locateService,
  parseLaunchctlPrint,
  parseProperties,
  serviceBaseName,
  serviceCommand,
  type ServiceSpec,
  supervisorFromEnv,
  systemdQuote,
  systemdUnit,
  systemdUserUnitDir,
  unitStateFrom,
} from "../lib/service_manager/mod.ts";

/** Runs a tool; `null` when it is not installed. */
async function run(command: string, args: string[], env: Record<string, string> = {}) {
  const result = await commandRunner({ env }).run([command, ...args]);
  return result.code === 127 && result.stderr.endsWith("not found on PATH") ? null : result;
}

const env = (values: Record<string, string>) => ({ get: (name: string) => values[name] });

function spec(mode: RunMode, home: string, manager: "systemd" | "launchd"): ServiceSpec {
  const name = manager === "systemd" ? "courier.service" : "dev.courier.courier";
  return {
    supervisor: { manager, name },
    command: serviceCommand({ home, host: "127.0.0.1", port: 8644, mode }),
    home,
    logFile: `${home}/log/courier.log`,
  };
}

const compiled = (execPath: string): RunMode => ({
  standalone: true,
  execPath,
  mainModule: "file:///courier/main.ts",
});

Deno.test("the systemd unit runs 'courier start --foreground' with the options, restarts on failure", () => {
  const text = systemdUnit(
    spec(compiled("/home/me/.local/bin/courier"), "/home/me/.courier", "systemd"),
  );
  const lines = text.split("\n");
  for (
    const line of [
      "[Unit]",
      "Description=Courier service (home /home/me/.courier)",
      "[Service]",
      "Type=exec",
      "Environment=COURIER_SUPERVISOR=systemd:courier.service",
      "ExecStart=/home/me/.local/bin/courier start --foreground --home /home/me/.courier " +
      "--host 127.0.0.1 --port 8644",
      "Restart=on-failure",
      "RestartSec=2",
      "RestartPreventExitStatus=2 3 4 64",
      "TimeoutStopSec=10",
      "[Install]",
      "WantedBy=default.target",
    ]
  ) assert.ok(lines.includes(line), `missing line: ${line}\n${text}`);
  assert.ok(text.endsWith("\n"));
});

Deno.test("the unit under deno run names deno, its permission flags, the config and main.ts", () => {
  const mode: RunMode = {
    standalone: false,
    execPath: "/usr/bin/deno",
    mainModule: "file:///src/courier/main.ts",
    configPath: "/src/courier/deno.json",
  };
  const text = systemdUnit(spec(mode, "/home/me/.courier", "systemd"));
  assert.match(
    text,
    /^ExecStart=\/usr\/bin\/deno run --quiet --no-prompt --allow-all --config \/src\/courier\/deno\.json \/src\/courier\/main\.ts start --foreground --home \/home\/me\/\.courier --host 127\.0\.0\.1 --port 8644$/m,
  );
});

Deno.test("systemdQuote: specifiers, variables, quotes and backslashes survive systemd's parsing", () => {
  assert.equal(systemdQuote("/usr/bin/courier"), "/usr/bin/courier");
  assert.equal(systemdQuote("a b"), '"a b"');
  assert.equal(systemdQuote("100%"), '"100%%"');
  assert.equal(systemdQuote("$HOME"), '"$$HOME"');
  assert.equal(systemdQuote("/opt/$x/courier", { executable: true }), '"/opt/$x/courier"');
  assert.equal(systemdQuote('say "hi"'), '"say \\"hi\\""');
  assert.equal(systemdQuote("back\\slash"), '"back\\\\slash"');
  assert.equal(systemdQuote(";"), '";"');
  assert.equal(systemdQuote(""), '""');
});

Deno.test("an executable path systemd cannot run is refused before anything is written", () => {
  for (const path of ['/opt/a"b/courier', "/opt/it's/courier", "/opt/a\\b/courier"]) {
    assert.throws(
      () => systemdUnit(spec(compiled(path), "/home/me/.courier", "systemd")),
      /systemd cannot run .*contains a quote or a backslash/,
    );
  }
});

Deno.test("a home path with a control character is refused (exit 64)", () => {
  assert.throws(
    () => serviceCommand({ home: "/tmp/a\nb", host: "127.0.0.1", port: 1, mode: compiled("/c") }),
    (error: Error & { exitCode?: number }) =>
      error.exitCode === 64 && /control character/.test(error.message),
  );
});

const SYSTEMD_ANALYZE = await run("systemd-analyze", ["--version"]);
const noAnalyze = SYSTEMD_ANALYZE === null
  ? "systemd-analyze is not installed (Debian: apt-get install systemd)"
  : SYSTEMD_ANALYZE.code !== 0
  ? `systemd-analyze --version exited ${SYSTEMD_ANALYZE.code}`
  : null;
if (noAnalyze) console.warn(`service_files_test: skipping systemd-analyze verify: ${noAnalyze}`);

Deno.test({
  name: `systemd-analyze --user verify accepts the unit, with awkward paths${
    noAnalyze ? ` (skipped: ${noAnalyze})` : ""
  }`,
  ignore: noAnalyze !== null,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "courier-unit-" });
    try {
      // verify checks that ExecStart's binary exists and is executable: give it one whose
      // path needs every kind of quoting, and a home that does too.
      const binDir = `${root}/my bin/100% $HOME`;
      await Deno.mkdir(binDir, { recursive: true });
      const binary = `${binDir}/courier`;
      await Deno.writeTextFile(binary, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      const home = `${root}/a home/%h $USER 'q' \\back`;
      const runtime = `${root}/runtime`;
      await Deno.mkdir(runtime, { mode: 0o700 });
      for (const name of ["courier.service", "courier-0123abcd.service"]) {
        const unit = `${root}/${name}`;
        const s = spec(compiled(binary), home, "systemd");
        await Deno.writeTextFile(
          unit,
          systemdUnit({ ...s, supervisor: { ...s.supervisor, name } }),
        );
        const result = await run("systemd-analyze", ["--user", "verify", unit], {
          XDG_RUNTIME_DIR: runtime,
          SYSTEMD_LOG_LEVEL: "notice",
        });
        assert.ok(result);
        assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
        assert.equal(result.stderr.trim(), "", result.stderr);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("the launchd agent: label, arguments, RunAtLoad, KeepAlive on failure, log paths", () => {
  const text = launchdPlist(
    spec(compiled("/Users/me/bin/courier"), "/Users/me/.courier", "launchd"),
  );
  const compact = text.replace(/\n\s*/g, "");
  for (
    const part of [
      "<key>Label</key><string>dev.courier.courier</string>",
      "<key>ProgramArguments</key><array><string>/Users/me/bin/courier</string>" +
      "<string>start</string><string>--foreground</string><string>--home</string>" +
      "<string>/Users/me/.courier</string><string>--host</string><string>127.0.0.1</string>" +
      "<string>--port</string><string>8644</string></array>",
      "<key>COURIER_SUPERVISOR</key><string>launchd:dev.courier.courier</string>",
      "<key>RunAtLoad</key><true/>",
      "<key>KeepAlive</key><dict><key>SuccessfulExit</key><false/><key>Crashed</key><true/></dict>",
      "<key>StandardOutPath</key><string>/Users/me/.courier/log/courier.log</string>",
      "<key>StandardErrorPath</key><string>/Users/me/.courier/log/courier.log</string>",
    ]
  ) assert.ok(compact.includes(part), `missing ${part}\n${text}`);
});

const PLUTIL = await run("plutil", ["-help"]);
const PYTHON = await run("python3", ["-c", "import plistlib"]);
const plistChecker = PLUTIL !== null ? "plutil" : PYTHON?.code === 0 ? "python3" : null;
const noPlistChecker = plistChecker ? null : "neither plutil nor python3 (plistlib) is available";
if (noPlistChecker) console.warn(`service_files_test: skipping plist parsing: ${noPlistChecker}`);

Deno.test({
  name: `the property list is valid and carries awkward paths intact (${
    plistChecker ?? `skipped: ${noPlistChecker}`
  })`,
  ignore: plistChecker === null,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "courier-plist-" });
    try {
      const home = `/Users/me/R&D <"new"> 'x' --`;
      const s = spec(compiled("/Applications/My Tools/courier"), home, "launchd");
      const path = `${root}/dev.courier.courier.plist`;
      await Deno.writeTextFile(path, launchdPlist(s));
      if (plistChecker === "plutil") {
        const lint = await run("plutil", ["-lint", path]);
        assert.equal(lint?.code, 0, `${lint?.stdout}${lint?.stderr}`);
      }
      const script = "import json, plistlib, sys\n" +
        "print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))";
      const parsed = PYTHON?.code === 0 ? await run("python3", ["-c", script, path]) : null;
      if (parsed) {
        assert.equal(parsed.code, 0, parsed.stderr);
        const plist = JSON.parse(parsed.stdout);
        assert.deepEqual(plist.ProgramArguments, [s.command.command, ...s.command.args]);
        assert.equal(plist.ProgramArguments[4], home);
        assert.equal(plist.StandardErrorPath, `${home}/log/courier.log`);
        assert.deepEqual(plist.KeepAlive, { SuccessfulExit: false, Crashed: true });
        assert.equal(plist.RunAtLoad, true);
        assert.equal(plist.EnvironmentVariables.COURIER_SUPERVISOR, "launchd:dev.courier.courier");
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("service names: courier for ~/.courier, courier-<hash> for any other home", async () => {
  const user = env({ HOME: "/home/me" });
  assert.equal(await serviceBaseName("/home/me/.courier", { env: user }), "courier");
  assert.equal(await serviceBaseName("/home/me/.courier/", { env: user }), "courier");
  const other = await serviceBaseName("/home/me/work/.courier", { env: user });
  assert.match(other, /^courier-[0-9a-f]{8}$/);
  assert.equal(await serviceBaseName("/home/me/work/.courier", { env: user }), other);
  assert.notEqual(await serviceBaseName("/home/me/play/.courier", { env: user }), other);

  const systemd = await locateService("/home/me/.courier", { manager: "systemd", env: user });
  assert.deepEqual(systemd, {
    supervisor: { manager: "systemd", name: "courier.service" },
    file: "/home/me/.config/systemd/user/courier.service",
  });
  const launchd = await locateService("/home/me/.courier", { manager: "launchd", env: user });
  assert.deepEqual(launchd, {
    supervisor: { manager: "launchd", name: "dev.courier.courier" },
    file: "/home/me/Library/LaunchAgents/dev.courier.courier.plist",
  });
  assert.equal(
    systemdUserUnitDir(env({ HOME: "/home/me", XDG_CONFIG_HOME: "/cfg/" })),
    "/cfg/systemd/user",
  );
  // A relative XDG_CONFIG_HOME is invalid and ignored.
  assert.equal(
    systemdUserUnitDir(env({ HOME: "/home/me", XDG_CONFIG_HOME: "cfg" })),
    "/home/me/.config/systemd/user",
  );
  await assert.rejects(() => serviceBaseName("/x", { env: env({}) }), /HOME is not set/);
});

Deno.test("systemctl show, loginctl and launchctl print output is read", () => {
  const state = unitStateFrom(parseProperties(
    "LoadState=loaded\nActiveState=failed\nSubState=failed\nUnitFileState=enabled\nMainPID=0\n" +
      "NRestarts=3\nResult=exit-code\nExecMainStatus=4\nExecMainCode=1\n",
  ));
  assert.deepEqual(state, {
    loadState: "loaded",
    activeState: "failed",
    subState: "failed",
    unitFileState: "enabled",
    mainPid: null,
    restarts: 3,
    result: "exit-code",
    exitStatus: 4,
    exitKind: "exited",
  });
  assert.equal(parseProperties("Linger=yes\n").Linger, "yes");
  const job = parseLaunchctlPrint(
    "gui/501/dev.courier.courier = {\n\tactive count = 1\n\tpath = /Users/me/x.plist\n" +
      "\tstate = running\n\n\tprogram = /Users/me/bin/courier\n\tendpoints = {\n" +
      "\t\tstate = inactive\n\t}\n\truns = 2\n\tpid = 4242\n\tlast exit code = 1\n}\n",
  );
  assert.deepEqual(job, { state: "running", pid: 4242, lastExitCode: 1, runs: 2 });
  assert.equal(parseLaunchctlPrint("\tlast exit code = (never exited)\n").lastExitCode, null);
});

Deno.test("the supervisor marker: only the value a unit writes counts", () => {
  assert.deepEqual(supervisorFromEnv(env({ COURIER_SUPERVISOR: "systemd:courier.service" })), {
    manager: "systemd",
    name: "courier.service",
  });
  assert.deepEqual(
    supervisorFromEnv(env({ COURIER_SUPERVISOR: "launchd:dev.courier.courier-0123abcd" })),
    { manager: "launchd", name: "dev.courier.courier-0123abcd" },
  );
  // systemd's and launchd's own variables are inherited by everything below a service.
  assert.equal(supervisorFromEnv(env({ INVOCATION_ID: "abc", JOURNAL_STREAM: "8:1" })), null);
  assert.equal(supervisorFromEnv(env({ XPC_SERVICE_NAME: "com.apple.Terminal" })), null);
  for (const bad of ["", "systemd", "upstart:x", "systemd:a b", "systemd:x;rm"]) {
    assert.equal(supervisorFromEnv(env({ COURIER_SUPERVISOR: bad })), null, bad);
  }
});

Deno.test("a supervised logger writes stderr only, and rotates in place (launchd holds the file)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "courier-log-" });
  try {
    const path = `${dir}/courier.log`;
    await Deno.writeTextFile(path, "x".repeat(100) + "\n");
    const before = (await Deno.stat(path)).ino;
    const log = openLogger(path, { stderrOnly: true, rotateBytes: 10 });
    log.close();
    assert.equal((await Deno.stat(path)).ino, before, "same file: launchd's handle stays valid");
    assert.equal(await Deno.readTextFile(path), "");
    assert.equal(await Deno.readTextFile(`${path}.1`), "x".repeat(100) + "\n");
    // And the lines go to stderr, not the file: run one in a child to see.
    const code = `import { openLogger } from ${
      JSON.stringify(new URL("../lib/log/mod.ts", import.meta.url).href)
    };
      const log = openLogger(${
      JSON.stringify(path)
    }, { stderrOnly: true }); log.info("hello"); log.close();`;
    const child = await run(Deno.execPath(), ["eval", code]);
    assert.ok(child);
    assert.equal(child.code, 0, child.stderr);
    assert.match(child.stderr, /INFO {2}pid=\d+ hello\n$/);
    assert.equal(await Deno.readTextFile(path), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
