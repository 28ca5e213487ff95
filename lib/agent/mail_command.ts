import { CourierError, ExitCode } from "../errors/mod.ts";
import { hasTool } from "../proc/mod.ts";

/** Lines of a command's stderr kept for the reason of a failed mail. */
export const STDERR_TAIL_LINES = 20;
/** The most of a command's stdout kept for a reply (the daemon takes 1 MiB a request). */
export const MAX_REPLY_BYTES = 900 * 1024;
const MAX_LINE_CHARS = 1000;

/** The command of a worker cannot be found or run. */
export class CommandNotRunnableError extends CourierError {
  /**
   * Creates a `CommandNotRunnableError`.
   *
   * @param command The program as given (`./triage.sh`).
   * @param why What is wrong (`no such file`, `not executable`…).
   * @param cause The spawn error, if any.
   */
  constructor(command: string, why: string, cause?: unknown) {
    super(`cannot run "${command}": ${why}`, {
      exitCode: ExitCode.Usage,
      cause,
      details: [`Give a program on PATH or a path to an executable file after --.`],
    });
    this.name = "CommandNotRunnableError";
  }
}

/**
 * Checks that `program` can be run: an executable file at that path when
 * it has a `/`, else one on `PATH`.
 *
 * @throws {CommandNotRunnableError} naming what is wrong.
 */
export async function assertRunnable(program: string): Promise<void> {
  if (!program.includes("/")) {
    if (!(await hasTool(program))) throw new CommandNotRunnableError(program, "not found on PATH");
    return;
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(program);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "no such file" : String(error);
    throw new CommandNotRunnableError(program, why, error);
  }
  if (!info.isFile) throw new CommandNotRunnableError(program, "not a file");
  if (info.mode !== null && (info.mode & 0o111) === 0) {
    throw new CommandNotRunnableError(program, `not executable (chmod +x ${program})`);
  }
}

/** Options of {@link spawnMailCommand}. */
export interface MailCommandOptions {
  /** Written to its stdin, which is then closed (the mail's JSON). */
  stdin: string;
  /** Added to the environment it inherits. */
  env: Record<string, string>;
  /** Keep its stdout (for a reply); otherwise it goes to this process's stdout. */
  captureStdout: boolean;
  /** Each line of its stderr as it comes (stderr is not otherwise shown). */
  onStderrLine?: (line: string) => void;
}

/** How a mail's command ended. */
export interface MailCommandResult {
  /** Its exit code; 128 + the signal number when a signal ended it. */
  code: number;
  /** The signal that ended it, if any. */
  signal: Deno.Signal | null;
  /** Its stdout, when captured (`null` when it was longer than {@link MAX_REPLY_BYTES}). */
  stdout: string | null;
  /** The last lines of its stderr (at most {@link STDERR_TAIL_LINES}). */
  stderrTail: string[];
  /** How long it ran, in ms. */
  durationMs: number;
}

/** A running command of a mail (see {@link spawnMailCommand}). */
export interface MailCommand {
  /** Its PID (also its process group). */
  readonly pid: number;
  /** Resolves once it exited and its output is read. */
  readonly result: Promise<MailCommandResult>;
  /** Sends `signal` to its process group (it and what it started); false when it is gone. */
  kill(signal: Deno.Signal): boolean;
}

/**
 * Starts `command` for one mail: the mail's JSON on stdin, `env` added to
 * its environment. It runs in a session and process group of its own, so
 * a Ctrl-C at the terminal reaches the worker alone, which decides what
 * the command gets ({@link MailCommand.kill}).
 *
 * @throws {CommandNotRunnableError} when it cannot be started.
 */
export function spawnMailCommand(
  command: readonly string[],
  options: MailCommandOptions,
): MailCommand {
  const [program, ...args] = command;
  const started = performance.now();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args,
      env: options.env,
      stdin: "piped",
      stdout: options.captureStdout ? "piped" : "inherit",
      stderr: "piped",
      detached: true,
    }).spawn();
  } catch (error) {
    throw new CommandNotRunnableError(program, String(error), error);
  }
  const feeding = feed(child.stdin, options.stdin);
  const stdout = options.captureStdout ? collect(child.stdout) : Promise.resolve(null);
  const tail: string[] = [];
  const stderr = readLines(child.stderr, (line) => {
    const kept = line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) + "…" : line;
    tail.push(kept);
    if (tail.length > STDERR_TAIL_LINES) tail.shift();
    options.onStderrLine?.(line);
  });
  const result = (async (): Promise<MailCommandResult> => {
    const [status, out] = await Promise.all([child.status, stdout, stderr, feeding]);
    return {
      code: status.code,
      signal: status.signal,
      stdout: out,
      stderrTail: tail,
      durationMs: Math.round(performance.now() - started),
    };
  })();
  return {
    pid: child.pid,
    result,
    kill(signal: Deno.Signal): boolean {
      try {
        Deno.kill(-child.pid, signal);
        return true;
      } catch {
        try {
          child.kill(signal);
          return true;
        } catch {
          return false;
        }
      }
    },
  };
}

/** Writes `text` and closes the stream; a command that does not read it is no error. */
async function feed(stream: WritableStream<Uint8Array>, text: string): Promise<void> {
  const writer = stream.getWriter();
  try {
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
  } catch {
    // It exited or closed its stdin without reading all of it: its business.
    await writer.abort().catch(() => {});
  }
}

/** The stream as text, or `null` past {@link MAX_REPLY_BYTES} (read to the end either way). */
async function collect(stream: ReadableStream<Uint8Array>): Promise<string | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size <= MAX_REPLY_BYTES) chunks.push(chunk);
  }
  if (size > MAX_REPLY_BYTES) return null;
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(all);
}

/** Calls `onLine` for each line of the stream (the last one even without a newline). */
async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let end: number;
    while ((end = buffer.indexOf("\n")) >= 0) {
      onLine(buffer.slice(0, end).replace(/\r$/, ""));
      buffer = buffer.slice(end + 1);
    }
  }
  if (buffer !== "") onLine(buffer);
}
