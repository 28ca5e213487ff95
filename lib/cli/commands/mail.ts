import type { MailListFilter, MailListPage, MailSummary } from "../../mail/listing.ts";
import type { MailStatus } from "../../mail/mailbox.ts";
import { UsageError } from "../../errors/mod.ts";
import { parseDuration, stringOption } from "../args.ts";
import type { Command, CommandContext } from "../command.ts";
import { formatTable } from "../output.ts";
import { nextCommand, watchCommand, workCommand } from "./mail_agent.ts";
import {
  AGENT,
  CLAIM_TIMEOUT,
  claimTimeout,
  listOption,
  mailClient as client,
  mailLines,
  onePositional,
  required,
} from "./mail_shared.ts";

/** For help, completions and checks: `MAIL_STATUSES` of lib/mail (a test checks they agree). */
const MAIL_STATUSES: readonly MailStatus[] = [
  "new",
  "retrying",
  "claimed",
  "done",
  "dead",
  "queued",
];

const LIST_HINT = "courier mail list --help";

function oneOf<T extends string>(
  ctx: CommandContext,
  name: string,
  choices: readonly T[],
): T | undefined {
  const value = stringOption(ctx.values, name);
  if (value !== undefined && !(choices as readonly string[]).includes(value)) {
    throw new UsageError(`invalid --${name} "${value}": expected ${choices.join(" or ")}`, {
      hint: LIST_HINT,
    });
  }
  return value as T | undefined;
}

const listCommand: Command = {
  name: "list",
  summary: "list mails (oldest first), a page at a time or --all",
  usage: [
    "list [--status S[,S…]] [--provider P] [--direction D] [--session ID] " +
    "[--order oldest|newest] [--limit N] [--cursor C | --all] [--json]",
  ],
  options: {
    status: {
      type: "string",
      valueName: "S",
      description: `only mails in these statuses (${
        MAIL_STATUSES.join(", ")
      }; comma-separated or repeated)`,
      choices: MAIL_STATUSES,
      multiple: true,
    },
    provider: { type: "string", valueName: "P", description: "only this provider's mails" },
    direction: {
      type: "string",
      valueName: "D",
      description: "only inbound or only outbound mails",
      choices: ["inbound", "outbound"],
    },
    session: { type: "string", valueName: "ID", description: "only this conversation's mails" },
    order: {
      type: "string",
      valueName: "ORDER",
      description: "oldest first (default) or newest first",
      choices: ["oldest", "newest"],
    },
    limit: {
      type: "string",
      valueName: "N",
      description: "at most N mails a page (default 1000)",
    },
    cursor: {
      type: "string",
      valueName: "C",
      description: "the page after the one that printed this cursor (same --order)",
    },
    all: { type: "boolean", description: "every page, following the cursor to the end" },
  },
  async run(ctx) {
    const limitText = stringOption(ctx.values, "limit");
    const limit = limitText === undefined ? undefined : Number(limitText);
    if (limit !== undefined && (!/^\d+$/.test(limitText!) || limit < 1 || limit > 100_000)) {
      throw new UsageError(
        `invalid --limit "${limitText}": expected a whole number from 1 to 100000`,
        { hint: LIST_HINT },
      );
    }
    const cursor = stringOption(ctx.values, "cursor");
    const all = ctx.values.all === true;
    if (all && cursor !== undefined) {
      throw new UsageError(
        "--all and --cursor do not go together: --all starts at the first page",
        {
          hint: LIST_HINT,
        },
      );
    }
    const filter: MailListFilter = {
      status: listOption(ctx, { name: "status", allowed: MAIL_STATUSES, hint: "list" }),
      provider: stringOption(ctx.values, "provider"),
      direction: oneOf(ctx, "direction", ["inbound", "outbound"] as const),
      session_id: stringOption(ctx.values, "session"),
      order: oneOf(ctx, "order", ["oldest", "newest"] as const),
      limit,
      cursor,
    };
    const mail = await client(ctx);
    let page: MailListPage = await mail.listPage(filter);
    const mails = [...page.messages];
    while (all && page.next_cursor) {
      page = await mail.listPage({ ...filter, cursor: page.next_cursor });
      mails.push(...page.messages);
    }
    const next = all ? undefined : page.next_cursor;
    if (ctx.out.json) {
      ctx.out.data({
        messages: mails,
        count: mails.length,
        ...(next ? { next_cursor: next } : {}),
      });
      return 0;
    }
    if (mails.length === 0) {
      ctx.out.text("No mail.");
      return 0;
    }
    const rows = mails.map((m: MailSummary) => [
      m.id,
      m.status,
      m.direction === "inbound" ? (m.from?.name ?? "-") : `to ${m.to ?? "-"}`,
      String(m.message_count),
      m.received_at.replace("T", " ").replace(/\.\d+Z$/, "Z"),
      m.preview.length > 50 ? m.preview.slice(0, 49) + "…" : m.preview,
    ]);
    ctx.out.text(...formatTable(["ID", "STATUS", "FROM", "MSGS", "RECEIVED", "TEXT"], rows));
    if (next) ctx.out.warn(`More mails follow: add --cursor ${next} (or list them all with --all)`);
    return 0;
  },
};

