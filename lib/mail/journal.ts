import { writeAll, writeFileAtomic } from "../fs/mod.ts";
import type { MailMessage, MailSession } from "./mail_file.ts";

/**
 * One acknowledged inbound message, as the pending journal holds it until a
 * mail covering it is on disk.
 */
export interface JournalRecord {
  /** The pending key the message was acknowledged with (unique). */
  key: string;
  /** Its provider. */
  provider: string;
  /** The conversation (the debounce bucket is `provider` + `session.id` + `thread_key`). */
  session: MailSession;
  /** The message itself. */
  message: MailMessage;
}

/** The journal cannot take more appends (closed, or a write failed). */
export class JournalClosedError extends Error {
  /**
   * Creates a `JournalClosedError`.
   *
   * @param message Why.
   */
  constructor(message: string) {
    super(message);
    this.name = "JournalClosedError";
  }
}

/** Options of {@link PendingJournal.open}. */
export interface JournalOptions {
  /** Rewrite the journal with only its live records once it grows past this (default 8 MiB). */
  compactBytes?: number;
}

interface QueuedAppend {
  record: JournalRecord;
  line: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const encoder = new TextEncoder();

/**
 * Reads the records of a journal file. A torn last line (the process was
 * killed mid-write) and any line that is not a record are skipped: such a
 * line was never acknowledged, because acknowledgement waits for the fsync.
 */
export async function readJournal(path: string): Promise<JournalRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  const records: JournalRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const record = JSON.parse(line) as JournalRecord;
      if (
        typeof record?.key === "string" && typeof record.provider === "string" &&
        typeof record.session?.id === "string" && typeof record.message?.text === "string"
      ) {
        records.push(record);
      }
    } catch {
      // torn or foreign line: never acknowledged
    }
  }
  return records;
}

/**
 * The durable pending journal: an append-only JSON-lines file with group
 * commit. Concurrent {@link PendingJournal.append} calls are batched into one
 * write and one `fdatasync`; each call resolves only after the fsync that
 * covers its record, so an acknowledged message survives SIGKILL.
 *
 * Records stay *live* until {@link PendingJournal.release} says a mail that
 * covers them is durable. The file is truncated when nothing is live and
 * compacted (rewritten atomically with only the live records) when it grows.
 */
export class PendingJournal {
  readonly #path: string;
  readonly #compactBytes: number;
  #file: Deno.FsFile;
  #queue: QueuedAppend[] = [];
  #live = new Map<string, string>();
  #liveBytes = 0;
  #size = 0;
  #running = false;
  #idle: Promise<void> = Promise.resolve();
  #wakeIdle: () => void = () => {};
  #maintenanceWanted = false;
  #broken: unknown = null;
  #closed = false;
  #tornTail = false;
  #commits = 0;

  private constructor(path: string, file: Deno.FsFile, options: JournalOptions) {
    this.#path = path;
    this.#file = file;
    this.#compactBytes = options.compactBytes ?? 8 * 1024 * 1024;
  }

  /**
   * Opens the journal at `path`, keeping only `carry` (records of the last
   * run not yet in a mail, which stay live until released): the file is
   * replaced atomically, so a crash here leaves the old journal in place.
   */
  static async open(
    path: string,
    options: JournalOptions & { carry?: JournalRecord[] } = {},
  ): Promise<PendingJournal> {
    const lines = (options.carry ?? []).map((record) => JSON.stringify(record) + "\n");
    await writeFileAtomic(path, lines.join(""), { mode: 0o600 });
    const file = await Deno.open(path, { append: true });
    const journal = new PendingJournal(path, file, options);
    (options.carry ?? []).forEach((record, i) => {
      journal.#live.set(record.key, lines[i]);
      journal.#liveBytes += lines[i].length;
      journal.#size += encoder.encode(lines[i]).length;
    });
    return journal;
  }

  /** Records acknowledged and not yet released. */
  get liveCount(): number {
    return this.#live.size;
  }

  /** Group commits (write + fdatasync) made so far. */
  get commits(): number {
    return this.#commits;
  }

  /** Resolves once queued appends and housekeeping (truncation, compaction) are done. */
  settled(): Promise<void> {
    return this.#idle;
  }

