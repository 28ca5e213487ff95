/**
 * Running courier from a benchmark script: a source checkout's `main.ts`
 * under `deno run`, to completion.
 *
 * @module
 */
import { selfCommand, sourceRunMode } from "../lib/proc/mod.ts";

/** What a run printed and returned, and how long it took. */
export interface CourierRun {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** Wall time, ms. */
  ms: number;
}

/** This checkout's `main.ts`, as a URL. */
export const THIS_MAIN: string = new URL("../main.ts", import.meta.url).href;

/**
 * Runs `courier args…` of the checkout whose `main.ts` is at `main` (a URL),
 * to completion (no colour); with `prefix`, under that command
 * (`["prlimit", "--nofile=512:512"]`).
 */
export async function runCourier(
  main: string,
  args: string[],
  options: { prefix?: string[] } = {},
): Promise<CourierRun> {
  const self = selfCommand(args, { mode: sourceRunMode(main) });
  const [command, ...rest] = [...(options.prefix ?? []), self.command, ...self.args];
  const started = performance.now();
  const output = await new Deno.Command(command, {
    args: rest,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    ms: Math.round(performance.now() - started),
  };
}

/** `--main PATH` as a URL (relative to the working directory), else this checkout's. */
export function mainUrl(path: string | undefined): string {
  return path ? new URL(path, `file://${Deno.cwd()}/`).href : THIS_MAIN;
}

/**
 * Starts a daemon of `main` on `home` and `port` (with extra `start`
 * arguments) and returns its PID.
 *
 * @throws {Error} when `courier start` fails (with its stderr).
 */
export async function startCourier(
  main: string,
  home: string,
  port: number,
  extra: string[] = [],
): Promise<number> {
  const started = await runCourier(main, [
    "start",
    "--home",
    home,
    "--port",
    String(port),
    "--json",
    ...extra,
  ]);
  if (started.code !== 0) throw new Error(`courier start failed: ${started.stderr}`);
  return JSON.parse(started.stdout).pid as number;
}

/**
 * After a benchmark: sends SIGTERM to the daemon it started (when one is
 * still up), and removes its home unless `keep`.
 */
export async function cleanUp(pid: number | null, home: string, keep: boolean): Promise<void> {
  if (pid !== null) {
    try {
      Deno.kill(pid, "SIGTERM"); // the daemon this benchmark started
    } catch {
      // already gone
    }
  }
  if (!keep) await Deno.remove(home, { recursive: true }).catch(() => {});
  else console.error(`home kept: ${home}`);
}