const showCommand: Command = {
  name: "show",
  summary: "show one mail: its fields and conversation",
  usage: ["show ID [--json]"],
  options: {},
  positionals: true,
  async run(ctx) {
    const id = onePositional(ctx, "mail ID", "show");
    const mail = await (await client(ctx)).show(id);
    if (ctx.out.json) ctx.out.data(mail);
    else ctx.out.text(...mailLines(mail));
    return 0;
  },
};

const claimCommand: Command = {
  name: "claim",
  summary: "claim a mail for an agent (or renew the agent's claim)",
  usage: ["claim ID --agent A [--timeout SECONDS]"],
  options: { ...AGENT, ...CLAIM_TIMEOUT },
  positionals: true,
  async run(ctx) {
    const id = onePositional(ctx, "mail ID", "claim");
    const agent = required(ctx, "agent", "claim");
    const timeoutS = claimTimeout(ctx, "claim");
    const entry = await (await client(ctx)).claim(id, agent, { timeoutS });
    ctx.out.result(`Claimed ${id} for ${entry.agent_id} until ${entry.expires_at}`, entry);
    return 0;
  },
};

const doneCommand: Command = {
  name: "done",
  summary: "complete a claimed mail (moves it to archive/)",
  usage: ["done ID --agent A"],
  options: { ...AGENT },
  positionals: true,
  async run(ctx) {
    const id = onePositional(ctx, "mail ID", "done");
    const agent = required(ctx, "agent", "done");
    const result = await (await client(ctx)).complete(id, agent);
    ctx.out.result(`Completed ${id}`, result);
    return 0;
  },
};

const failCommand: Command = {
  name: "fail",
  summary: "fail a claimed mail (retried with backoff, dead-lettered after 3)",
  usage: ["fail ID --agent A --reason R [--no-retry]"],
  options: {
    ...AGENT,
    reason: { type: "string", valueName: "R", description: "why it failed (required)" },
    "no-retry": { type: "boolean", description: "dead-letter it now instead of retrying" },
  },
  positionals: true,
  async run(ctx) {
    const id = onePositional(ctx, "mail ID", "fail");
    const agent = required(ctx, "agent", "fail");
    const reason = required(ctx, "reason", "fail");
    const result = await (await client(ctx)).fail(id, agent, {
      reason,
      retryable: !ctx.values["no-retry"],
    });
    const text = result.status === "dead"
      ? `Dead-lettered ${id} after ${result.attempts} attempt(s): ${reason}`
      : `Failed ${id} (attempt ${result.attempts}); new again at ${result.retry_at}`;
    ctx.out.result(text, result);
    return 0;
  },
};

