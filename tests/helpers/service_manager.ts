/**
 * The fake service manager of `fake_service_manager.ts` for tests:
 * `systemctl`, `loginctl`, `journalctl` and `launchctl` scripts in a
 * directory to put first on `PATH`, and what they were asked to do.
 */
import { commandRunner, type ToolRunner } from "../../lib/service_manager/mod.ts";

const FAKE = new URL("./fake_service_manager.ts", import.meta.url).pathname;
const TOOLS = ["systemctl", "loginctl", "journalctl", "launchctl"];
const QUERIES = new Set(["show", "print"]);

/** A fake service manager living in one directory. */
export class FakeServiceManager {
  /** Its state, call log and journals. */
  readonly dir: string;
  /** The directory of its tools. */
  readonly bin: string;

  private constructor(dir: string) {
    this.dir = dir;
    this.bin = `${dir}/bin`;
  }

  /** Creates one in `dir` (created if needed). */
  static async create(dir: string): Promise<FakeServiceManager> {
    const fake = new FakeServiceManager(dir);
    await Deno.mkdir(fake.bin, { recursive: true });
    const deno = Deno.execPath();
    for (const tool of TOOLS) {
      const script =
        `#!/bin/sh\nexec '${deno}' run --allow-all --no-config --quiet '${FAKE}' ${tool} "$@"\n`;
      await Deno.writeTextFile(`${fake.bin}/${tool}`, script, { mode: 0o755 });
    }
    return fake;
  }

  /** The environment that puts the fake tools first on `PATH`. */
  env(): Record<string, string> {
    return { PATH: `${this.bin}:${Deno.env.get("PATH") ?? ""}`, FAKE_SM_DIR: this.dir };
  }

  /** A runner that finds the fake tools. */
  runner(): ToolRunner {
    return commandRunner({ env: this.env() });
  }

  /** Every call so far, tool first. */
  async calls(): Promise<string[][]> {
    const text = await Deno.readTextFile(`${this.dir}/calls.jsonl`).catch(() => "");
    return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
  }

  /** The calls that change something (no `show`, `print`, `loginctl`, `journalctl`), as lines. */
  async changes(): Promise<string[]> {
    return (await this.calls())
      .filter(([tool, ...args]) =>
        (tool === "systemctl" || tool === "launchctl") &&
        !args.some((a) => QUERIES.has(a))
      )
      .map((argv) => argv.join(" "));
  }

  /** Forgets the calls so far. */
  async clearCalls(): Promise<void> {
    await Deno.remove(`${this.dir}/calls.jsonl`).catch(() => {});
  }
}
