import { basename, dirname, join } from "node:path";
import { syncDirectory, writeAll } from "../fs/mod.ts";
import type { MailRecord } from "./mail_index.ts";
import { MAIL_LOCATIONS, type MailLocation } from "./mailbox.ts";
import type { MailSender, MailSession } from "./mail_file.ts";
import type { FileStamp } from "./store.ts";

/**
 * The index cache (`.state/index.json`): the mail index as JSON lines, so a
 * start need not parse every mail. Line 1 is `{"courier_mail_index": 2}`;
 * then `["s", n, session]` and `["f", n, sender]` (shared conversations and
 * senders), `["m", …]` one mail each, `["d", key, value, …]` message ids
 * for deduplication, and last `["end", mails, ids]`: a file without its
 * end line is ignored whole.
 *
 * It is written only while the pending journal is empty, so every journal
 * record found at a later start is newer than it, and so is any mail
 * covering such a record: those mails are not in the cache and get parsed
 * (yielding their pending keys). Files in `inbound/` and `outbound/` are
 * rewritten in place, so their cached entries are used only when size,
 * inode and mtime still match; `archive/` and `.deadletter/` files are
 * never rewritten.
 */
const VERSION = 2;

/** One mail of the cache. */
export interface CachedMail {
  /** The file's stamp when the cache was written (`null` outside mutable folders). */
  stamp: FileStamp | null;
  /** Its index record. */
  record: MailRecord;
}

/** A cache that was read. */
export interface IndexCache {
  /** `<location>/<provider>/<file name>` → cached mail. */
  mails: Map<string, CachedMail>;
  /** Message ids in mails: `[key, "<day>|<pending key>"]`. */
  dedup: [string, string][];
}

/** The key of a mail file in {@link IndexCache.mails}. */
export function cacheKey(location: MailLocation, provider: string, name: string): string {
  return `${location}/${provider}/${name}`;
}

/** Lets the event loop breathe during long loops: yields once `budgetMs` passed. */
export class Yielder {
  readonly #budgetMs: number;
  #since = performance.now();

  /**
   * Creates a `Yielder`.
   *
   * @param budgetMs How long to run between yields (default 4 ms).
   */
  constructor(budgetMs = 4) {
    this.#budgetMs = budgetMs;
  }

  /** Yields to the event loop (a macrotask) when the budget is spent. */
  async maybe(): Promise<void> {
    if (performance.now() - this.#since < this.#budgetMs) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.#since = performance.now();
  }
}

type Row = unknown[];

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function num(value: unknown): number | null {
  return typeof value === "number" ? value : null;
}

/**
 * Reads the index cache; `null` when it is missing, of another version,
 * incomplete or damaged (then every mail is parsed). Yields to the event
 * loop while it works.
 */
export async function readIndexCache(path: string): Promise<IndexCache | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return null;
  }
  const yielder = new Yielder();
  const sessions: MailSession[] = [], senders: MailSender[] = [];
  const mails = new Map<string, CachedMail>();
  const dedup: [string, string][] = [];
  let pos = text.indexOf("\n");
  try {
    if (pos < 0 || JSON.parse(text.slice(0, pos)).courier_mail_index !== VERSION) return null;
    for (;;) {
      const start = pos + 1;
      pos = text.indexOf("\n", start);
      if (pos < 0) return null; // no end line: written partly
      const row = JSON.parse(text.slice(start, pos)) as Row;
      switch (row[0]) {
        case "s":
          sessions[row[1] as number] = row[2] as MailSession;
          break;
        case "f":
          senders[row[1] as number] = row[2] as MailSender;
          break;
        case "m": {
          const [location, provider, name] = [row[1], row[2], row[3]] as [number, string, string];
          const mail = mailOf(row, sessions, senders);
          if (mail) mails.set(cacheKey(MAIL_LOCATIONS[location], provider, name), mail);
          break;
        }
        case "d":
          for (let i = 1; i + 1 < row.length; i += 2) {
            dedup.push([row[i] as string, row[i + 1] as string]);
          }
          break;
        case "end":
          if (row[1] !== mails.size || row[2] !== dedup.length) return null;
          return { mails, dedup };
        default:
          return null;
      }
      await yielder.maybe();
    }
  } catch {
    return null;
  }
}

