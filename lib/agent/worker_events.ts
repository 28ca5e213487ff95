/**
 * What a worker tells about its work (`WorkerOptions.onEvent`), and what it
 * did once it stopped.
 *
 * @module
 */

/** What a `MailWorker` tells its `onEvent`. */
export type WorkerEvent =
  | { event: "started"; agent_id: string; concurrency: number; command: string[] }
  | {
    event: "claimed";
    id: string;
    provider: string;
    session_id: string;
    attempts: number;
    expires_at: string;
  }
  | { event: "done"; id: string; exit_code: 0; duration_ms: number; reply_id?: string }
  | {
    event: "failed";
    id: string;
    exit_code: number;
    signal: Deno.Signal | null;
    duration_ms: number;
    status: "retrying" | "dead";
    attempts: number;
    retry_at?: string;
    no_retry: boolean;
    /** Why, when the command exited 0 but its reply could not be queued (never its stderr). */
    reason?: string;
  }
  | { event: "released"; id: string; reason: string; exit_code?: number }
  | { event: "renew_failed"; id: string; reason: string }
  | { event: "lost"; id: string; reason: string }
  | { event: "unreachable"; reason: string }
  | { event: "reachable" }
  | { event: "stopping"; running: number }
  | { event: "forwarded"; signal: Deno.Signal; running: number }
  | { event: "stopped"; done: number; failed: number; released: number; lost: number };

/** What a worker did, once it stopped. */
export interface WorkerSummary {
  /** Mails completed. */
  done: number;
  /** Mails failed (for a retry or for good). */
  failed: number;
  /** Mails given back without a failure. */
  released: number;
  /** Mails whose claim was lost (taken by another agent meanwhile) or not settled. */
  lost: number;
}
