/**
 * Writes a synthetic mailbox of N mails quickly (benchmarks, and tests of
 * big mailboxes): one mail of each kind is rendered by the real renderer,
 * then copied with its ids, times and keys substituted, so every file is a
 * valid mail exactly as courier writes it.
 *
 * @module
 */
import { join } from "node:path";
import {
  buildInboundMail,
  compactUtc,
  mailboxLayout,
  type MailDocument,
  type MailLocation,
  renderMail,
} from "../lib/mail/mod.ts";

/** How many mails of each kind (the rest of `mails` are done, in `archive/`). */
export interface FixtureOptions {
  /** Mails in all. */
  mails: number;
  /** Of them, new inbound mails (default 9% of all). */
  fresh?: number;
  /** Of them, dead letters (default 1% of all). */
  dead?: number;
  /** Conversations they are spread over (default 2000). */
  sessions?: number;
  /** The newest mail's time (default now). */
  now?: number;
}

/** What was written. */
export interface FixtureResult {
  /** Mails written per folder. */
  counts: Record<MailLocation, number>;
  /** Milliseconds it took. */
  ms: number;
}

const UID = "uuuuuuuuuuuuuuuu"; // 16 characters, like a real uid
const TIME = "2000-01-01T00:00:00.000Z";
const KEY_A = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const KEY_B = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
const SESSION = "chat-ssssss";

function template(location: MailLocation): string {
  const message = (key: string, n: number) => ({
    message_id: `MSGID-${n}-${key.slice(0, 4)}`,
    pending_key: key,
    sender: { id: "ou_alice", name: "Alice" },
    time: TIME,
    received_at: TIME,
    text: `benchmark message ${n}: the deploy of service ${n} is red again, please look`,
  });
  const doc: MailDocument = buildInboundMail(
    { provider: "lark", session: { id: SESSION, type: "group", name: "Ops" } },
    [message(KEY_A, 1), message(KEY_B, 2)],
    { uid: UID },
  );
  const delivery = doc.frontMatter.delivery;
  if (location === "archive") {
    delivery.completed_at = TIME;
    delivery.completed_by = "triage";
  }
  if (location === "deadletter") {
    delivery.attempts = 3;
    delivery.failures = [{ at: TIME, agent_id: "triage", reason: "model timeout" }];
    delivery.dead_at = TIME;
    delivery.dead_reason = "model timeout";
  }
  return renderMail(doc);
}

function uid(n: number): string {
  return n.toString(32).padStart(16, "0");
}

/**
 * Writes `options.mails` mails into `<home>/mailbox/` (no index cache, no
 * journal), oldest first: done ones, then dead letters, then new ones.
 */
export async function writeMailboxFixture(
  home: string,
  options: FixtureOptions,
): Promise<FixtureResult> {
  const started = performance.now();
  const layout = mailboxLayout(home);
  const total = options.mails;
  const fresh = options.fresh ?? Math.round(total * 0.09);
  const dead = options.dead ?? Math.round(total * 0.01);
  const done = total - fresh - dead;
  const sessions = options.sessions ?? 2000;
  const now = options.now ?? Date.now();
  const span = 30 * 86_400_000;
  const plan: [MailLocation, number][] = [["archive", done], ["deadletter", dead], [
    "inbound",
    fresh,
  ]];
  const counts: Record<MailLocation, number> = {
    inbound: 0,
    outbound: 0,
    archive: 0,
    deadletter: 0,
  };
  const dirs: Record<string, string> = {
    inbound: layout.inboundDir,
    outbound: layout.outboundDir,
    archive: layout.archiveDir,
    deadletter: layout.deadletterDir,
  };
  await Deno.mkdir(layout.stateDir, { recursive: true });
  let n = 0;
  const jobs: Promise<void>[] = [];
  for (const [location, count] of plan) {
    const text = template(location);
    for (const provider of ["lark", "slack"]) {
      await Deno.mkdir(join(dirs[location], provider), { recursive: true, mode: 0o700 });
    }
    for (let i = 0; i < count; i++, n++) {
      const provider = n % 2 === 0 ? "lark" : "slack";
      const time = new Date(now - span + Math.floor((span * n) / Math.max(1, total))).toISOString();
      const id = `${provider}_${uid(n)}`;
      const body = text
        .replaceAll(`lark_${UID}`, id)
        .replaceAll("provider: lark", `provider: ${provider}`)
        .replaceAll("via lark", `via ${provider}`)
        .replaceAll(TIME, time)
        .replaceAll(KEY_A, crypto.randomUUID())
        .replaceAll(KEY_B, crypto.randomUUID())
        .replaceAll("MSGID-", `m${n}-`)
        .replaceAll(SESSION, `chat-${String(n % sessions).padStart(6, "0")}`);
      const path = join(dirs[location], provider, `${compactUtc(new Date(time))}_${id}.md`);
      jobs.push(Deno.writeTextFile(path, body, { mode: 0o600 }));
      if (jobs.length >= 64) await Promise.all(jobs.splice(0));
      counts[location]++;
    }
  }
  await Promise.all(jobs);
  return { counts, ms: Math.round(performance.now() - started) };
}
