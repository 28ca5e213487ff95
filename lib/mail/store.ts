import { basename, join } from "node:path";
import { removeIfExists, syncDirectory, writeFileAtomic } from "../fs/mod.ts";
import {
  isValidProvider,
  locationRoot,
  MAIL_LOCATIONS,
  type MailboxLayout,
  type MailLocation,
  providerDir,
} from "./mailbox.ts";
import {
  type MailDocument,
  mailFileName,
  type MailFrontMatter,
  type MailSender,
  type MailSession,
  parseMail,
  renderMail,
} from "./mail_file.ts";

/** What the index keeps of each mail (the file holds the rest). */
export interface MailRecord {
  /** `<provider>_<uid>`. */
  id: string;
  /** Its provider. */
  provider: string;
  /** `inbound` or `outbound`. */
  direction: "inbound" | "outbound";
  /** The folder it is in. */
  location: MailLocation;
  /** Its file (absolute). */
  path: string;
  /** When its first message was sent. */
  timestamp: string;
  /** When courier received its first message (or queued it). */
  received_at: string;
  /** The conversation. */
  session: MailSession;
  /** The first sender (inbound). */
  from?: MailSender;
  /** The recipient (outbound). */
  to?: string;
  /** The start of its text, one line. */
  preview: string;
  /** How many messages it folds. */
  message_count: number;
  /** Failed attempts so far. */
  attempts: number;
  /** Not claimable or not sent before this time. */
  retry_at?: string;
  /** Why it was dead-lettered. */
  dead_reason?: string;
}

/** What a scan of the mailbox found besides the mails themselves. */
export interface ScanResult {
  /** Mails indexed. */
  mails: number;
  /** `provider \0 message_id` → pending key, of every message in any mail (deduplication). */
  messageIds: Map<string, string>;
  /** Pending keys of every message in any mail (to skip journal records already folded). */
  pendingKeys: Set<string>;
  /** Files that are not valid mails (left in place). */
  unreadable: string[];
  /** Stale copies removed (a crash between writing a mail's new place and removing its old). */
  duplicatesRemoved: string[];
  /** Mails parsed from their files. */
  parsed: number;
  /** Mails taken from the index snapshot. */
  cached: number;
}

/** One mail in an {@link IndexSnapshot}. */
export interface CachedMail {
  /** The file's size, inode and mtime when the snapshot was written (mutable folders only). */
  stat?: { size: number; ino: number | null; mtime: number | null };
  /** The index entry, without location and path (they are the key). */
  record: Omit<MailRecord, "location" | "path">;
}

/**
 * A cache of the mail index (`.state/index.json`), so a start need not
 * parse every mail. It is written only while the pending journal is empty,
 * so every journal record found at a later start is newer than it, and so
 * is any mail covering such a record: those mails are not in the snapshot
 * and get parsed (yielding their pending keys). Files in `inbound/` and
 * `outbound/` are rewritten in place, so they are reused only when size,
 * inode and mtime still match; `archive/` and `.deadletter/` are final.
 */
export interface IndexSnapshot {
  /** Format version (1). */
  version: 1;
  /** `<location>/<provider>/<file name>` → cached entry. */
  mails: Record<string, CachedMail>;
  /** `provider \0 message_id` → pending key of every deduplicated message id. */
  dedup: Record<string, string>;
}

/** Reads an index snapshot; `null` when missing or not valid (then every mail is parsed). */
export async function readIndexSnapshot(path: string): Promise<IndexSnapshot | null> {
  try {
    const value = JSON.parse(await Deno.readTextFile(path)) as IndexSnapshot;
    if (
      value?.version !== 1 || typeof value.mails !== "object" || value.mails === null ||
      typeof value.dedup !== "object" || value.dedup === null
    ) return null;
    return value;
  } catch {
    return null;
  }
}

const MUTABLE: ReadonlySet<MailLocation> = new Set(["inbound", "outbound"]);

function unchanged(
  cached: CachedMail,
  location: MailLocation,
  now: CachedMail["stat"] | null,
): boolean {
  if (!MUTABLE.has(location)) return true;
  return !!now && !!cached.stat && now.size === cached.stat.size &&
    now.ino === cached.stat.ino && now.mtime === cached.stat.mtime;
}

