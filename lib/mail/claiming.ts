import type { ClaimEntry, SavedClaims } from "./claims.ts";
import { isoNow, type MailContext, readMail, requireEntry } from "./context.ts";
import {
  isStorageFault,
  MailConflictError,
  MailForbiddenError,
  MailIndexingError,
  MailNotFoundError,
  MailStorageError,
  MailUnavailableError,
} from "./errors.ts";
import { type IndexEntry, isoOf } from "./mail_index.ts";
import { mailJson } from "./mail_file.ts";
import { ClaimExpiry } from "./claim_expiry.ts";

/** Options of {@link Claiming.claimNext}. */
export interface ClaimNextOptions {
  /** The agent claiming. */
  agentId: string;
  /** Only this provider's mails. */
  provider?: string;
  /** Only this conversation's mails. */
  sessionId?: string;
  /** The claim's length in seconds. */
  timeoutS: number;
  /** Wait this long for a claimable mail (s, 0 to 60). */
  waitS: number;
  /** Aborted when the client went away: a mail claimed for it is given back. */
  signal?: AbortSignal;
}

/** A mail as `GET /api/v1/messages/<id>` returns it. */
export type MailView = Record<string, unknown>;

/** The answer of a claim-next: the mail plus its `claim`. */
export type ClaimedMail = MailView & { claim: ClaimEntry };

type Reserved = { entry: IndexEntry; claim: ClaimEntry; saved: SavedClaims };

interface Waiter {
  options: ClaimNextOptions;
  resolve: (outcome: Reserved | "timeout" | "stopping") => void;
}

/** A mail as `GET /api/v1/messages/<id>` returns it: front matter, `body`, `status`, `claim`, `path`. */
export function mailView(
  ctx: MailContext,
  entry: IndexEntry,
  doc: Record<string, unknown>,
): MailView {
  const claim = entry.status === "claimed" ? ctx.claims.get(entry.id) : undefined;
  return {
    ...doc,
    status: entry.status,
    ...(claim ? { claim } : {}),
    path: ctx.store.pathOf(entry.record),
  };
}

/**
 * Claims: who works on which inbound mail. `claim` takes a given mail;
 * `claimNext` takes the oldest claimable one (or waits for one, up to a
 * minute); `release` gives one back. A claim whose time runs out counts as
 * a failed attempt ("claim expired"): the mail is claimable again at once,
 * or dead once it reached the maximum of attempts. Every claim is durable
 * in `locks.json` before it is answered, and undone if that write fails.
 *
 * Claim-next is atomic: the oldest claimable mail is chosen and marked
 * claimed in one synchronous step, so N agents on M mails get min(N, M)
 * distinct mails. Waiting agents are served first come, first served, the
 * moment a mail becomes claimable (new mail, expired claim, retry due,
 * release).
 */
export class Claiming {
  readonly #ctx: MailContext;
  /** Claims whose time runs out: counted as failed attempts. */
  readonly expiry: ClaimExpiry;
  readonly #waiters: Waiter[] = [];
  #pumpQueued = false;
  #stopping = false;
  #inboundIndexed = false;

  /**
   * Creates a `Claiming`.
   *
   * @param ctx What the mail service's parts share.
   */
  constructor(ctx: MailContext) {
    this.#ctx = ctx;
    this.expiry = new ClaimExpiry(ctx);
    ctx.index.onClaimable = () => this.#schedulePump();
  }

  /** Agents waiting in claim-next now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Every inbound mail is indexed: claims on mails that are gone are
   * dropped, the others get their expiry timers, and waiting agents are served.
   */
  inboundIndexed(): void {
    const { claims, index, log } = this.#ctx;
    let dropped = 0;
    for (const claim of [...claims.claims()]) {
      const entry = index.get(claim.id);
      if (!entry || entry.record.location !== "inbound") {
        claims.release(claim.id);
        dropped++;
        continue;
      }
      if (!entry.claimed) index.setClaimed(claim.id, true);
      this.expiry.schedule(claim.id, Date.parse(claim.expires_at));
    }
    if (dropped > 0) {
      log.info(`mail: dropped ${dropped} claim(s) on mails no longer waiting`);
      this.expiry.persistSoon();
    }
    this.#inboundIndexed = true;
    this.#schedulePump();
  }

