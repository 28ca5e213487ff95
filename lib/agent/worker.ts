import type { ClaimedMail } from "../mail/claiming.ts";
import type { MailClient } from "../mail/client.ts";
import {
  assertRunnable,
  type MailCommand,
  type MailCommandResult,
  spawnMailCommand,
} from "./mail_command.ts";
import { failureReason, isTransient, replyText } from "./outcome.ts";
import type { WorkerEvent, WorkerSummary } from "./worker_events.ts";

/** How long one claim-next waits at the daemon (its maximum). */
const POLL_WAIT_S = 60;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5000;

/** Options of {@link MailWorker}. */
export interface WorkerOptions {
  /** The agent id the worker claims as. */
  agentId: string;
  /** The command and its arguments, run once per mail. */
  command: readonly string[];
  /** Commands running at once at most (default 1). */
  concurrency?: number;
  /** Only this provider's mails. */
  provider?: string;
  /** Only this conversation's mails. */
  sessionId?: string;
  /** The claim's length in seconds (default: the daemon's); renewed every third of it. */
  timeoutS?: number;
  /** Queue the command's stdout, when not empty, as a reply to the mail's conversation. */
  reply?: boolean;
  /** Exit codes that fail a mail for good (dead letter) instead of for a retry. */
  noRetryCodes?: readonly number[];
  /** Added to the commands' environment (beside the `COURIER_MAIL_*` variables). */
  env?: Record<string, string>;
  /** Told what the worker does, one event per step (never a message's text). */
  onEvent?: (event: WorkerEvent) => void;
  /** Each line a command writes on stderr, with its mail's id. */
  onStderrLine?: (line: string, mailId: string) => void;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * An agent's worker loop: claims mails (long-polling claim-next), runs a
 * command for each with the mail's JSON on stdin, renews the claim while it
 * runs, and completes the mail when it exits 0 or fails it with the last
 * lines of its stderr otherwise; with `reply`, its stdout goes back to the
 * conversation as an outbound mail (`reply_to` set).
 *
 * The daemon may restart meanwhile: claims are renewed and mails settled
 * once it answers again. {@link MailWorker.stop} stops claiming and lets
 * running commands finish; {@link MailWorker.interrupt} passes a signal on
 * to them.
 *
 * @example
 * ```ts
 * const client = await MailClient.connect(homeLayout(resolveHome()));
 * const worker = new MailWorker(client, {
 *   agentId: "triage",
 *   command: ["./triage.sh"],
 *   reply: true,
 *   onEvent: (e) => console.error(JSON.stringify(e)),
 * });
 * Deno.addSignalListener("SIGTERM", () => worker.stop());
 * const summary = await worker.run();
 * ```
 */
export class MailWorker {
  readonly #client: MailClient;
  readonly #options: WorkerOptions;
  readonly #concurrency: number;
  readonly #stopping = new AbortController();
  readonly #hurry = new AbortController();
  #poll: AbortController | null = null;
  readonly #jobs = new Set<Promise<void>>();
  readonly #commands = new Map<string, MailCommand>();
  readonly #interrupted = new Set<string>();
  readonly #summary: WorkerSummary = { done: 0, failed: 0, released: 0, lost: 0 };
  readonly #stoppedPromise: Promise<void>;
  #fatal: unknown = null;
  #unreachable = false;
  #forwarded: Deno.Signal | null = null;

  /**
   * Creates a worker; {@link MailWorker.run} starts it.
   *
   * @param client A client of the daemon (made with `MailClient.connect`, so it finds a restarted daemon).
   * @param options The agent, the command and how to run it.
   */
  constructor(client: MailClient, options: WorkerOptions) {
    if (options.command.length === 0) throw new TypeError("a worker needs a command");
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`concurrency must be a whole number above 0, not ${concurrency}`);
    }
    this.#client = client;
    this.#options = options;
    this.#concurrency = concurrency;
    this.#stoppedPromise = new Promise((resolve) => {
      this.#stopping.signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  /** Commands running now. */
  get running(): number {
    return this.#commands.size;
  }

  /** Whether {@link MailWorker.stop} was called. */
  get stopping(): boolean {
    return this.#stopping.signal.aborted;
  }

