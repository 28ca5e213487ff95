import { dirname, join, relative } from "node:path";
import { removeIfExists, syncDirectory, writeFileAtomic } from "../fs/mod.ts";
import { detached } from "./dedup.ts";
import { isoOf, type MailRecord, makeRecord, msOf } from "./mail_index.ts";
import {
  isValidProvider,
  locationRoot,
  type MailboxLayout,
  type MailLocation,
  providerDir,
} from "./mailbox.ts";
import {
  type MailDocument,
  mailFileName,
  type MailFrontMatter,
  parseMail,
  renderMail,
} from "./mail_file.ts";

/** A mail file's size, inode and mtime (how the index cache tells an edited file). */
export interface FileStamp {
  /** Size in bytes. */
  size: number;
  /** Inode number, when the platform has one. */
  ino: number | null;
  /** Modification time in ms. */
  mtime: number | null;
}

/** A mail file found in a folder. */
export interface ListedFile {
  /** Its provider folder. */
  provider: string;
  /** Its file name. */
  name: string;
}

/** Folders whose files are rewritten in place (the index cache checks their stamps). */
export const MUTABLE: ReadonlySet<MailLocation> = new Set(["inbound", "outbound"]);

/**
 * The start of a mail's text on one line, as the index keeps it: at most
 * 81 characters (more than 80 means cut; the listing then shows 79 and an
 * ellipsis, which would make the kept text two bytes a character).
 */
function preview(fm: MailFrontMatter): string {
  const text = fm.content?.text ?? "";
  return text.replace(/\s+/g, " ").trim().slice(0, 81);
}

function detachedOrUndefined(text: string | undefined): string | undefined {
  return typeof text === "string" ? detached(text) : undefined;
}

/** The usual file name of a mail: `<YYYYMMDDTHHMMSS>_<id>.md`, time of receipt in UTC. */
export function recordFileName(record: Pick<MailRecord, "id" | "received_ms">): string {
  return mailFileName({ id: record.id, received_at: isoOf(record.received_ms) });
}

/**
 * The index record of a mail with front matter `fm`, in `location`, named
 * `file`. Its strings are fresh copies (see {@link detached}).
 */
export function recordOf(fm: MailFrontMatter, location: MailLocation, file?: string): MailRecord {
  const delivery = fm.delivery;
  const finished = location === "deadletter"
    ? delivery.dead_at
    : location === "archive"
    ? delivery.completed_at ?? delivery.delivered_at
    : undefined;
  const session = JSON.parse(JSON.stringify(fm.session ?? { id: "", type: "direct" }));
  const from = fm.participants?.from;
  const record = makeRecord({
    id: detached(String(fm.id)),
    provider: detached(String(fm.provider)),
    direction: fm.direction,
    location,
    timestamp_ms: msOf(fm.timestamp),
    received_ms: msOf(fm.received_at),
    session,
    preview: detached(preview(fm)),
    message_count: fm.messages.length,
    attempts: typeof delivery.attempts === "number" ? delivery.attempts : 0,
    from: from ? { id: detached(String(from.id)), name: detached(String(from.name)) } : undefined,
    to: detachedOrUndefined(fm.participants?.to?.id),
    retry_ms: delivery.retry_at ? msOf(delivery.retry_at) : undefined,
    dead_reason: detachedOrUndefined(delivery.dead_reason),
    finished_ms: finished ? msOf(finished) : undefined,
    requeues: delivery.requeued?.length ?? 0,
  });
  if (file !== undefined && file !== recordFileName(record)) record.file = detached(file);
  return record;
}

/** The stamp of `path`, or `null` when it cannot be read. */
export async function fileStamp(path: string): Promise<FileStamp | null> {
  try {
    const info = await Deno.stat(path);
    return { size: info.size, ino: info.ino ?? null, mtime: info.mtime?.getTime() ?? null };
  } catch {
    return null;
  }
}

/** Lists the names of `dir`'s entries of one kind (none when it does not exist). */
export async function listDir(dir: string, kind: "dir" | "file"): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (kind === "dir" ? entry.isDirectory : entry.isFile) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return names;
    throw error;
  }
  return names;
}

/**
 * The mail files on disk. Every write is atomic (temp file, fsync, rename,
 * directory fsync); a move writes the new place first and removes the old
 * one after (the indexer removes the stale copy a crash in between leaves).
 * It keeps no index: callers put the records it returns into theirs.
 */
export class MailStore {
  readonly #layout: MailboxLayout;
  readonly #dirs = new Set<string>();
  /** Stamps of the files in mutable folders (for the index cache). */
  readonly #stamps = new Map<string, FileStamp>();

  /**
   * Creates a `MailStore`.
   *
   * @param layout The mailbox.
   */
  constructor(layout: MailboxLayout) {
    this.#layout = layout;
  }

  /** The mailbox's paths. */
  get layout(): MailboxLayout {
    return this.#layout;
  }

  /** The stamp of mail `id`'s file when it was last written or indexed (mutable folders only). */
  stampOf(id: string): FileStamp | undefined {
    return this.#stamps.get(id);
  }