  /**
   * Claims mail `id` for `agentId` for `timeoutS` seconds; the agent holding
   * it may renew its claim.
   *
   * @throws {MailNotFoundError} unknown id (404).
   * @throws {MailConflictError} held by another agent, waiting for a retry, done or dead (409).
   * @throws {MailStorageError} the claim could not be recorded (503, nothing changed).
   */
  claim(id: string, agentId: string, timeoutS: number): Promise<ClaimEntry> {
    return this.#ctx.locks.run(id, async () => {
      await this.expiry.expireIfDue(id);
      const entry = requireEntry(this.#ctx, id);
      assertOpenInbound(entry, "claimed");
      const holder = this.#ctx.claims.get(id);
      if (entry.status === "claimed" && holder && holder.agent_id !== agentId) {
        throw new MailConflictError(
          `mail ${id} is claimed by "${holder.agent_id}" until ${holder.expires_at}`,
          { holder: holder.agent_id, expires_at: holder.expires_at },
        );
      }
      if (entry.status === "retrying") {
        throw new MailConflictError(
          `mail ${id} failed ${entry.record.attempts} time(s) and waits for a retry until ` +
            `${isoOf(entry.record.retry_ms ?? 0)}`,
          { status: "retrying", retry_at: isoOf(entry.record.retry_ms ?? 0) },
        );
      }
      const renewal = entry.status === "claimed";
      const reserved = this.#reserve(entry, agentId, timeoutS);
      await this.#commit(reserved);
      if (!renewal) this.#claimed(reserved.claim);
      return reserved.claim;
    });
  }

  /**
   * Claims the oldest claimable inbound mail (matching the filters) for
   * `agentId`, waiting up to `waitS` seconds for one; `null` when none came.
   *
   * @throws {MailStorageError} the claim could not be recorded (503, nothing changed).
   * @throws {MailUnavailableError} the service is stopping (503).
   * @throws {MailIndexingError} the inbound mails are still being indexed and `waitS` is 0.
   */
  async claimNext(options: ClaimNextOptions): Promise<ClaimedMail | null> {
    const deadline = Date.now() + options.waitS * 1000;
    await this.expiry.settle();
    for (;;) {
      if (this.#stopping) throw new MailUnavailableError();
      let reserved: Reserved | null = null;
      if (this.#inboundIndexed && this.#waiters.length === 0) {
        const entry = this.#ctx.index.firstClaimable(filterOf(options));
        if (entry) reserved = this.#reserve(entry, options.agentId, options.timeoutS);
      }
      if (!reserved) {
        const outcome = await this.#wait(options, deadline - Date.now());
        if (outcome === "stopping") throw new MailUnavailableError();
        if (outcome === "timeout") {
          if (!this.#inboundIndexed) {
            const { index } = this.#ctx;
            throw new MailIndexingError({ indexed: index.size, pending: index.missing(["new"]) });
          }
          return null;
        }
        reserved = outcome;
      }
      const mail = await this.#deliver(reserved, options);
      if (mail) return mail;
      if (options.signal?.aborted) return null;
    }
  }

  /**
   * Gives a claimed mail back at once: it is claimable again and no failure
   * is recorded. Only the agent holding the claim may.
   *
   * @throws {MailForbiddenError} another agent holds it (403).
   * @throws {MailConflictError} it is not claimed (409).
   * @throws {MailStorageError} the release could not be recorded (503, nothing changed).
   */
  release(id: string, agentId: string): Promise<Record<string, unknown>> {
    return this.#ctx.locks.run(id, async () => {
      await this.expiry.expireIfDue(id);
      const { claims, index, events, log } = this.#ctx;
      const entry = requireEntry(this.#ctx, id);
      assertOpenInbound(entry, "released");
      const claim = claims.get(id);
      if (!claim) {
        const lapsed = claims.holder(id);
        throw new MailConflictError(
          lapsed?.agent_id === agentId
            ? `mail ${id} is not claimed: the claim of "${agentId}" expired at ` +
              `${lapsed.expires_at} and was counted as a failed attempt`
            : `mail ${id} is not claimed`,
          { status: entry.status },
        );
      }
      assertAgent(claim, agentId, "release");
      const saved = this.#ctx.claims.peek(id);
      claims.release(id);
      try {
        await claims.persist();
      } catch (error) {
        claims.restore(id, saved);
        throw this.#storageFailure(`record the release of ${id}`, error);
      }
      const released = index.setClaimed(id, false)!;
      events.emit("mail.released", { id, agent_id: agentId, reason: "released" });
      log.info(`mail: ${id} released by "${agentId}"`);
      return { id, status: released.status, released_at: isoNow(this.#ctx) };
    });
  }

  /**
   * Who may complete or fail `entry`: its claim, or the lapsed claim of an
   * agent nobody took the mail from since.
   *
   * @throws {MailForbiddenError} another agent holds the claim (403).
   * @throws {MailConflictError} nobody claimed it (409).
   */
  assertHolder(entry: IndexEntry, agentId: string, verb: string): ClaimEntry {
    const holder = this.#ctx.claims.holder(entry.id);
    if (!holder) {
      throw new MailConflictError(
        `mail ${entry.id} is not claimed: claim it first ` +
          `(POST /api/v1/messages/${entry.id}/claim)`,
        { status: entry.status },
      );
    }
    assertAgent(holder, agentId, verb);
    return holder;
  }

  /** Ends every wait (the service is stopping) and the expiry timers. */
  stop(): void {
    this.#stopping = true;
    this.expiry.stop();
    for (const waiter of this.#waiters.splice(0)) waiter.resolve("stopping");
  }

  /** Marks `entry` claimed by `agentId` (synchronously: nobody else can take it meanwhile). */
  #reserve(entry: IndexEntry, agentId: string, timeoutS: number): Reserved {
    const saved = this.#ctx.claims.peek(entry.id);
    const claim = this.#ctx.claims.claim(entry.id, agentId, timeoutS);
    this.#ctx.index.setClaimed(entry.id, true);
    return { entry, claim, saved };
  }

  /** Makes a reservation durable, or undoes it and throws a 503. */
  async #commit(reserved: Reserved): Promise<void> {
    const { claims, index } = this.#ctx;
    const id = reserved.entry.id;
    try {
      await claims.persist();
      this.#ctx.faults.clear("claims");
    } catch (error) {
      claims.release(id);
      claims.restore(id, reserved.saved);
      if (!reserved.saved.active && index.get(id)) index.setClaimed(id, false);
      throw this.#storageFailure(`record the claim of ${id}`, error);
    }
    this.expiry.schedule(id, Date.parse(reserved.claim.expires_at));
  }

  /** Commits a claim-next reservation and reads the mail; `null` to try the next one. */
  async #deliver(reserved: Reserved, options: ClaimNextOptions): Promise<ClaimedMail | null> {
    const ctx = this.#ctx;
    const id = reserved.entry.id;
    await this.#commit(reserved);
    if (options.signal?.aborted) {
      // The agent left while we claimed: give the mail back, no failure recorded.
      await ctx.locks.run(id, () => {
        if (ctx.claims.get(id) === reserved.claim) {
          ctx.claims.release(id);
          ctx.claims.restore(id, { lapsed: reserved.saved.lapsed });
          if (ctx.index.get(id)) ctx.index.setClaimed(id, false);
          this.expiry.persistSoon();
        }
        return Promise.resolve();
      });
      return null;
    }
    let doc;
    try {
      doc = await readMail(ctx, reserved.entry);
    } catch (error) {
      if (error instanceof MailNotFoundError) return null; // quarantined: take the next one
      ctx.claims.release(id);
      if (ctx.index.get(id)) ctx.index.setClaimed(id, false);
      this.expiry.persistSoon();
      throw error;
    }
    this.#claimed(reserved.claim);
    const entry = ctx.index.get(id) ?? reserved.entry;
    return { ...mailView(ctx, entry, mailJson(doc)), claim: reserved.claim };
  }

  #claimed(claim: ClaimEntry): void {
    this.#ctx.events.emit("mail.claimed", {
      id: claim.id,
      agent_id: claim.agent_id,
      expires_at: claim.expires_at,
    });
    this.#ctx.log.info(
      `mail: ${claim.id} claimed by "${claim.agent_id}" until ${claim.expires_at}`,
    );
  }

  #wait(options: ClaimNextOptions, ms: number): Promise<Reserved | "timeout" | "stopping"> {
    if (ms <= 0 && this.#inboundIndexed) return Promise.resolve("timeout");
    return new Promise((resolve) => {
      const waiter: Waiter = {
        options,
        resolve: (outcome) => {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
          resolve(outcome);
        },
      };
      const leave = () => {
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        waiter.resolve("timeout");
      };
      const onAbort = () => leave();
      const timer = setTimeout(leave, Math.max(0, ms));
      options.signal?.addEventListener("abort", onAbort);
      this.#waiters.push(waiter);
      this.#schedulePump();
    });
  }

  #schedulePump(): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    queueMicrotask(() => {
      this.#pumpQueued = false;
      this.#pump();
    });
  }

  /** Serves waiting agents, first come first served, while claimable mails match them. */
  #pump(): void {
    if (this.#stopping || !this.#inboundIndexed) return;
    for (let i = 0; i < this.#waiters.length;) {
      const waiter = this.#waiters[i];
      const entry = this.#ctx.index.firstClaimable(filterOf(waiter.options));
      if (!entry) {
        i++;
        continue;
      }
      this.#waiters.splice(i, 1);
      waiter.resolve(this.#reserve(entry, waiter.options.agentId, waiter.options.timeoutS));
    }
  }

  #storageFailure(what: string, error: unknown): Error {
    if (!isStorageFault(error)) return error as Error;
    this.#ctx.faults.report("claims", error);
    this.#ctx.log.error(`mail: could not ${what}: ${(error as Error).message}`);
    return new MailStorageError(what, error, this.#ctx.layout.root);
  }
}