const sendCommand: Command = {
  name: "send",
  summary: "queue an outbound mail for a provider",
  usage: ["send PROVIDER --to T --text X [--reply-to ID]"],
  options: {
    to: { type: "string", valueName: "T", description: "the recipient (required)" },
    text: { type: "string", valueName: "X", description: "the text to send (required)" },
    "reply-to": { type: "string", valueName: "ID", description: "the mail this answers" },
  },
  positionals: true,
  async run(ctx) {
    const provider = onePositional(ctx, "PROVIDER", "send");
    const to = required(ctx, "to", "send");
    const text = required(ctx, "text", "send");
    const replyTo = stringOption(ctx.values, "reply-to");
    const result = await (await client(ctx)).send(provider, {
      to,
      text,
      ...(replyTo ? { reply_to: replyTo } : {}),
    });
    ctx.out.result(`Queued ${result.id} for ${to} via ${provider}`, result);
    return 0;
  },
};

const releaseCommand: Command = {
  name: "release",
  summary: "give a claimed mail back at once (no failure recorded)",
  usage: ["release ID --agent A"],
  options: { ...AGENT },
  positionals: true,
  async run(ctx) {
    const id = onePositional(ctx, "mail ID", "release");
    const agent = required(ctx, "agent", "release");
    const result = await (await client(ctx)).release(id, agent);
    ctx.out.result(`Released ${id}: new again, claimable at once`, result);
    return 0;
  },
};

const requeueCommand: Command = {
  name: "requeue",
  summary: "put a dead mail back (inbound: new; outbound: queued), attempts reset",
  usage: ["requeue ID"],
  options: {},
  positionals: true,
  async run(ctx) {
    const id = onePositional(ctx, "mail ID", "requeue");
    const result = await (await client(ctx)).requeue(id);
    ctx.out.result(`Requeued ${id}: ${result.status} again, attempts reset`, result);
    return 0;
  },
};

const pruneCommand: Command = {
  name: "prune",
  summary: "delete done and dead mails that finished longer ago than DURATION",
  usage: ["prune --older-than DURATION [--status done|dead] [--dry-run]"],
  options: {
    "older-than": {
      type: "string",
      valueName: "DURATION",
      description: "mails that finished longer ago than this: 30d, 12h, 90m, 1h30m (required)",
    },
    status: {
      type: "string",
      valueName: "S",
      description: "only done or only dead mails (default both)",
      choices: ["done", "dead"],
    },
    "dry-run": { type: "boolean", description: "count what would go, delete nothing" },
  },
  async run(ctx) {
    const hint = "courier mail prune --help";
    const olderThanS = parseDuration(required(ctx, "older-than", "prune"), {
      option: "--older-than",
      hint,
    });
    const status = stringOption(ctx.values, "status");
    if (status !== undefined && status !== "done" && status !== "dead") {
      throw new UsageError(`invalid --status "${status}": expected done or dead`, { hint });
    }
    const dryRun = ctx.values["dry-run"] === true;
    const result = await (await client(ctx)).prune({
      olderThanS,
      ...(status ? { status: [status] } : {}),
      dryRun,
    });
    const what = `${result.pruned} mail(s) (${result.done} done, ${result.dead} dead) ` +
      `finished before ${result.before}`;
    ctx.out.result(dryRun ? `Would prune ${what}` : `Pruned ${what}`, result);
    return 0;
  },
};

/** `courier mail …`: thin clients of the running daemon's mail API. */
export const mailCommand: Command = {
  name: "mail",
  summary: "list, show, claim, complete, fail and send mail; run agents on it",
  usage: ["mail <command> [options]"],
  options: {},
  subcommands: [
    listCommand,
    showCommand,
    nextCommand,
    workCommand,
    watchCommand,
    claimCommand,
    doneCommand,
    failCommand,
    releaseCommand,
    requeueCommand,
    sendCommand,
    pruneCommand,
  ],
};
