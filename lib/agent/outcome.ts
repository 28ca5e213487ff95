/**
 * How a worker judges what happened: which errors pass (the daemon
 * restarting), what reason a failed command leaves, what its reply is.
 *
 * @module
 */
import { DaemonNotRunningError, MailRequestError } from "../mail/client.ts";
import type { MailCommandResult } from "./mail_command.ts";

/** Whether `error` may pass: the daemon is restarting, stopping, indexing or short of disk. */
export function isTransient(error: unknown): boolean {
  return error instanceof DaemonNotRunningError ||
    (error instanceof MailRequestError && error.status === 503);
}

/** The reason recorded for a mail whose command failed: the exit and its stderr's last lines. */
export function failureReason(result: MailCommandResult): string {
  const how = result.signal
    ? `killed by ${result.signal} (exit ${result.code})`
    : `exit ${result.code}`;
  const tail = result.stderrTail.join("\n").trim();
  const reason = tail === "" ? how : `${how}: ${tail}`;
  return reason.length > 4000 ? "…" + reason.slice(-3999) : reason;
}

/** The reply to send for a command's stdout: trailing blanks and leading blank lines dropped. */
export function replyText(stdout: string): string {
  return stdout.trimEnd().replace(/^(?:[ \t]*\r?\n)+/, "");
}