  /** Records the stamp of mail `id`'s file (`null`: none to keep). */
  noteStamp(id: string, stamp: FileStamp | null): void {
    if (stamp) this.#stamps.set(id, stamp);
    else this.#stamps.delete(id);
  }

  /** The file of a mail. */
  pathOf(
    record: Pick<MailRecord, "location" | "provider" | "id" | "received_ms" | "file">,
  ): string {
    return join(
      providerDir(this.#layout, record.location, record.provider),
      record.file ?? recordFileName(record),
    );
  }

  /**
   * Reads and parses a mail's file.
   *
   * @throws {MailFormatError} when the file is not a mail.
   */
  async read(record: MailRecord): Promise<MailDocument> {
    return parseMail(await Deno.readTextFile(this.pathOf(record)));
  }

  /** Writes a new mail into `location` (`text`: `doc` already rendered). */
  async create(
    doc: MailDocument,
    location: MailLocation,
    options: { text?: string } = {},
  ): Promise<MailRecord> {
    const record = recordOf(doc.frontMatter, location);
    await this.#ensureDir(record);
    await writeFileAtomic(this.pathOf(record), options.text ?? renderMail(doc), { mode: 0o600 });
    await this.#stamp(record);
    return record;
  }

  /** Replaces a mail's file in place (new attempt count, retry time…). */
  async update(record: MailRecord, doc: MailDocument): Promise<MailRecord> {
    await writeFileAtomic(this.pathOf(record), renderMail(doc), { mode: 0o600 });
    const updated = recordOf(doc.frontMatter, record.location, record.file);
    await this.#stamp(updated);
    return updated;
  }

  /**
   * Moves a mail to `location`, writing `doc` there, then removing the old
   * file. When the old file cannot be removed the new one is removed again,
   * so a failed move leaves the mail where it was.
   */
  async move(record: MailRecord, doc: MailDocument, location: MailLocation): Promise<MailRecord> {
    const moved = recordOf(doc.frontMatter, location);
    await this.#ensureDir(moved);
    const from = this.pathOf(record), to = this.pathOf(moved);
    await writeFileAtomic(to, renderMail(doc), { mode: 0o600 });
    if (from !== to) {
      try {
        await removeIfExists(from);
      } catch (error) {
        await removeIfExists(to).catch(() => {});
        throw error;
      }
      await syncDirectory(dirname(from));
    }
    await this.#stamp(moved);
    return moved;
  }

  /** Removes a mail's file (without the directory fsync: see {@link MailStore.syncDirs}). */
  async unlink(record: MailRecord): Promise<void> {
    await removeIfExists(this.pathOf(record));
    this.#stamps.delete(record.id);
  }

  /** fsyncs the folders of `records` once each (after {@link MailStore.unlink}s). */
  async syncDirs(records: Iterable<MailRecord>): Promise<void> {
    const dirs = new Set<string>();
    for (const record of records) dirs.add(dirname(this.pathOf(record)));
    for (const dir of dirs) await syncDirectory(dir);
  }

  /**
   * Moves an unreadable file to `.corrupt/` (keeping its place below the
   * mailbox in its name) and returns where it went.
   */
  async quarantine(path: string): Promise<string> {
    const rel = relative(this.#layout.root, path);
    let target = join(this.#layout.corruptDir, rel);
    await Deno.mkdir(dirname(target), { recursive: true, mode: 0o700 });
    try {
      await Deno.lstat(target);
      target = `${target}.${Date.now()}`;
    } catch {
      // free
    }
    await Deno.rename(path, target);
    await syncDirectory(dirname(path));
    await syncDirectory(dirname(target));
    return target;
  }

  /**
   * The mail files of `location`, by provider, sorted by name (oldest
   * first). Temp files a crash left behind are removed on the way.
   */
  async list(location: MailLocation): Promise<ListedFile[]> {
    const files: ListedFile[] = [];
    for (const provider of (await listDir(locationRoot(this.#layout, location), "dir")).sort()) {
      if (!isValidProvider(provider)) continue;
      const dir = providerDir(this.#layout, location, provider);
      this.#dirs.add(dir);
      for (const name of (await listDir(dir, "file")).sort()) {
        if (name.startsWith(".")) {
          if (name.endsWith(".tmp")) await removeIfExists(join(dir, name)).catch(() => {});
          continue;
        }
        if (name.endsWith(".md")) files.push({ provider, name });
      }
    }
    return files;
  }

  async #stamp(record: MailRecord): Promise<void> {
    if (MUTABLE.has(record.location)) {
      this.noteStamp(record.id, await fileStamp(this.pathOf(record)));
    } else this.#stamps.delete(record.id);
  }

  async #ensureDir(record: Pick<MailRecord, "location" | "provider">): Promise<void> {
    const dir = providerDir(this.#layout, record.location, record.provider);
    if (this.#dirs.has(dir)) return;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await syncDirectory(join(dir, ".."));
    this.#dirs.add(dir);
  }
}
