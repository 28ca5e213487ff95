/**
 * Running courier in tests: the CLI as a real process, in a temporary home
 * that is torn down afterwards. Teardown stops only daemons whose home lies
 * in that temporary directory (so only PIDs this test started) and fails
 * the test if any was still running: a leaked daemon is a bug.
 */
import { homeLayout } from "../../lib/home/mod.ts";
import { readTokenFile } from "../../lib/http/mod.ts";
import {
  type DaemonOptions,
  type DaemonState,
  findDaemons,
  runDaemon,
} from "../../lib/service/mod.ts";
import {
  type CommandLine,
  selfCommand,
  signalIfSame,
  sourceRunMode,
  waitForExit,
} from "../../lib/proc/mod.ts";

/**
 * Where courier processes the tests start keep port leases unless a test
 * says otherwise: never the user's own registry.
 */
export const TEST_USER_LEASE_DIR: string = `${
  Deno.env.get("TMPDIR") ?? "/tmp"
}/courier-test-user-leases`;
if (!Deno.env.get("COURIER_LEASE_DIR")) Deno.env.set("COURIER_LEASE_DIR", TEST_USER_LEASE_DIR);

/** Absolute path of `main.ts`. */
export const MAIN: string = new URL("../../main.ts", import.meta.url).pathname;

/** What a CLI run printed and returned. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** The command line that runs courier under `deno run`. */
export function courierCommand(args: string[]): CommandLine {
  return selfCommand(args, { mode: sourceRunMode(new URL("../../main.ts", import.meta.url).href) });
}

/**
 * Runs `courier args…` to completion; with `prefix`, under that command
 * (`["prlimit", "--nofile=512"]`).
 */
export async function courier(
  args: string[],
  options: { env?: Record<string, string>; prefix?: string[] } = {},
): Promise<RunResult> {
  const self = courierCommand(args);
  const [command, ...full] = [...options.prefix ?? [], self.command, ...self.args];
  const output = await new Deno.Command(command, {
    args: full,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A temporary courier home (and a scratch root around it). */
export class TestHome {
  /** The scratch root: everything this test creates lives below it. */
  readonly root: string;
  /** The courier home, `<root>/home`. */
  readonly home: string;

  private constructor(root: string) {
    this.root = root;
    this.home = `${root}/home`;
  }

  /** Creates a fresh scratch root. */
  static async create(): Promise<TestHome> {
    return new TestHome(await Deno.makeTempDir({ prefix: "courier-test-" }));
  }

  /**
   * The port lease registry of the courier processes this test runs with
   * {@link run}: leases are per user, and a test is a user of its own.
   */
  get leaseDir(): string {
    return `${this.root}/leases`;
  }

  /** Runs courier with `--home` set to this home (and its own lease registry). */
  run(args: string[], options: { env?: Record<string, string> } = {}): Promise<RunResult> {
    return courier([...args, "--home", this.home], {
      env: { COURIER_LEASE_DIR: this.leaseDir, ...options.env },
    });
  }

  /** The home's API token (`<home>/run/api.token`), as every client must send it. */
  token(): Promise<string> {
    return apiToken(this.home);
  }

  /** Another home below the same root. */
  sibling(name: string): string {
    return `${this.root}/${name}`;
  }

  /**
   * Stops every daemon whose home lies below this root, removes the root,
   * and throws if any daemon was still running (a leak).
   */
  async cleanup(): Promise<void> {
    const leaked = await findDaemons({ within: this.root });
    await Promise.all(leaked.map(async (daemon) => {
      await signalIfSame(daemon.identity, "SIGKILL");
      await waitForExit(daemon.identity, { timeoutMs: 5000 });
    }));
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
    if (leaked.length > 0) {
      throw new Error(`test leaked courier daemons: ${leaked.map((d) => d.pid).join(", ")}`);
    }
  }
}

/** Runs `fn` with a fresh {@link TestHome}, always cleaning up. */
export async function withHome(fn: (home: TestHome) => Promise<void>): Promise<void> {
  const home = await TestHome.create();
  let failed = false;
  try {
    await fn(home);
  } catch (error) {
    failed = true;
    await home.cleanup().catch(() => {});
    throw error;
  } finally {
    if (!failed) await home.cleanup();
  }
}

/** Parses the JSON a `--json` command printed. */
export function json<T = Record<string, unknown>>(result: RunResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${result.code}): ${result.stdout}\nstderr: ${result.stderr}`);
  }
}

/** The API token of a courier home (`<home>/run/api.token`). */
export function apiToken(home: string): Promise<string> {
  return readTokenFile(homeLayout(home).tokenFile);
}

/**
 * `fetch` with the home's API token (and `Content-Type: application/json`
 * when there is a body), as courier's own clients send requests.
 */
export async function authedFetch(
  home: string,
  url: string,
  init: RequestInit = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${await apiToken(home)}`);
  if (init.body !== undefined && !headers.has("content-type")) {
    headers.set("content-type", "application/json");
  }
  return await fetch(url, { ...init, headers });
}

/** A daemon run in this process by {@link runDaemonInProcess}. */
export interface InProcessDaemon {
  /** Its state once it is ready; rejects with the reason when it does not start. */
  ready: Promise<DaemonState>;
  /** Stops it as SIGTERM does and resolves with its exit code. */
  stop(): Promise<number>;
}

/** Runs `runDaemon` in this process, for tests that give it their own services. */
export function runDaemonInProcess(
  options: Omit<DaemonOptions, "signal" | "reporter">,
): InProcessDaemon {
  const controller = new AbortController();
  let reporter: { ready: (state: DaemonState) => void; failed: (error: unknown) => void } = {
    ready() {},
    failed() {},
  };
  const ready = new Promise<DaemonState>((resolve, reject) => {
    reporter = { ready: resolve, failed: reject };
  });
  const exit = runDaemon({ ...options, signal: controller.signal, reporter });
  return {
    ready,
    stop() {
      controller.abort();
      return exit;
    },
  };
}