function filterOf(options: ClaimNextOptions): { provider?: string; session_id?: string } {
  return {
    ...(options.provider === undefined ? {} : { provider: options.provider }),
    ...(options.sessionId === undefined ? {} : { session_id: options.sessionId }),
  };
}

/**
 * Only an inbound mail that is not done or dead can be claimed, completed,
 * failed or released.
 *
 * @throws {MailConflictError} otherwise (409).
 */
export function assertOpenInbound(entry: IndexEntry, verb: string): void {
  const record = entry.record;
  if (record.direction === "outbound") {
    throw new MailConflictError(
      `mail ${record.id} is outbound: courier delivers it, it cannot be ${verb}`,
      { status: entry.status },
    );
  }
  if (record.location === "archive") {
    throw new MailConflictError(`mail ${record.id} is already done`, { status: "done" });
  }
  if (record.location === "deadletter") {
    throw new MailConflictError(
      `mail ${record.id} is dead-lettered: ${record.dead_reason}; requeue it first ` +
        `(POST /api/v1/messages/${record.id}/requeue)`,
      { status: "dead" },
    );
  }
}

function assertAgent(claim: ClaimEntry, agentId: string, verb: string): void {
  if (claim.agent_id === agentId) return;
  throw new MailForbiddenError(
    `mail ${claim.id} is claimed by "${claim.agent_id}" until ${claim.expires_at}; ` +
      `only that agent may ${verb} it`,
    { holder: claim.agent_id, expires_at: claim.expires_at },
  );
}