async function fileStat(path: string): Promise<CachedMail["stat"] | null> {
  try {
    const info = await Deno.stat(path);
    return { size: info.size, ino: info.ino ?? null, mtime: info.mtime?.getTime() ?? null };
  } catch {
    return null;
  }
}

/** The key under which a message id is deduplicated. */
export function dedupKey(provider: string, messageId: string): string {
  return `${provider}\u0000${messageId}`;
}

function preview(fm: MailFrontMatter): string {
  const text = fm.content?.text ?? "";
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 80 ? line.slice(0, 79) + "…" : line;
}

function recordOf(fm: MailFrontMatter, location: MailLocation, path: string): MailRecord {
  const record: MailRecord = {
    id: fm.id,
    provider: fm.provider,
    direction: fm.direction,
    location,
    path,
    timestamp: fm.timestamp,
    received_at: fm.received_at,
    session: fm.session,
    preview: preview(fm),
    message_count: fm.messages.length,
    attempts: fm.delivery.attempts,
  };
  if (fm.participants?.from) record.from = fm.participants.from;
  if (fm.participants?.to) record.to = fm.participants.to.id;
  if (fm.delivery.retry_at) record.retry_at = fm.delivery.retry_at;
  if (fm.delivery.dead_reason) record.dead_reason = fm.delivery.dead_reason;
  return record;
}

/**
 * The mails on disk and an in-memory index of them. Every write is atomic
 * (temp file, fsync, rename, directory fsync); a move writes the new place
 * first and removes the old one after, and {@link MailStore.scan} removes
 * the stale copy a crash in between leaves.
 */