  /** The journal file's current size in bytes. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends `record` and resolves once it is on disk (written and
   * fdatasynced together with every other record that arrived meanwhile).
   *
   * @throws {JournalClosedError} when the journal is closed or broken.
   */
  append(record: JournalRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new JournalClosedError("the journal is closed"));
    if (this.#broken) {
      return Promise.reject(
        new JournalClosedError(`the journal failed earlier: ${String(this.#broken)}`),
      );
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, line: JSON.stringify(record) + "\n", resolve, reject });
      this.#kick();
    });
  }

  /** Marks records as covered by a durable mail: they no longer need the journal. */
  release(keys: Iterable<string>): void {
    for (const key of keys) {
      const line = this.#live.get(key);
      if (line === undefined) continue;
      this.#live.delete(key);
      this.#liveBytes -= line.length;
    }
    if (this.#live.size === 0 && this.#size > 0) {
      this.#maintenanceWanted = true;
      this.#kick();
    } else if (this.#size > this.#compactBytes && this.#liveBytes * 2 < this.#size) {
      this.#maintenanceWanted = true;
      this.#kick();
    }
  }

  /**
   * Waits for queued appends, truncates the journal if nothing is live, and
   * closes it. Resolves `true` when the journal file was left empty.
   */
  async close(): Promise<boolean> {
    if (this.#closed) return false;
    this.#closed = true;
    await this.#idle;
    let empty = false;
    if (this.#live.size === 0 && !this.#broken) {
      try {
        await this.#file.truncate(0);
        await this.#file.syncData();
        empty = true;
      } catch {
        // the records are all in mails already; a leftover journal replays as no-ops
      }
    }
    this.#file.close();
    return empty;
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    this.#idle = new Promise((resolve) => (this.#wakeIdle = resolve));
    this.#run().catch(() => {});
  }

  async #run(): Promise<void> {
    while (true) {
      // Housekeeping first: under a steady flood the queue is never empty.
      if (this.#maintenanceWanted && !this.#broken) {
        this.#maintenanceWanted = false;
        await this.#maintain();
        continue;
      }
      if (this.#queue.length > 0) {
        const batch = this.#queue.splice(0);
        await this.#commit(batch);
        continue;
      }
      this.#running = false;
      this.#wakeIdle();
      return;
    }
  }

  async #commit(batch: QueuedAppend[]): Promise<void> {
    if (this.#broken) {
      for (const item of batch) item.reject(new JournalClosedError("the journal failed"));
      return;
    }
    // After a failed write a partial line may end the file: start on a fresh line
    // so the next record is not glued to it.
    const text = (this.#tornTail ? "\n" : "") + batch.map((b) => b.line).join("");
    const bytes = encoder.encode(text);
    try {
      await writeAll(this.#file, bytes);
      await this.#file.syncData();
    } catch (error) {
      this.#tornTail = true;
      for (const item of batch) item.reject(error);
      return;
    }
    this.#tornTail = false;
    this.#commits++;
    this.#size += bytes.length;
    for (const item of batch) {
      this.#live.set(item.record.key, item.line);
      this.#liveBytes += item.line.length;
      item.resolve();
    }
  }

  async #maintain(): Promise<void> {
    try {
      if (this.#live.size === 0) {
        if (this.#size === 0) return;
        await this.#file.truncate(0);
        await this.#file.syncData();
        this.#size = 0;
        return;
      }
      if (this.#size <= this.#compactBytes || this.#liveBytes * 2 >= this.#size) return;
    } catch {
      return; // every record in the file is in a mail already: a longer file replays as no-ops
    }
    const text = [...this.#live.values()].join("");
    try {
      await writeFileAtomic(this.#path, text, { mode: 0o600 });
    } catch {
      return; // the old file is intact and still ours: keep appending to it
    }
    try {
      const file = await Deno.open(this.#path, { append: true });
      this.#file.close();
      this.#file = file;
      this.#size = encoder.encode(text).length;
    } catch (error) {
      // Appending to the replaced file would lose records: stop.
      this.#broken = error;
    }
  }
}
