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

/** What {@link readJournal} found. */
export interface JournalRead {
  /** The records, in file order (cancelled ones left out). */
  records: JournalRecord[];
  /**
   * Lines that end in a newline yet are not records: damage, since every
   * acknowledged record is a whole line. Callers keep the file for inspection.
   */
  corrupt: number;
}

function isRecord(value: unknown): value is JournalRecord {
  const record = value as JournalRecord;
  return typeof record?.key === "string" && typeof record.provider === "string" &&
    typeof record.session?.id === "string" && typeof record.message?.text === "string" &&
    typeof record.message.sender?.id === "string";
}

/**
 * Reads the records of a journal file. A torn last line (the process was
 * killed mid-write) is skipped: it was never acknowledged, because
 * acknowledgement waits for the fsync of the whole line. Records named by a
 * `{"cancel": [keys]}` line were never acknowledged either (their write
 * failed) and are left out. Any other line that is not a record is counted
 * in `corrupt`.
 */
export async function readJournal(path: string): Promise<JournalRead> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { records: [], corrupt: 0 };
    throw error;
  }
  const records: JournalRecord[] = [];
  const cancelled = new Set<string>();
  let corrupt = 0;
  // A line cut short by a failed write is followed by the line cancelling it: not damage.
  let unexplained = 0;
  const lines = text.split("\n");
  lines.pop(); // "" when the file ends with a newline, else a torn tail: never acknowledged
  for (const line of lines) {
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      corrupt += unexplained;
      unexplained = 1;
      continue;
    }
    const cancel = (value as { cancel?: unknown })?.cancel;
    if (Array.isArray(cancel)) {
      for (const key of cancel) if (typeof key === "string") cancelled.add(key);
      unexplained = 0;
      continue;
    }
    corrupt += unexplained;
    unexplained = 0;
    if (isRecord(value)) records.push(value);
    else corrupt++;
  }
  corrupt += unexplained;
  return { records: records.filter((r) => !cancelled.has(r.key)), corrupt };
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
  #cancel: string[] = [];
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
   * When the disk refuses the new file (full), the old one is kept and
   * appended to: it holds the carried records already.
   */
  static async open(
    path: string,
    options: JournalOptions & { carry?: JournalRecord[] } = {},
  ): Promise<PendingJournal> {
    const lines = (options.carry ?? []).map((record) => JSON.stringify(record) + "\n");
    let size = 0, tornTail = false;
    try {
      await writeFileAtomic(path, lines.join(""), { mode: 0o600 });
      for (const line of lines) size += encoder.encode(line).length;
    } catch (error) {
      const old = await Deno.readFile(path).catch(() => null);
      if (old === null) throw error;
      size = old.length;
      tornTail = size > 0 && old[size - 1] !== 10;
    }
    const file = await Deno.open(path, { append: true });
    const journal = new PendingJournal(path, file, options);
    journal.#size = size;
    journal.#tornTail = tornTail;
    (options.carry ?? []).forEach((record, i) => {
      journal.#live.set(record.key, lines[i]);
      journal.#liveBytes += lines[i].length;
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
    // Records of an earlier failed write that may still be in the file are
    // cancelled in the same write (and fsync) as the next records, so a
    // replay never sees both them and a sender's retry of them.
    const cancel = this.#cancel.length > 0 ? JSON.stringify({ cancel: this.#cancel }) + "\n" : "";
    const text = (this.#tornTail ? "\n" : "") + cancel + batch.map((b) => b.line).join("");
    const bytes = encoder.encode(text);
    try {
      await writeAll(this.#file, bytes);
      await this.#file.syncData();
    } catch (error) {
      for (const item of batch) item.reject(error);
      await this.#undo(batch);
      return;
    }
    this.#tornTail = false;
    this.#cancel = [];
    this.#commits++;
    this.#size += bytes.length;
    for (const item of batch) {
      this.#live.set(item.record.key, item.line);
      this.#liveBytes += item.line.length;
      item.resolve();
    }
  }

  /**
   * After a failed write, cuts the file back to its last good size, so no
   * part of the failed records stays; when even that fails, the next write
   * cancels them.
   */
  async #undo(batch: QueuedAppend[]): Promise<void> {
    try {
      await this.#file.truncate(this.#size);
      await this.#file.syncData();
      this.#tornTail = false;
    } catch {
      this.#tornTail = true;
      for (const item of batch) this.#cancel.push(item.record.key);
    }
  }

  async #maintain(): Promise<void> {
    try {
      if (this.#live.size === 0) {
        if (this.#size === 0 && !this.#tornTail) return;
        await this.#file.truncate(0);
        await this.#file.syncData();
        this.#size = 0;
        this.#tornTail = false;
        this.#cancel = [];
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
      this.#tornTail = false;
      this.#cancel = [];
    } catch (error) {
      // Appending to the replaced file would lose records: stop.
      this.#broken = error;
    }
  }
}