export class MailStore {
  readonly #layout: MailboxLayout;
  readonly #index = new Map<string, MailRecord>();
  readonly #dirs = new Set<string>();
  /** File stats of mails in mutable folders, taken when their record was made. */
  readonly #stats = new Map<string, NonNullable<CachedMail["stat"]>>();
  readonly #counts: Record<MailLocation, number> = {
    inbound: 0,
    outbound: 0,
    archive: 0,
    deadletter: 0,
  };

  /**
   * Creates a `MailStore`.
   *
   * @param layout The mailbox.
   */
  constructor(layout: MailboxLayout) {
    this.#layout = layout;
  }

  /** How many mails are indexed. */
  get size(): number {
    return this.#index.size;
  }

  /** How many mails are in `location`. */
  count(location: MailLocation): number {
    return this.#counts[location];
  }

  /** The index entry of `id`. */
  get(id: string): MailRecord | undefined {
    return this.#index.get(id);
  }

  /** Every indexed mail. */
  records(): IterableIterator<MailRecord> {
    return this.#index.values();
  }

  /** Reads a mail's file. */
  async read(id: string): Promise<MailDocument> {
    const record = this.#index.get(id);
    if (!record) throw new Deno.errors.NotFound(`no mail ${id}`);
    return parseMail(await Deno.readTextFile(record.path));
  }

  /** Writes a new mail into `location` and indexes it (`text`: `doc` already rendered). */
  async create(
    doc: MailDocument,
    location: MailLocation,
    options: { text?: string } = {},
  ): Promise<MailRecord> {
    const path = await this.#pathFor(doc.frontMatter, location);
    await writeFileAtomic(path, options.text ?? renderMail(doc), { mode: 0o600 });
    const record = recordOf(doc.frontMatter, location, path);
    this.#put(record, MUTABLE.has(location) ? await fileStat(path) : null);
    return record;
  }

  /** Replaces a mail's file in place (new attempt count, retry time…). */
  async update(doc: MailDocument): Promise<MailRecord> {
    const old = this.#index.get(doc.frontMatter.id);
    if (!old) throw new Deno.errors.NotFound(`no mail ${doc.frontMatter.id}`);
    await writeFileAtomic(old.path, renderMail(doc), { mode: 0o600 });
    const record = recordOf(doc.frontMatter, old.location, old.path);
    this.#put(record, MUTABLE.has(old.location) ? await fileStat(old.path) : null);
    return record;
  }

  /** Moves a mail to `location`, writing `doc` there, then removing the old file. */
  async move(doc: MailDocument, location: MailLocation): Promise<MailRecord> {
    const old = this.#index.get(doc.frontMatter.id);
    if (!old) throw new Deno.errors.NotFound(`no mail ${doc.frontMatter.id}`);
    const path = await this.#pathFor(doc.frontMatter, location);
    await writeFileAtomic(path, renderMail(doc), { mode: 0o600 });
    const record = recordOf(doc.frontMatter, location, path);
    this.#put(record, MUTABLE.has(location) ? await fileStat(path) : null);
    if (old.path !== path) {
      await removeIfExists(old.path);
      await syncDirectory(join(old.path, ".."));
    }
    return record;
  }

  /**
   * Indexes every mail on disk: removes temp files left by a crash, and when
   * a mail is in two folders keeps the later one (archive and dead letters
   * are final) and removes the other. Mails found unchanged in `snapshot`
   * are not parsed again.
   */
  async scan(options: { snapshot?: IndexSnapshot | null } = {}): Promise<ScanResult> {
    const result: ScanResult = {
      mails: 0,
      messageIds: new Map(Object.entries(options.snapshot?.dedup ?? {})),
      pendingKeys: new Set(),
      unreadable: [],
      duplicatesRemoved: [],
      parsed: 0,
      cached: 0,
    };
    const cache = options.snapshot?.mails ?? {};
    this.#index.clear();
    for (const location of MAIL_LOCATIONS) this.#counts[location] = 0;
    for (const location of MAIL_LOCATIONS) {
      for (const provider of await listDir(locationRoot(this.#layout, location), "dir")) {
        if (!isValidProvider(provider)) continue;
        const dir = providerDir(this.#layout, location, provider);
        this.#dirs.add(dir);
        for (const name of (await listDir(dir, "file")).sort()) {
          const path = join(dir, name);
          if (name.startsWith(".")) {
            if (name.endsWith(".tmp")) await removeIfExists(path);
            continue;
          }
          if (!name.endsWith(".md")) continue;
          let record: MailRecord;
          const cached = cache[`${location}/${provider}/${name}`];
          const stat = MUTABLE.has(location) ? await fileStat(path) : null;
          if (cached && unchanged(cached, location, stat)) {
            record = { ...cached.record, location, path };
            result.cached++;
          } else {
            let doc: MailDocument;
            try {
              doc = parseMail(await Deno.readTextFile(path));
            } catch {
              result.unreadable.push(path);
              continue;
            }
            const fm = doc.frontMatter;
            record = recordOf(fm, location, path);
            result.parsed++;
            for (const m of fm.messages) {
              if (typeof m.pending_key === "string") result.pendingKeys.add(m.pending_key);
              if (typeof m.message_id === "string") {
                result.messageIds.set(dedupKey(fm.provider, m.message_id), m.pending_key);
              }
            }
          }
          const previous = this.#index.get(record.id);
          if (previous) {
            await removeIfExists(previous.path);
            result.duplicatesRemoved.push(previous.path);
          }
          this.#put(record, stat);
        }
      }
    }
    result.mails = this.#index.size;
    return result;
  }

  /**
   * Builds an index snapshot of every mail (with `dedup`, the message ids
   * to remember). Write it only while the pending journal is empty.
   */
  snapshot(dedup: Record<string, string>): IndexSnapshot {
    const mails: Record<string, CachedMail> = {};
    for (const record of this.#index.values()) {
      const { location, path, ...rest } = record;
      const key = `${location}/${record.provider}/${basename(path)}`;
      if (MUTABLE.has(location)) {
        const stat = this.#stats.get(record.id);
        if (!stat) continue;
        mails[key] = { stat, record: rest };
      } else {
        mails[key] = { record: rest };
      }
    }
    return { version: 1, mails, dedup };
  }

  #put(record: MailRecord, stat: CachedMail["stat"] | null): void {
    const old = this.#index.get(record.id);
    if (old) this.#counts[old.location]--;
    this.#index.set(record.id, record);
    this.#counts[record.location]++;
    if (stat) this.#stats.set(record.id, stat);
    else this.#stats.delete(record.id);
  }

  async #pathFor(fm: MailFrontMatter, location: MailLocation): Promise<string> {
    const dir = providerDir(this.#layout, location, fm.provider);
    if (!this.#dirs.has(dir)) {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      await syncDirectory(join(dir, ".."));
      this.#dirs.add(dir);
    }
    return join(dir, mailFileName(fm));
  }
}

async function listDir(dir: string, kind: "dir" | "file"): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (kind === "dir" ? entry.isDirectory : entry.isFile) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return names;
}
