import { join } from "node:path";
import { locationRoot, MAIL_LOCATIONS, mailboxLayout } from "../mail/mailbox.ts";
import { parseMail } from "../mail/mail_file.ts";

/** A finding of {@link checkMailbox} (the shape of `doctor`'s findings). */
export interface MailboxFinding {
  /** Always `mailbox`. */
  check: "mailbox";
  /** `ok`, or a `problem`. */
  level: "ok" | "problem";
  /** What was found. */
  message: string;
  /** How to fix it. */
  fix?: string;
}

/** Reads this many mail files at once. */
const CONCURRENCY = 8;

async function entries(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return [];
  }
}

/** Every file below `dir` (relative paths). */
async function walk(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await entries(dir)) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) found.push(...await walk(join(dir, entry.name), rel));
    else found.push(rel);
  }
  return found;
}

/**
 * The mailbox of a home: damaged state files the daemon moved aside
 * (`.state/*.corrupt-*`), unreadable mails it quarantined (`.corrupt/`),
 * and every mail file, parsed, so a mail damaged behind courier's back is
 * found before an agent trips on it.
 */
export async function checkMailbox(root: string): Promise<MailboxFinding[]> {
  const layout = mailboxLayout(root);
  const findings: MailboxFinding[] = [];
  const aside = (await entries(layout.stateDir)).map((e) => e.name).filter((name) =>
    name.includes(".corrupt-")
  );
  if (aside.length > 0) {
    const paths = aside.map((name) => join(layout.stateDir, name));
    findings.push({
      check: "mailbox",
      level: "problem",
      message: `damaged mail state was moved aside (the readable records were kept): ` +
        paths.join(", "),
      fix: `inspect, then remove: rm ${paths.join(" ")}`,
    });
  }
  const quarantined = await walk(layout.corruptDir);
  if (quarantined.length > 0) {
    findings.push({
      check: "mailbox",
      level: "problem",
      message: `${quarantined.length} unreadable mail file(s) were quarantined in ` +
        `${layout.corruptDir} (e.g. ${quarantined[0]})`,
      fix: `inspect them, then remove: rm -r ${layout.corruptDir}`,
    });
  }
  const files: string[] = [];
  for (const location of MAIL_LOCATIONS) {
    const dir = locationRoot(layout, location);
    for (const provider of await entries(dir)) {
      if (!provider.isDirectory) continue;
      for (const file of await entries(join(dir, provider.name))) {
        if (file.isFile && file.name.endsWith(".md") && !file.name.startsWith(".")) {
          files.push(join(dir, provider.name, file.name));
        }
      }
    }
  }
  const unreadable: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < files.length) {
      const path = files[next++];
      try {
        parseMail(await Deno.readTextFile(path));
      } catch {
        unreadable.push(path);
      }
    }
  }));
  if (unreadable.length > 0) {
    findings.push({
      check: "mailbox",
      level: "problem",
      message: `${unreadable.length} of ${files.length} mail file(s) cannot be read as mails: ` +
        unreadable.slice(0, 3).join(", ") + (unreadable.length > 3 ? ", …" : ""),
      fix: `mv ${unreadable[0]} ${layout.corruptDir}/   # each of them, or fix it by hand`,
    });
  }
  if (findings.length === 0) {
    findings.push({
      check: "mailbox",
      level: "ok",
      message: files.length === 0
        ? "no mail yet"
        : `${files.length} mail file(s) read; no damaged state, nothing quarantined`,
    });
  }
  return findings;
}
