import { join } from "node:path";
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
  readonly #counts: Record<MailLocation, number> = {
    inbound: 0,
    outbound: 0,
    archive: 0,
    deadletter: 0,
  };

  /** @param layout The mailbox. */
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

  /** Writes a new mail into `location` and indexes it. */
  async create(doc: MailDocument, location: MailLocation): Promise<MailRecord> {
    const path = await this.#pathFor(doc.frontMatter, location);
    await writeFileAtomic(path, renderMail(doc), { mode: 0o600 });
    const record = recordOf(doc.frontMatter, location, path);
    this.#put(record);
    return record;
  }

  /** Replaces a mail's file in place (new attempt count, retry time…). */
  async update(doc: MailDocument): Promise<MailRecord> {
    const old = this.#index.get(doc.frontMatter.id);
    if (!old) throw new Deno.errors.NotFound(`no mail ${doc.frontMatter.id}`);
    await writeFileAtomic(old.path, renderMail(doc), { mode: 0o600 });
    const record = recordOf(doc.frontMatter, old.location, old.path);
    this.#put(record);
    return record;
  }

  /** Moves a mail to `location`, writing `doc` there, then removing the old file. */
  async move(doc: MailDocument, location: MailLocation): Promise<MailRecord> {
    const old = this.#index.get(doc.frontMatter.id);
    if (!old) throw new Deno.errors.NotFound(`no mail ${doc.frontMatter.id}`);
    const path = await this.#pathFor(doc.frontMatter, location);
    await writeFileAtomic(path, renderMail(doc), { mode: 0o600 });
    const record = recordOf(doc.frontMatter, location, path);
    this.#put(record);
    if (old.path !== path) {
      await removeIfExists(old.path);
      await syncDirectory(join(old.path, ".."));
    }
    return record;
  }

  /**
   * Indexes every mail on disk: removes temp files left by a crash, and when
   * a mail is in two folders keeps the later one (archive and dead letters
   * are final) and removes the other.
   */
  async scan(): Promise<ScanResult> {
    const result: ScanResult = {
      mails: 0,
      messageIds: new Map(),
      pendingKeys: new Set(),
      unreadable: [],
      duplicatesRemoved: [],
    };
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
          let doc: MailDocument;
          try {
            doc = parseMail(await Deno.readTextFile(path));
          } catch {
            result.unreadable.push(path);
            continue;
          }
          const fm = doc.frontMatter;
          const previous = this.#index.get(fm.id);
          if (previous) {
            await removeIfExists(previous.path);
            result.duplicatesRemoved.push(previous.path);
          }
          this.#put(recordOf(fm, location, path));
          for (const m of fm.messages) {
            if (typeof m.pending_key === "string") result.pendingKeys.add(m.pending_key);
            if (typeof m.message_id === "string") {
              result.messageIds.set(dedupKey(fm.provider, m.message_id), m.pending_key);
            }
          }
        }
      }
    }
    result.mails = this.#index.size;
    return result;
  }

  #put(record: MailRecord): void {
    const old = this.#index.get(record.id);
    if (old) this.#counts[old.location]--;
    this.#index.set(record.id, record);
    this.#counts[record.location]++;
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
