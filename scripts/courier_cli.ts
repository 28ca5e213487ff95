/**
 * Running the courier CLI from the benchmark scripts: `deno run` of this
 * checkout's `main.ts`, as a real process.
 *
 * @module
 */
import { selfCommand, sourceRunMode } from "../lib/proc/mod.ts";

const MAIN_URL = new URL("../main.ts", import.meta.url).href;

/** What a CLI run printed and returned. */
export interface CliResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/**
 * Runs `courier args…` to completion (no colour); with `prefix`, under that
 * command (`["prlimit", "--nofile=512:512"]`).
 */
export async function runCourier(args: string[], prefix: string[] = []): Promise<CliResult> {
  const self = selfCommand(args, { mode: sourceRunMode(MAIN_URL) });
  const [command, ...rest] = [...prefix, self.command, ...self.args];
  const out = await new Deno.Command(command, {
    args: rest,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}
