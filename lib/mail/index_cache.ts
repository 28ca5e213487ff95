import { writeAll, writeFileAtomicWith } from "../fs/mod.ts";
import { type MailRecord, makeRecord } from "./mail_index.ts";
import { MAIL_LOCATIONS, type MailLocation } from "./mailbox.ts";
import type { MailSender, MailSession } from "./mail_file.ts";
import type { FileStamp } from "./store.ts";

/**
 * The index cache (`.state/index.json`): the mail index as JSON lines, so a
 * start need not parse every mail. Line 1 is `{"courier_mail_index": 3}`;
 * then `["s", n, session]` and `["f", n, sender]` (shared conversations and
 * senders), `["m", …]` one mail each, grouped by folder in indexing order
 * (`inbound/`, `outbound/`, `.deadletter/`, `archive/`), `["d", key, value,
 * …]` message ids for deduplication, and last `["end", mails, ids]`.
 *
 * It is written only while the pending journal is empty, so every journal
 * record found at a later start is newer than it, and so is any mail
 * covering such a record: those mails are not in the cache and get parsed
 * (yielding their pending keys). Files in `inbound/` and `outbound/` are
 * rewritten in place, so their cached entries are used only when size,
 * inode and mtime still match; `archive/` and `.deadletter/` files are
 * never rewritten. A cache cut short is used as far as it goes: each line
 * stands on its own, and files it does not name are parsed.
 */
const VERSION = 3;

/** The folders in the order the cache groups them (and the indexer reads them). */
export const INDEX_ORDER: readonly MailLocation[] = [
  "inbound",
  "outbound",
  "deadletter",
  "archive",
];

/** One mail of the cache. */
export interface CachedMail {
  /** Its folder. */
  location: MailLocation;
  /** Its provider folder. */
  provider: string;
  /** Its file name. */
  name: string;
  /** The file's stamp when the cache was written (`null` outside mutable folders). */
  stamp: FileStamp | null;
  /** Its index record. */
  record: MailRecord;
}

/**
 * Lets the event loop breathe during long synchronous work: once
 * `budgetMs` has passed, {@link Yielder.maybe} yields a macrotask (through
 * a message channel: a zero timer costs milliseconds on a busy machine).
 * Close it when done.
 */
export class Yielder {
  readonly #budgetMs: number;
  #since = performance.now();
  #channel: MessageChannel | null = null;
  #wake: () => void = () => {};

  /**
   * Creates a `Yielder`.
   *
   * @param budgetMs How long to run between yields (default 4 ms).
   */
  constructor(budgetMs = 4) {
    this.#budgetMs = budgetMs;
  }

  /** Yields to the event loop when the budget is spent. */
  async maybe(): Promise<void> {
    if (performance.now() - this.#since < this.#budgetMs) return;
    if (!this.#channel) {
      this.#channel = new MessageChannel();
      this.#channel.port1.onmessage = () => this.#wake();
    }
    const channel = this.#channel;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      channel.port2.postMessage(null);
    });
    this.#since = performance.now();
  }

  /** Releases the channel. */
  close(): void {
    this.#channel?.port1.close();
    this.#channel?.port2.close();
    this.#channel = null;
  }
}

type Row = unknown[];

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function num(value: unknown): number | null {
  return typeof value === "number" ? value : null;
}

/** The lines of a text stream, a chunk's worth at a time. */
async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string[]> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    if (lines.length > 0) yield lines;
  }
  if (rest !== "") yield [rest];
}

/**
 * Reads the index cache as a stream, one line at a time (no copy of the
 * whole file in memory): the mails, grouped by folder in the order they
 * were written, then the message ids. A damaged line ends it early; what
 * was read before is still true of the files it names.
 */
export class IndexCacheReader {
  readonly #lines: AsyncGenerator<string[]>;
  #batch: string[] = [];
  #next = 0;
  readonly #sessions: MailSession[] = [];
  readonly #senders: MailSender[] = [];
  #ahead: CachedMail | null = null;
  #done = false;
  /** Message ids read so far: `[key, "<day>|<pending key>"]`. */
  readonly dedup: [string, string][] = [];

  private constructor(lines: AsyncGenerator<string[]>, batch: string[]) {
    this.#lines = lines;
    this.#batch = batch;
  }