  /**
   * Runs until {@link MailWorker.stop} (or a fatal error) and every
   * command started has finished and its mail is settled.
   *
   * @throws {CommandNotRunnableError} when the command cannot be run (checked first).
   * @throws {MailRequestError} when the daemon refuses the claims themselves (a bad provider).
   */
  async run(): Promise<WorkerSummary> {
    await assertRunnable(this.#options.command[0]);
    this.#emit({
      event: "started",
      agent_id: this.#options.agentId,
      concurrency: this.#concurrency,
      command: [...this.#options.command],
    });
    let backoff = BACKOFF_MIN_MS;
    while (!this.stopping) {
      while (this.#jobs.size >= this.#concurrency && !this.stopping) {
        await Promise.race([...this.#jobs, this.#stoppedPromise]);
      }
      if (this.stopping) break;
      this.#poll = new AbortController();
      let mail: ClaimedMail | null;
      try {
        mail = await this.#client.claimNext(this.#options.agentId, {
          provider: this.#options.provider,
          sessionId: this.#options.sessionId,
          waitS: POLL_WAIT_S,
          timeoutS: this.#options.timeoutS,
          signal: this.#poll.signal,
        });
        this.#reachable();
        backoff = BACKOFF_MIN_MS;
      } catch (error) {
        if (this.stopping) break;
        if (!isTransient(error)) {
          this.#fatal = error;
          this.stop();
          break;
        }
        this.#unreachableNow(error);
        await sleep(backoff, this.#stopping.signal);
        backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
        continue;
      } finally {
        this.#poll = null;
      }
      if (!mail) continue;
      if (this.stopping) {
        await this.#release(mail, "stopping: claimed as the worker stopped, never started");
        break;
      }
      const job = this.#work(mail).catch((error) => {
        this.#fatal ??= error;
        this.stop();
      }).finally(() => this.#jobs.delete(job));
      this.#jobs.add(job);
    }
    while (this.#jobs.size > 0) await Promise.all([...this.#jobs]);
    this.#emit({ event: "stopped", ...this.#summary });
    if (this.#fatal) throw this.#fatal;
    return { ...this.#summary };
  }

  /**
   * Stops claiming (a claim-next waiting at the daemon is cancelled; a mail
   * it got all the same is released) and lets running commands finish.
   */
  stop(): void {
    if (this.stopping) return;
    this.#stopping.abort();
    this.#poll?.abort();
    this.#emit({ event: "stopping", running: this.running });
  }

  /**
   * Passes `signal` on to every running command (its process group), and
   * stops retrying to settle mails with a daemon that does not answer: a
   * mail not settled then is left to its claim, which runs out.
   */
  interrupt(signal: Deno.Signal): number {
    this.stop();
    this.#hurry.abort();
    this.#forwarded = signal;
    let count = 0;
    for (const [id, command] of this.#commands) {
      if (command.kill(signal)) {
        this.#interrupted.add(id);
        count++;
      }
    }
    this.#emit({ event: "forwarded", signal, running: count });
    return count;
  }

  #emit(event: WorkerEvent): void {
    this.#options.onEvent?.(event);
  }

  #reachable(): void {
    if (!this.#unreachable) return;
    this.#unreachable = false;
    this.#emit({ event: "reachable" });
  }

  #unreachableNow(error: unknown): void {
    if (this.#unreachable) return;
    this.#unreachable = true;
    this.#emit({ event: "unreachable", reason: messageOf(error) });
  }

  /** One mail: run the command, renew the claim meanwhile, settle the mail. */
  async #work(mail: ClaimedMail): Promise<void> {
    const id = String(mail.id);
    const session = (mail.session ?? {}) as { id?: string };
    const timeoutS = this.#options.timeoutS ?? mail.claim.timeout_s;
    this.#emit({
      event: "claimed",
      id,
      provider: String(mail.provider),
      session_id: String(session.id ?? ""),
      attempts: Number((mail.delivery as { attempts?: number } | undefined)?.attempts ?? 0),
      expires_at: mail.claim.expires_at,
    });
    const beat = { settling: false };
    const stopHeartbeat = this.#heartbeat(id, timeoutS, beat);
    try {
      let command: MailCommand;
      try {
        command = spawnMailCommand(this.#options.command, {
          stdin: JSON.stringify(mail),
          env: {
            ...this.#options.env,
            COURIER_MAIL_ID: id,
            COURIER_MAIL_PROVIDER: String(mail.provider),
            COURIER_MAIL_SESSION: String(session.id ?? ""),
            COURIER_MAIL_PATH: String(mail.path ?? ""),
          },
          captureStdout: this.#options.reply ?? false,
          onStderrLine: (line) => this.#options.onStderrLine?.(line, id),
        });
      } catch (error) {
        await this.#release(mail, "the command could not be started");
        throw error;
      }
      this.#commands.set(id, command);
      let result: MailCommandResult;
      try {
        result = await command.result;
      } finally {
        this.#commands.delete(id);
      }
      beat.settling = true; // a refused renewal now is told by the settling itself
      await this.#settle(mail, result);
    } finally {
      stopHeartbeat();
      this.#interrupted.delete(id);
    }
  }

  async #settle(mail: ClaimedMail, result: MailCommandResult): Promise<void> {
    const id = String(mail.id);
    const agent = this.#options.agentId;
    if (result.code !== 0 && this.#interrupted.has(id)) {
      await this.#release(
        mail,
        `the command ended on the ${this.#forwarded ?? "signal"} passed on to it`,
        result.code,
      );
      return;
    }
    if (result.code === 0) {
      let replyId: string | undefined;
      if (this.#options.reply && result.stdout === null) {
        await this.#fail(mail, result, "its stdout is over 900 KiB, too long for a reply", true);
        return;
      }
      const text = this.#options.reply && result.stdout ? replyText(result.stdout) : "";
      if (text !== "") {
        const session = (mail.session ?? {}) as { id?: string };
        const sent = await this.#retrying(() =>
          this.#client.send(String(mail.provider), {
            to: String(session.id),
            text,
            reply_to: id,
          })
        );
        if (sent instanceof Error) {
          if (isTransient(sent)) return this.#lose(id, `not settled: ${sent.message}`);
          await this.#fail(mail, result, `the reply could not be queued: ${sent.message}`, true);
          return;
        }
        replyId = String(sent.id);
      }
      const done = await this.#retrying(() => this.#client.complete(id, agent));
      if (done instanceof Error) return this.#lose(id, done.message);
      this.#summary.done++;
      this.#emit({
        event: "done",
        id,
        exit_code: 0,
        duration_ms: result.durationMs,
        ...(replyId ? { reply_id: replyId } : {}),
      });
      return;
    }
    await this.#fail(mail, result, null, !(this.#options.noRetryCodes ?? []).includes(result.code));
  }

  async #fail(
    mail: ClaimedMail,
    result: MailCommandResult,
    why: string | null,
    retryable: boolean,
  ): Promise<void> {
    const id = String(mail.id);
    const reason = why ?? failureReason(result);
    const failed = await this.#retrying(
      () => this.#client.fail(id, this.#options.agentId, { reason, retryable }),
    );
    if (failed instanceof Error) return this.#lose(id, failed.message);
    this.#summary.failed++;
    this.#emit({
      event: "failed",
      id,
      exit_code: result.code,
      signal: result.signal,
      duration_ms: result.durationMs,
      status: failed.status === "dead" ? "dead" : "retrying",
      attempts: Number(failed.attempts ?? 0),
      ...(typeof failed.retry_at === "string" ? { retry_at: failed.retry_at } : {}),
      no_retry: !retryable,
      ...(why === null ? {} : { reason: why }),
    });
  }

  async #release(mail: ClaimedMail, reason: string, exitCode?: number): Promise<void> {
    const id = String(mail.id);
    const released = await this.#retrying(
      () => this.#client.release(id, this.#options.agentId),
    );
    if (released instanceof Error) return this.#lose(id, released.message);
    this.#summary.released++;
    this.#emit({
      event: "released",
      id,
      reason,
      ...(exitCode === undefined ? {} : { exit_code: exitCode }),
    });
  }

  #lose(id: string, reason: string): void {
    this.#summary.lost++;
    this.#emit({ event: "lost", id, reason });
  }

  /**
   * Calls `request` until the daemon answers it (it may be restarting):
   * the answer, or the error it refused with (or the last transient one,
   * once {@link MailWorker.interrupt} said not to wait any longer).
   */
  async #retrying(
    request: () => Promise<Record<string, unknown>>,
  ): Promise<Record<string, unknown> | Error> {
    let backoff = BACKOFF_MIN_MS;
    for (;;) {
      try {
        const answer = await request();
        this.#reachable();
        return answer;
      } catch (error) {
        if (!isTransient(error) || this.#hurry.signal.aborted) {
          return error instanceof Error ? error : new Error(String(error));
        }
        this.#unreachableNow(error);
        await sleep(backoff, this.#hurry.signal);
        backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
      }
    }
  }

  /**
   * Renews the claim on `id` every third of its length (sooner again after
   * the daemon did not answer) until the returned function is called.
   */
  #heartbeat(id: string, timeoutS: number, beat: { settling: boolean }): () => void {
    const stop = new AbortController();
    const every = Math.max(50, (timeoutS * 1000) / 3);
    (async () => {
      let wait = every;
      while (!stop.signal.aborted) {
        await sleep(wait, stop.signal);
        if (stop.signal.aborted) return;
        try {
          await this.#client.claim(id, this.#options.agentId, { timeoutS });
          this.#reachable();
          wait = every;
        } catch (error) {
          if (!isTransient(error)) {
            if (!stop.signal.aborted && !beat.settling) {
              this.#emit({ event: "renew_failed", id, reason: messageOf(error) });
            }
            return;
          }
          this.#unreachableNow(error);
          wait = Math.min(every, 1000);
        }
      }
    })();
    return () => stop.abort();
  }
}
