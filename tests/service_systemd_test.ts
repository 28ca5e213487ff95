/**
 * End to end with a real systemd user manager: `courier service install`,
 * a `kill -9` of the daemon that systemd answers with a restart, `courier
 * stop` that systemd does not undo, `courier start` through systemd, and
 * `courier service uninstall`.
 *
 * The manager is a private `systemd --user` (its own XDG_RUNTIME_DIR and
 * unit directory) in a mount namespace whose /run/systemd is a fresh tmpfs
 * holding `system/`, which is how systemd tells it may run as a user
 * manager. That needs root (`unshare -m`) and the systemd package; where
 * either is missing, or the manager does not come up, the test is skipped
 * and says why.
 */
import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { getStatus } from "../lib/service/mod.ts";
import { commandRunner, parseProperties, type ToolRun } from "../lib/service_manager/mod.ts";
import { courier, json, type RunResult, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const decoder = new TextDecoder();

/** A private systemd user manager. */
class UserManager {
  readonly env: Record<string, string>;
  readonly #child: Deno.ChildProcess;

  private constructor(env: Record<string, string>, child: Deno.ChildProcess) {
    this.env = env;
    this.#child = child;
  }

  /** Starts one below `root`, or says why it cannot. */
  static async start(root: string): Promise<UserManager | string> {
    const env = { XDG_RUNTIME_DIR: `${root}/runtime`, XDG_CONFIG_HOME: `${root}/config` };
    await Deno.mkdir(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
    const script = "(mount -t tmpfs tmpfs /run/systemd 2>/dev/null || mount -t tmpfs tmpfs /run) " +
      "&& mkdir -p /run/systemd/system && exec systemd --user";
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command("unshare", {
        args: ["--mount", "--propagation", "private", "sh", "-c", script],
        env,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      return `cannot run unshare: ${(error as Error).message}`;
    }
    const manager = new UserManager(env, child);
    let exited = false;
    const status = child.status.then(() => (exited = true));
    for (let i = 0; i < 100 && !exited; i++) {
      const probe = await manager.systemctl("show", "--property=Version");
      if (probe.code === 0) return manager;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await manager.stop();
    await status;
    const stderr = decoder.decode(await new Response(child.stderr).arrayBuffer()).trim();
    return `systemd --user did not come up${stderr ? `: ${stderr.split("\n").at(-1)}` : ""}`;
  }

  /** Runs `systemctl --user …` against it. */
  systemctl(...args: string[]): Promise<ToolRun> {
    return commandRunner({ env: this.env }).run(["systemctl", "--user", ...args]);
  }

  /** What `systemctl --user show` says about `unit`. */
  async show(unit: string): Promise<Record<string, string>> {
    const result = await this.systemctl(
      "show",
      unit,
      "--property=ActiveState,SubState,Result,NRestarts,MainPID,LoadState",
    );
    return parseProperties(result.stdout);
  }

  /** Stops it (its units with it); kills it if it does not exit within 10 s. */
  async stop(): Promise<void> {
    await this.systemctl("exit").catch(() => {});
    const timer = setTimeout(() => {
      try {
        Deno.kill(this.#child.pid, "SIGKILL");
      } catch {
        // gone
      }
    }, 10_000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#child.stderr.cancel().catch(() => {});
  }
}

async function unavailable(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "systemd user units are Linux only";
  if (Deno.uid() !== 0) return "a private systemd --user needs root for unshare --mount";
  const root = await Deno.makeTempDir({ prefix: "courier-systemd-probe-" });
  try {
    const manager = await UserManager.start(root);
    if (typeof manager === "string") return manager;
    await manager.stop();
    return null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "systemd or unshare is not installed";
    return (error as Error).message;
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

const why = await unavailable();
if (why) console.warn(`service_systemd_test: skipping the end-to-end test: ${why}`);

async function until<T>(what: string, probe: () => Promise<T | null>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const value = await probe();
    if (value !== null) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function ok(result: RunResult, what: string): RunResult {
  assert.equal(result.code, 0, `${what}: exit ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result;
}

Deno.test({
  name: `systemd: install, kill -9 and see it restarted, stop stays stopped, start, uninstall${
    why ? ` (skipped: ${why})` : ""
  }`,
  ignore: why !== null,
  async fn() {
    await withHome(async (test) => {
      const started = await UserManager.start(test.sibling("manager"));
      if (typeof started === "string") throw new Error(started);
      const manager = started;
      try {
        // A home whose path needs systemd's quoting: a space, a specifier, a variable.
        const home = test.sibling("home 100% $HOME");
        const run = (args: string[]) => courier([...args, "--home", home], { env: manager.env });
        const port = await leaseTestPort();
        const installed = json<{ name: string; file: string; pid: number }>(
          ok(await run(["service", "install", "--port", String(port), "--json"]), "install"),
        );
        const unit = installed.name;
        assert.equal(installed.file, `${manager.env.XDG_CONFIG_HOME}/systemd/user/${unit}`);
        const layout = homeLayout(home);
        const first = await getStatus(layout);
        assert.equal(first.state, "running");
        assert.equal(first.home, home);
        assert.equal(first.pid, installed.pid);
        assert.deepEqual(first.supervisor, { manager: "systemd", name: unit });
        assert.equal((await manager.show(unit)).MainPID, String(installed.pid));

        // A crash: systemd starts it again.
        Deno.kill(installed.pid, "SIGKILL");
        const second = await until("the restarted daemon", async () => {
          const status = await getStatus(layout);
          return status.state === "running" && status.pid !== installed.pid ? status : null;
        });
        assert.equal((await manager.show(unit)).NRestarts, "1");
        assert.equal(second.port, port);

        // courier stop goes through systemd, which then leaves it stopped (not auto-restart).
        ok(await run(["stop"]), "stop");
        const stopped = await manager.show(unit);
        assert.deepEqual([stopped.ActiveState, stopped.SubState, stopped.Result], [
          "inactive",
          "dead",
          "success",
        ]);
        assert.equal((await getStatus(layout)).state, "stopped");
        const report = json<{ installed: boolean; active: boolean }>(
          await run(["service", "status", "--json"]),
        );
        assert.deepEqual([report.installed, report.active], [true, false]);

        // courier start starts the unit.
        const again = ok(await run(["start"]), "start");
        assert.match(again.stdout, new RegExp(`^Courier started by systemd \\(${unit}\\)`));
        assert.equal((await manager.show(unit)).ActiveState, "active");

        // A crash and a stop at once: whichever comes first, systemd ends up leaving it stopped.
        const third = await getStatus(layout);
        Deno.kill(third.pid!, "SIGKILL");
        const stop = await run(["stop"]);
        assert.ok([0, 1].includes(stop.code), `${stop.stdout}${stop.stderr}`);
        const after = await until("the unit to settle", async () => {
          const state = await manager.show(unit);
          return ["inactive", "failed"].includes(state.ActiveState) ? state : null;
        });
        assert.equal(after.SubState, after.ActiveState === "failed" ? "failed" : "dead");
        assert.equal(after.MainPID, "0");
        assert.equal((await getStatus(layout)).state, "stopped");

        ok(await run(["service", "uninstall"]), "uninstall");
        assert.equal(await Deno.stat(installed.file).then(() => true, () => false), false);
        assert.equal((await getStatus(layout)).state, "stopped");
        assert.equal((await manager.show(unit)).LoadState, "not-found");
      } finally {
        await manager.stop();
      }
    });
  },
});