  /** Opens the cache at `path`; `null` when it is missing or of another version. */
  static async open(path: string): Promise<IndexCacheReader | null> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch {
      return null;
    }
    const lines = readLines(file.readable);
    try {
      const first = await lines.next();
      if (!first.done && JSON.parse(first.value[0]).courier_mail_index === VERSION) {
        return new IndexCacheReader(lines, first.value.slice(1));
      }
    } catch {
      // not a cache of this version
    }
    await lines.return(undefined);
    return null;
  }

  /** The next mail of `location`; `null` when the cache has no more of it. */
  async nextMail(location: MailLocation): Promise<CachedMail | null> {
    const wanted = INDEX_ORDER.indexOf(location);
    for (;;) {
      const mail = this.#ahead ?? await this.#read();
      this.#ahead = null;
      if (!mail) return null;
      const order = INDEX_ORDER.indexOf(mail.location);
      if (order === wanted) return mail;
      if (order > wanted) {
        this.#ahead = mail; // a later folder's: kept for then
        return null;
      }
      // an earlier folder's (a cache not grouped by folder): its file gets parsed
    }
  }

  /** Reads to the end (the message ids follow the mails) and closes. */
  async finish(): Promise<void> {
    while (await this.#read()) {
      // mails of no folder asked for: their files were parsed
    }
    await this.close();
  }

  /** Stops reading. */
  async close(): Promise<void> {
    this.#done = true;
    await this.#lines.return(undefined);
  }

  async #read(): Promise<CachedMail | null> {
    while (!this.#done) {
      let row: Row;
      try {
        if (this.#next >= this.#batch.length) {
          const next = await this.#lines.next();
          if (next.done) break;
          this.#batch = next.value;
          this.#next = 0;
        }
        row = JSON.parse(this.#batch[this.#next++]);
      } catch {
        break; // damaged from here on
      }
      switch (row[0]) {
        case "s":
          this.#sessions[row[1] as number] = row[2] as MailSession;
          break;
        case "f":
          this.#senders[row[1] as number] = row[2] as MailSender;
          break;
        case "m": {
          const mail = mailOf(row, this.#sessions, this.#senders);
          if (mail) return mail;
          break;
        }
        case "d":
          for (let i = 1; i + 1 < row.length; i += 2) {
            this.dedup.push([row[i] as string, row[i + 1] as string]);
          }
          break;
        default:
          this.#done = true; // the end line, or something unknown
      }
    }
    this.#done = true;
    return null;
  }
}

function mailOf(row: Row, sessions: MailSession[], senders: MailSender[]): CachedMail | null {
  const location = MAIL_LOCATIONS[row[1] as number];
  const session = sessions[row[11] as number];
  const [provider, name, id] = [row[2], row[3], row[7]];
  if (
    !location || !session || typeof provider !== "string" || typeof name !== "string" ||
    typeof id !== "string"
  ) {
    return null;
  }
  const size = num(row[4]);
  const optional = (value: unknown) => (typeof value === "string" ? value : undefined);
  const time = (value: unknown) => (typeof value === "number" ? value : undefined);
  const record = makeRecord({
    id,
    provider,
    direction: row[8] === "outbound" ? "outbound" : "inbound",
    location,
    timestamp_ms: num(row[9]) ?? 0,
    received_ms: num(row[10]) ?? 0,
    session,
    from: senders[row[12] as number],
    to: optional(row[13]),
    preview: str(row[14]) ?? "",
    message_count: num(row[15]) ?? 0,
    attempts: num(row[16]) ?? 0,
    retry_ms: time(row[17]),
    dead_reason: optional(row[18]),
    finished_ms: time(row[19]),
    file: optional(row[20]),
    requeues: num(row[21]) ?? 0,
  });
  const stamp = size === null ? null : { size, ino: num(row[5]), mtime: num(row[6]) };
  return { location, provider, name, stamp, record };
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
  const yielder = new Yielder();
  try {
    await writeFileAtomicWith(path, async (file) => {
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
          r.timestamp_ms,
          r.received_ms,
          session,
          from,
          r.to ?? null,
          r.preview,
          r.message_count,
          r.attempts,
          r.retry_ms ?? null,
          r.dead_reason ?? null,
          r.finished_ms ?? null,
          r.file ?? null,
          r.requeues,
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
    }, { mode: 0o600 });
  } finally {
    yielder.close();
  }
}
