import { assertOpenInbound, type Claiming } from "./claiming.ts";
import { isoNow, type MailContext, readMail, requireEntry, storageWrite } from "./context.ts";
import { MailConflictError } from "./errors.ts";
import type { IndexEntry, MailRecord } from "./mail_index.ts";
import type { MailDocument } from "./mail_file.ts";
import { backoffDelay } from "./retry.ts";

/** A failure an agent reports. */
export interface AgentFailure {
  /** Why, in the agent's words. */
  reason: string;
  /** Whether a later attempt may succeed. */
  retryable: boolean;
}

/**
 * What agents report back about a mail, and what operators do with dead
 * ones: `complete` (to `archive/`), `fail` (retry after a backoff, or to
 * `.deadletter/` after the maximum of attempts), `requeue` (a dead mail back
 * to new, attempts reset, history kept). Each writes the mail's file first
 * (the commit point): when the disk refuses, the answer is 503 and nothing
 * changed.
 */
export class Outcomes {
  readonly #ctx: MailContext;
  readonly #claiming: Claiming;
  readonly #onOutboundQueued: (id: string) => void;

  /**
   * Creates an `Outcomes`.
   *
   * @param ctx What the mail service's parts share.
   * @param claiming The claims (who may report on a mail).
   * @param onOutboundQueued Called when a dead outbound mail is requeued (to deliver it).
   */
  constructor(ctx: MailContext, claiming: Claiming, onOutboundQueued: (id: string) => void) {
    this.#ctx = ctx;
    this.#claiming = claiming;
    this.#onOutboundQueued = onOutboundQueued;
  }

