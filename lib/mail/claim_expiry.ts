import { isoNow, type MailContext, readMail } from "./context.ts";
import { MailNotFoundError } from "./errors.ts";
import { TimerQueue } from "./timers.ts";

/** Retry of a claim expiry, or a claims write, the disk refused. */
const RETRY_MS = 5000;

/**
 * Claims whose time runs out. Each counts as a failed attempt ("claim
 * expired", recorded in the mail): the mail is claimable again at once, or
 * dead once it reached the maximum of attempts, so a mail that kills its
 * agent every time does not loop forever. A timer fires at each expiry;
 * {@link ClaimExpiry.settle} catches up when the timer is late (a busy
 * event loop, a clock that moved). Also keeps the claim table written: a
 * write the disk refuses is retried until it succeeds.
 */
export class ClaimExpiry {
  readonly #ctx: MailContext;
  readonly #timers: TimerQueue<string>;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #stopping = false;

  /**
   * Creates a `ClaimExpiry`.
   *
   * @param ctx What the mail service's parts share.
   */
  constructor(ctx: MailContext) {
    this.#ctx = ctx;
    this.#timers = new TimerQueue((id) => this.#expireLocked(id), { now: ctx.now });
  }

  /** Checks the claim on `id` at `atMs` (a renewed claim is checked again later). */
  schedule(id: string, atMs: number): void {
    this.#timers.schedule(id, atMs);
  }

  /** Counts every claim whose time ran out; resolves once they are recorded. */
  async settle(): Promise<void> {
    const now = this.#ctx.now();
    const due = [...this.#ctx.claims.claims()].filter((c) => Date.parse(c.expires_at) <= now);
    if (due.length === 0) return;
    await Promise.allSettled(
      due.map((claim) => this.#ctx.locks.run(claim.id, () => this.#expire(claim.id))),
    );
  }

  /** Counts the claim on `id` if its time ran out (call it under the mail's lock). */
  async expireIfDue(id: string): Promise<void> {
    const claim = this.#ctx.claims.get(id);
    if (claim && Date.parse(claim.expires_at) <= this.#ctx.now()) await this.#expire(id);
  }

  /** Writes the claim table soon; a write the disk refuses is retried until it succeeds. */
  persistSoon(): void {
    if (this.#retry !== undefined) return;
    this.#ctx.claims.persist().then(
      () => this.#ctx.faults.clear("claims"),
      (error) => {
        this.#ctx.faults.report("claims", error);
        this.#ctx.log.error(`mail: saving claims failed: ${error}; retrying in 5 s`);
        if (this.#stopping) return;
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.persistSoon();
        }, RETRY_MS);
      },
    );
  }

  /** Stops the timers. */
  stop(): void {
    this.#stopping = true;
    this.#timers.stop();
    clearTimeout(this.#retry);
  }

  #expireLocked(id: string): void {
    this.#ctx.locks.run(id, () => this.#expire(id)).catch((error) => {
      this.#ctx.log.error(`mail: counting the expired claim of ${id} failed: ${error}`);
    });
  }

  /** Counts a claim that ran out as a failed attempt (under the mail's lock). */
  async #expire(id: string): Promise<void> {
    const ctx = this.#ctx;
    const { claims, index, store, events, log, faults, settings } = ctx;
    const claim = claims.get(id);
    if (!claim || Date.parse(claim.expires_at) > ctx.now() || this.#stopping) return;
    const entry = index.get(id);
    if (!entry || entry.record.location !== "inbound") {
      claims.release(id);
      this.persistSoon();
      return;
    }
    let doc;
    try {
      doc = await readMail(ctx, entry);
    } catch (error) {
      if (error instanceof MailNotFoundError) return;
      this.#timers.schedule(id, ctx.now() + RETRY_MS);
      return;
    }
    const at = isoNow(ctx);
    const delivery = doc.frontMatter.delivery;
    delivery.attempts += 1;
    delivery.failures.push({
      at,
      agent_id: claim.agent_id,
      reason: "claim expired",
      retryable: true,
    });
    delete delivery.retry_at;
    const dead = delivery.attempts >= settings.maxAttempts;
    if (dead) {
      delivery.dead_at = at;
      delivery.dead_reason = `claim expired (${delivery.attempts} attempts)`;
    }
    let record;
    try {
      record = dead
        ? await store.move(entry.record, doc, "deadletter")
        : await store.update(entry.record, doc);
      faults.clear("claim expiry");
    } catch (error) {
      faults.report("claim expiry", error);
      log.error(`mail: could not record the expired claim of ${id}: ${error}; retrying`);
      this.#timers.schedule(id, ctx.now() + RETRY_MS);
      return;
    }
    claims.lapse(id);
    index.put(record, { claimed: false });
    this.persistSoon();
    ctx.counters.failed++;
    const attempts = delivery.attempts;
    if (dead) {
      events.emit("mail.dead", { id, attempts, reason: delivery.dead_reason });
      log.warn(`mail: dead-lettered ${id}: ${delivery.dead_reason}`);
    } else {
      events.emit("mail.released", {
        id,
        agent_id: claim.agent_id,
        reason: "claim expired",
        attempts,
      });
      log.warn(
        `mail: the claim of ${id} by "${claim.agent_id}" expired (attempt ${attempts} of ` +
          `${settings.maxAttempts}); claimable again`,
      );
    }
  }
}
