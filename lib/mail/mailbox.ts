import { join } from "../fs/mod.ts";

/** Where a mail file lives: its folder under `<home>/mailbox/`. */
export type MailLocation = "inbound" | "outbound" | "archive" | "deadletter";

/** Every location, in scan order (final locations last, so they win on recovery). */
export const MAIL_LOCATIONS: readonly MailLocation[] = [
  "inbound",
  "outbound",
  "archive",
  "deadletter",
];

/** Where a mail stands, as the API reports it. */
export type MailStatus = "new" | "retrying" | "claimed" | "done" | "dead" | "queued";

/** Every {@link MailStatus}, for validating filters. */
export const MAIL_STATUSES: readonly MailStatus[] = [
  "new",
  "retrying",
  "claimed",
  "done",
  "dead",
  "queued",
];

/** The paths of a mailbox (`<home>/mailbox/`). */
export interface MailboxLayout {
  /** `<home>/mailbox` (absolute). */
  root: string;
  /** `inbound/`: folded inbound mails waiting for an agent. */
  inboundDir: string;
  /** `outbound/`: mails queued for delivery. */
  outboundDir: string;
  /** `archive/`: completed inbound and delivered outbound mails. */
  archiveDir: string;
  /** `.deadletter/`: mails that failed for good, with the reason recorded. */
  deadletterDir: string;
  /** `.state/`: claims and the pending journal. */
  stateDir: string;
  /** `.state/locks.json`: the claim table (as of its last compaction). */
  locksFile: string;
  /** `.state/claims.jsonl`: changes to the claim table since `locks.json` was written. */
  claimsLogFile: string;
  /** `.state/pending.jsonl`: acknowledged messages not yet folded into a mail. */
  journalFile: string;
  /** `.state/index.json`: a cache of the mail index, so a start need not parse every mail. */
  indexFile: string;
  /** `.corrupt/`: unreadable mail files, moved out of the mailbox for inspection. */
  corruptDir: string;
}

/** The mailbox layout of the courier home rooted at `homeRoot`. Touches nothing on disk. */
export function mailboxLayout(homeRoot: string): MailboxLayout {
  const root = join(homeRoot, "mailbox");
  const stateDir = join(root, ".state");
  return {
    root,
    inboundDir: join(root, "inbound"),
    outboundDir: join(root, "outbound"),
    archiveDir: join(root, "archive"),
    deadletterDir: join(root, ".deadletter"),
    stateDir,
    locksFile: join(stateDir, "locks.json"),
    claimsLogFile: join(stateDir, "claims.jsonl"),
    journalFile: join(stateDir, "pending.jsonl"),
    indexFile: join(stateDir, "index.json"),
    corruptDir: join(root, ".corrupt"),
  };
}

/** The folder of `location` (without the provider). */
export function locationRoot(layout: MailboxLayout, location: MailLocation): string {
  switch (location) {
    case "inbound":
      return layout.inboundDir;
    case "outbound":
      return layout.outboundDir;
    case "archive":
      return layout.archiveDir;
    case "deadletter":
      return layout.deadletterDir;
  }
}

/**
 * The folder holding `provider`'s mails in `location`. The provider must
 * already be valid ({@link isValidProvider}), so it cannot escape the mailbox.
 */
export function providerDir(
  layout: MailboxLayout,
  location: MailLocation,
  provider: string,
): string {
  if (!isValidProvider(provider)) throw new RangeError(`invalid provider name "${provider}"`);
  return join(locationRoot(layout, location), provider);
}

/** What a provider name may hold: letters, digits, `-` and `_`, 1 to 64 of them. */
export const PROVIDER_PATTERN: RegExp = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether `name` is a valid provider name (so no path can escape the mailbox). */
export function isValidProvider(name: string): boolean {
  return PROVIDER_PATTERN.test(name);
}

/** What a mail id may hold (`<provider>_<uid>`). */
export const MAIL_ID_PATTERN: RegExp = /^[A-Za-z0-9_-]{1,128}$/;

/** Creates the mailbox folders (mode 0700); provider folders are created on demand. */
export async function ensureMailbox(layout: MailboxLayout): Promise<void> {
  for (
    const dir of [
      layout.root,
      layout.inboundDir,
      layout.outboundDir,
      layout.archiveDir,
      layout.deadletterDir,
      layout.stateDir,
    ]
  ) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  }
}