function mailOf(row: Row, sessions: MailSession[], senders: MailSender[]): CachedMail | null {
  const location = MAIL_LOCATIONS[row[1] as number];
  const session = sessions[row[11] as number];
  if (!location || !session || typeof row[7] !== "string" || typeof row[2] !== "string") {
    return null;
  }
  const size = num(row[4]);
  const record: MailRecord = {
    id: row[7],
    provider: row[2],
    direction: row[8] === "outbound" ? "outbound" : "inbound",
    location,
    timestamp: str(row[9]) ?? "",
    received_at: str(row[10]) ?? "",
    session,
    preview: str(row[14]) ?? "",
    message_count: num(row[15]) ?? 0,
    attempts: num(row[16]) ?? 0,
  };
  const from = senders[row[12] as number];
  if (from) record.from = from;
  const optional: [keyof MailRecord, unknown][] = [
    ["file", row[20]],
    ["to", row[13]],
    ["retry_at", row[17]],
    ["dead_reason", row[18]],
    ["finished_at", row[19]],
  ];
  for (const [field, value] of optional) {
    if (typeof value === "string") (record as unknown as Record<string, string>)[field] = value;
  }
  if (typeof row[21] === "number" && row[21] > 0) record.requeues = row[21];
  const stamp = size === null ? null : { size, ino: num(row[5]), mtime: num(row[6]) };
  return { stamp, record };
}

/** What {@link writeIndexCache} writes. */
export interface IndexCacheContent {
  /** Every mail, with its file name and, in mutable folders, its stamp. */
  mails: Iterable<{ record: MailRecord; name: string; stamp: FileStamp | null }>;
  /** Message ids in mails. */
  dedup: Iterable<[string, string]>;
}

const encoder = new TextEncoder();

/**
 * Writes the index cache crash-safely (temp file, fsync, rename, directory
 * fsync), in pieces, so no single huge string is built. Yields to the event
 * loop while it works.
 */
export async function writeIndexCache(path: string, content: IndexCacheContent): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${Deno.pid}.tmp`);
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
  const yielder = new Yielder();
  try {
    let lines: string[] = [JSON.stringify({ courier_mail_index: VERSION })];
    const flush = async (force = false) => {
      if (!force && lines.length < 512) return;
      await writeAll(file, encoder.encode(lines.join("\n") + "\n"));
      lines = [];
      await yielder.maybe();
    };
    const sessions = new Map<MailSession, number>(), senders = new Map<MailSender, number>();
    const intern = <T>(map: Map<T, number>, value: T, tag: string): number => {
      let n = map.get(value);
      if (n === undefined) {
        n = map.size;
        map.set(value, n);
        lines.push(JSON.stringify([tag, n, value]));
      }
      return n;
    };
    let mailCount = 0, dedupCount = 0;
    for (const { record: r, name, stamp } of content.mails) {
      const session = intern(sessions, r.session, "s");
      const from = r.from ? intern(senders, r.from, "f") : -1;
      lines.push(JSON.stringify([
        "m",
        MAIL_LOCATIONS.indexOf(r.location),
        r.provider,
        name,
        stamp?.size ?? null,
        stamp?.ino ?? null,
        stamp?.mtime ?? null,
        r.id,
        r.direction,
        r.timestamp,
        r.received_at,
        session,
        from,
        r.to ?? null,
        r.preview,
        r.message_count,
        r.attempts,
        r.retry_at ?? null,
        r.dead_reason ?? null,
        r.finished_at ?? null,
        r.file ?? null,
        r.requeues ?? 0,
      ]));
      mailCount++;
      await flush();
    }
    let pairs: string[] = [];
    for (const [key, value] of content.dedup) {
      pairs.push(key, value);
      dedupCount++;
      if (pairs.length >= 1000) {
        lines.push(JSON.stringify(["d", ...pairs]));
        pairs = [];
        await flush();
      }
    }
    if (pairs.length > 0) lines.push(JSON.stringify(["d", ...pairs]));
    lines.push(JSON.stringify(["end", mailCount, dedupCount]));
    await flush(true);
    await file.syncData();
  } catch (error) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  file.close();
  try {
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  await syncDirectory(dirname(path));
}
