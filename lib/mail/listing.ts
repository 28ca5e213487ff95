import type { ClaimEntry } from "./claims.ts";
import type { MailContext } from "./context.ts";
import { MailValidationError } from "./errors.ts";
import { type IndexEntry, type IndexQuery, isoOf, type MailKey } from "./mail_index.ts";
import type { MailStatus } from "./mailbox.ts";
import type { MailSession } from "./mail_file.ts";

/** Filters, order and paging of {@link listMails}. */
export interface MailListFilter {
  /** Only mails in this status, or in any of these. */
  status?: MailStatus | MailStatus[];
  /** Only this provider's mails. */
  provider?: string;
  /** Only inbound or only outbound mails. */
  direction?: "inbound" | "outbound";
  /** Only this conversation's mails. */
  session_id?: string;
  /** `oldest` first (default) or `newest` first. */
  order?: "oldest" | "newest";
  /** At most this many (default 1000). */
  limit?: number;
  /** Continue after the page that returned this `next_cursor`. */
  cursor?: string;
}

/** One page of {@link listMails}. */
export interface MailListPage {
  /** The mails. */
  messages: MailSummary[];
  /** How many are on this page. */
  count: number;
  /** Pass it as `cursor` for the next page; absent on the last page. */
  next_cursor?: string;
}

const DEFAULT_LIST_LIMIT = 1000;

function encodeCursor(order: string, key: MailKey): string {
  return btoa(`${order}:${key.ms}:${key.id}`).replace(/=+$/, "").replace(/\+/g, "-")
    .replace(/\//g, "_");
}

function decodeCursor(cursor: string, order: string): MailKey {
  let text = "";
  try {
    text = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    // not base64
  }
  const match = /^(oldest|newest):(-?\d+):([A-Za-z0-9_-]+)$/.exec(text);
  if (!match) throw new MailValidationError("cursor", `"cursor" is not a cursor this API gave`);
  if (match[1] !== order) {
    throw new MailValidationError("cursor", `"cursor" belongs to order=${match[1]}, not ${order}`);
  }
  return { ms: Number(match[2]), id: match[3] };
}

/** One mail in a listing. */
export interface MailSummary {
  /** `<provider>_<uid>`. */
  id: string;
  /** Its provider. */
  provider: string;
  /** `inbound` or `outbound`. */
  direction: "inbound" | "outbound";
  /** Where it stands. */
  status: MailStatus;
  /** When its first message was sent. */
  timestamp: string;
  /** When courier received it. */
  received_at: string;
  /** The conversation. */
  session: MailSession;
  /** The first sender (inbound). */
  from?: { id: string; name: string };
  /** The recipient (outbound). */
  to?: string;
  /** The start of its text. */
  preview: string;
  /** Messages folded in. */
  message_count: number;
  /** Failed attempts so far. */
  attempts: number;
  /** Waiting for a retry until then. */
  retry_at?: string;
  /** The current claim. */
  claim?: ClaimEntry;
  /** Why it was dead-lettered. */
  dead_reason?: string;
  /** When it was completed, delivered or dead-lettered. */
  finished_at?: string;
  /** Its file. */
  path: string;
}

/** A listing entry for `entry` (`claim`: its current claim; `path`: its file). */
export function summaryOf(
  entry: IndexEntry,
  claim: ClaimEntry | undefined,
  path: string,
): MailSummary {
  const record = entry.record;
  const summary: MailSummary = {
    id: record.id,
    provider: record.provider,
    direction: record.direction,
    status: entry.status,
    timestamp: isoOf(record.timestamp_ms),
    received_at: isoOf(record.received_ms),
    session: record.session,
    preview: record.preview.length > 80 ? record.preview.slice(0, 79) + "…" : record.preview,
    message_count: record.message_count,
    attempts: record.attempts,
    path,
  };
  if (record.from) summary.from = record.from;
  if (record.to) summary.to = record.to;
  if (entry.status === "retrying" && record.retry_ms !== undefined) {
    summary.retry_at = isoOf(record.retry_ms);
  }
  if (entry.status === "claimed" && claim) summary.claim = claim;
  if (record.dead_reason) summary.dead_reason = record.dead_reason;
  if (record.finished_ms !== undefined) summary.finished_at = isoOf(record.finished_ms);
  return summary;
}

/** The statuses a filter asks for (none: every status). */
export function statusesOf(filter: MailListFilter): MailStatus[] {
  if (filter.status === undefined) return [];
  return Array.isArray(filter.status) ? filter.status : [filter.status];
}

/**
 * One page of mails from the index: filters, `oldest` or `newest` first,
 * at most `limit`, and a cursor for the next page (stable while mails
 * arrive: the cursor is the last mail's place in the order).
 *
 * @throws {MailValidationError} a bad cursor (400).
 */
export function listMails(ctx: MailContext, filter: MailListFilter): MailListPage {
  const statuses = statusesOf(filter);
  const order = filter.order ?? "oldest";
  const query: IndexQuery = {
    statuses,
    order,
    limit: filter.limit ?? DEFAULT_LIST_LIMIT,
    ...(filter.provider === undefined ? {} : { provider: filter.provider }),
    ...(filter.direction === undefined ? {} : { direction: filter.direction }),
    ...(filter.session_id === undefined ? {} : { session_id: filter.session_id }),
    ...(filter.cursor === undefined ? {} : { after: decodeCursor(filter.cursor, order) }),
  };
  const { entries, more } = ctx.index.query(query);
  const messages = entries.map((entry) =>
    summaryOf(entry, ctx.claims.get(entry.id), ctx.store.pathOf(entry.record))
  );
  const last = entries.at(-1);
  return {
    messages,
    count: messages.length,
    ...(more && last ? { next_cursor: encodeCursor(order, last) } : {}),
  };
}