  /**
   * Completes a claimed mail: moves it to `archive/`. Only the agent that
   * claimed it may (even if its claim lapsed, as long as nobody claimed it since).
   *
   * @throws {MailForbiddenError} another agent holds the claim (403).
   * @throws {MailConflictError} not claimed, done or dead (409).
   * @throws {MailStorageError} the disk refused the move (503, nothing changed).
   */
  complete(id: string, agentId: string): Promise<Record<string, unknown>> {
    return this.#reported(id, agentId, "complete", async (entry, doc) => {
      const at = isoNow(this.#ctx);
      doc.frontMatter.delivery.completed_at = at;
      doc.frontMatter.delivery.completed_by = agentId;
      delete doc.frontMatter.delivery.retry_at;
      const moved = await storageWrite(
        this.#ctx,
        `complete mail ${id}`,
        () => this.#ctx.store.move(entry.record, doc, "archive"),
      );
      return {
        record: moved,
        after: () => {
          this.#ctx.counters.completed++;
          this.#ctx.events.emit("mail.done", { id, agent_id: agentId });
          this.#ctx.log.info(`mail: ${id} completed by "${agentId}"`);
        },
        result: {
          id,
          status: "done",
          completed_at: at,
          completed_by: agentId,
          path: this.#ctx.store.pathOf(moved),
        },
      };
    });
  }

  /**
   * Records a failed attempt by the claiming agent. Retryable and under the
   * maximum of attempts: the mail is new again after an exponential
   * backoff; otherwise it moves to `.deadletter/` with the reason.
   *
   * @throws {MailForbiddenError} another agent holds the claim (403).
   * @throws {MailConflictError} not claimed, done or dead (409).
   * @throws {MailStorageError} the disk refused the write (503, nothing changed).
   */
  fail(id: string, agentId: string, failure: AgentFailure): Promise<Record<string, unknown>> {
    return this.#reported(id, agentId, "fail", async (entry, doc) => {
      const { settings, store, events, log } = this.#ctx;
      const now = this.#ctx.now();
      const at = new Date(now).toISOString();
      const delivery = doc.frontMatter.delivery;
      delivery.attempts += 1;
      delivery.failures.push({
        at,
        agent_id: agentId,
        reason: failure.reason,
        retryable: failure.retryable,
      });
      const attempts = delivery.attempts;
      if (failure.retryable && attempts < settings.maxAttempts) {
        const delay = backoffDelay(attempts, {
          baseMs: settings.backoffBaseMs,
          capMs: settings.backoffCapMs,
        });
        delivery.retry_at = new Date(now + delay).toISOString();
        const record = await storageWrite(
          this.#ctx,
          `record the failure of ${id}`,
          () => store.update(entry.record, doc),
        );
        return {
          record,
          after: () => {
            events.emit("mail.retrying", {
              id,
              agent_id: agentId,
              attempts,
              retry_at: delivery.retry_at,
              reason: failure.reason,
            });
            log.info(
              `mail: ${id} failed by "${agentId}" (attempt ${attempts} of ` +
                `${settings.maxAttempts}): ${short(failure.reason)}; retry at ${delivery.retry_at}`,
            );
          },
          result: { id, status: "retrying", attempts, retry_at: delivery.retry_at },
        };
      }
      delete delivery.retry_at;
      delivery.dead_at = at;
      delivery.dead_reason = failure.reason;
      const moved = await storageWrite(
        this.#ctx,
        `record the failure of ${id}`,
        () => store.move(entry.record, doc, "deadletter"),
      );
      return {
        record: moved,
        after: () => {
          events.emit("mail.dead", { id, agent_id: agentId, attempts, reason: failure.reason });
          log.warn(
            `mail: dead-lettered ${id} after ${attempts} attempt(s): ${short(failure.reason)}`,
          );
        },
        result: { id, status: "dead", attempts, reason: failure.reason, path: store.pathOf(moved) },
      };
    });
  }

  /**
   * Puts a dead mail back: an inbound one is new again, an outbound one is
   * queued for delivery again. Attempts start from 0; the failures stay in
   * the mail, and `delivery.requeued` records what it had been through.
   *
   * @throws {MailConflictError} the mail is not dead (409).
   * @throws {MailStorageError} the disk refused the move (503, nothing changed).
   */
  requeue(id: string): Promise<Record<string, unknown>> {
    const ctx = this.#ctx;
    return ctx.locks.run(id, async () => {
      const entry = requireEntry(ctx, id);
      if (entry.status !== "dead") {
        throw new MailConflictError(
          `mail ${id} is ${entry.status}, not dead: only dead mails are requeued`,
          {
            status: entry.status,
          },
        );
      }
      const doc = await readMail(ctx, entry);
      const delivery = doc.frontMatter.delivery;
      const at = isoNow(ctx);
      delivery.requeued = [...delivery.requeued ?? [], {
        at,
        attempts: delivery.attempts,
        ...(delivery.dead_reason ? { dead_reason: delivery.dead_reason } : {}),
        ...(delivery.dead_at ? { dead_at: delivery.dead_at } : {}),
      }];
      delivery.attempts = 0;
      delete delivery.dead_at;
      delete delivery.dead_reason;
      delete delivery.retry_at;
      const outbound = entry.record.direction === "outbound";
      const moved = await storageWrite(
        ctx,
        `requeue mail ${id}`,
        () => ctx.store.move(entry.record, doc, outbound ? "outbound" : "inbound"),
      );
      ctx.claims.release(id);
      const put = ctx.index.put(moved, { claimed: false });
      if (outbound) {
        this.#onOutboundQueued(id);
        ctx.events.emit("outbound.queued", { id, provider: moved.provider, requeued: true });
      } else {
        ctx.events.emit("mail.new", {
          id,
          provider: moved.provider,
          direction: "inbound",
          session: moved.session,
          requeued: true,
        });
      }
      ctx.log.info(
        `mail: requeued ${id} (it had ${delivery.requeued.at(-1)!.attempts} attempt(s))`,
      );
      return {
        id,
        status: put.status,
        attempts: 0,
        requeued_at: at,
        path: ctx.store.pathOf(moved),
      };
    });
  }

  /**
   * The common frame of complete and fail: under the mail's lock, count an
   * expired claim, check the holder, keep the mail from being claimed while
   * its file is written, write, then drop the claim and index the result.
   */
  #reported(
    id: string,
    agentId: string,
    verb: string,
    write: (entry: IndexEntry, doc: MailDocument) => Promise<{
      record: MailRecord;
      after: () => void;
      result: Record<string, unknown>;
    }>,
  ): Promise<Record<string, unknown>> {
    const ctx = this.#ctx;
    return ctx.locks.run(id, async () => {
      await this.#claiming.expiry.expireIfDue(id);
      const entry = requireEntry(ctx, id);
      assertOpenInbound(entry, verb === "complete" ? "completed" : "failed");
      this.#claiming.assertHolder(entry, agentId, verb);
      const pinned = !entry.claimed;
      if (pinned) ctx.index.setClaimed(id, true); // a lapsed holder: nobody may take it meanwhile
      let outcome;
      try {
        outcome = await write(entry, await readMail(ctx, entry));
      } catch (error) {
        if (pinned && ctx.index.get(id)) ctx.index.setClaimed(id, false);
        throw error;
      }
      ctx.claims.release(id);
      ctx.index.put(outcome.record, { claimed: false });
      this.#claiming.expiry.persistSoon();
      ctx.counters.failed += verb === "fail" ? 1 : 0;
      outcome.after();
      return outcome.result;
    });
  }
}

function short(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 200 ? line.slice(0, 199) + "…" : line;
}
