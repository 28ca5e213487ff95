/**
 * A long-running courier process in a test (`mail work`, `mail watch`):
 * started in a {@link TestHome}, its stdout and stderr read line by line as
 * they come, waited for by pattern, signalled, and always ended.
 */
import { courier, courierCommand, type RunResult, type TestHome } from "./courier.ts";

/**
 * Runs `courier --home <home> args…` to completion, with the home's lease
 * registry: the home comes first, so that `--` in `args` ends courier's
 * options (`mail work … -- CMD`).
 */
export function runIn(home: TestHome, args: string[]): Promise<RunResult> {
  return courier(["--home", home.home, ...args], { env: { COURIER_LEASE_DIR: home.leaseDir } });
}

/** A courier process started by {@link CourierProcess.start}. */
export class CourierProcess {
  /** Lines printed on stdout so far. */
  readonly stdout: string[] = [];
  /** Lines printed on stderr so far. */
  readonly stderr: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;
  #status: Deno.CommandStatus | null = null;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#reading = Promise.all([
      readLines(child.stdout, this.stdout),
      readLines(child.stderr, this.stderr),
    ]).then(() => {});
    child.status.then((status) => this.#status = status);
  }

  /** Runs `courier --home <home> args…` (its own lease registry, `NO_COLOR`). */
  static start(
    home: TestHome,
    args: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ): CourierProcess {
    const { command, args: full } = courierCommand(["--home", home.home, ...args]);
    return new CourierProcess(
      new Deno.Command(command, {
        args: full,
        cwd: options.cwd,
        env: { NO_COLOR: "1", COURIER_LEASE_DIR: home.leaseDir, ...options.env },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn(),
    );
  }

  /** Its PID. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether it exited. */
  get exited(): boolean {
    return this.#status !== null;
  }

  /** Waits for a line of `stream` that matches `pattern` and returns it. */
  async line(
    stream: "stdout" | "stderr",
    pattern: RegExp,
    options: { timeoutMs?: number } = {},
  ): Promise<string> {
    const deadline = Date.now() + (options.timeoutMs ?? 20_000);
    for (;;) {
      const exited = this.exited;
      if (exited) await this.#reading;
      const found = this[stream].find((l) => pattern.test(l));
      if (found !== undefined) return found;
      if (exited || Date.now() > deadline) {
        throw new Error(
          `no ${stream} line matched ${pattern}${exited ? " (it exited)" : ""}\n` +
            `stdout:\n${this.stdout.join("\n")}\nstderr:\n${this.stderr.join("\n")}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Sends it `signal`. */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Waits for it to exit (all output read) and returns its exit code. */
  async exit(): Promise<number> {
    const status = await this.#child.status;
    await this.#reading;
    return status.code;
  }

  /** Kills it if it still runs, and waits (for `finally` blocks). */
  async end(): Promise<void> {
    if (!this.exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // it exited meanwhile
      }
    }
    await this.exit();
  }
}

async function readLines(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let end: number;
    while ((end = buffer.indexOf("\n")) >= 0) {
      into.push(buffer.slice(0, end));
      buffer = buffer.slice(end + 1);
    }
  }
  if (buffer !== "") into.push(buffer);
}
