import { writeAll } from "../fs/mod.ts";

const encoder = new TextEncoder();

interface Pending {
  text: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * An append-only file with group commit: lines appended while a write is
 * in flight share the next write and `fdatasync`, and each append resolves
 * only once its line is on disk. A failed write is cut back off the file
 * (so no part of it stays), and its appends reject. Work that must not
 * interleave with appends (compaction) runs through {@link AppendLog.exclusive}.
 */
export class AppendLog {
  /** The file's path. */
  readonly path: string;
  #file: Deno.FsFile;
  #size: number;
  #queue: Pending[] = [];
  #jobs: (() => Promise<void>)[] = [];
  #running = false;
  #idle: Promise<void> = Promise.resolve();
  #wake: () => void = () => {};
  #closed = false;
  /** A failed write could not be cut off: the next write starts on a fresh line. */
  #torn = false;

  private constructor(path: string, file: Deno.FsFile, size: number) {
    this.path = path;
    this.#file = file;
    this.#size = size;
  }

  /** Opens (creating) the file at `path` for appending. */
  static async open(path: string): Promise<AppendLog> {
    const file = await Deno.open(path, { append: true, create: true, mode: 0o600 });
    const { size } = await file.stat();
    return new AppendLog(path, file, size);
  }

  /** The file's size in bytes. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends `lines` (each gets a newline) and resolves once they are on
   * disk; rejects, leaving the file as it was, when the write fails.
   */
  append(lines: string[]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`${this.path} is closed`));
    if (lines.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#queue.push({ text: lines.join("\n") + "\n", resolve, reject });
      this.#kick();
    });
  }

  /** Runs `job` between writes, with no append in flight (e.g. rewriting the file). */
  exclusive(job: () => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#jobs.push(() => job().then(resolve, reject));
      this.#kick();
    });
  }

  /** Empties the file (call it from {@link AppendLog.exclusive}). */
  async truncate(): Promise<void> {
    await this.#file.truncate(0);
    await this.#file.syncData();
    this.#size = 0;
    this.#torn = false;
  }

  /** Waits for pending writes and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#idle;
    this.#file.close();
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    this.#idle = new Promise((resolve) => (this.#wake = resolve));
    this.#run().catch(() => {});
  }

  async #run(): Promise<void> {
    for (;;) {
      const batch = this.#queue.splice(0);
      if (batch.length === 0) {
        // Jobs run only when no append waits, so they see only what is on disk.
        const job = this.#jobs.shift();
        if (!job) break;
        await job().catch(() => {});
        continue;
      }
      const bytes = encoder.encode((this.#torn ? "\n" : "") + batch.map((p) => p.text).join(""));
      try {
        await writeAll(this.#file, bytes);
        await this.#file.syncData();
        this.#size += bytes.length;
        this.#torn = false;
        for (const p of batch) p.resolve();
      } catch (error) {
        await this.#file.truncate(this.#size).then(() => {}, () => (this.#torn = true));
        for (const p of batch) p.reject(error);
      }
    }
    this.#running = false;
    this.#wake();
  }
}

/** The whole lines of a log file (a last line cut short by a crash was never acknowledged). */
export async function readLogLines(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  const lines = text.split("\n");
  lines.pop(); // "" after the last newline, or a line cut short by a crash: never acknowledged
  return lines.filter((line) => line !== "");
}
