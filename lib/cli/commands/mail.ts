import type { MailClient } from "../../mail/client.ts";
import type { MailStatus } from "../../mail/mailbox.ts";
import type { MailSummary } from "../../mail/service.ts";
import { UsageError } from "../../errors/mod.ts";
import { stringOption } from "../args.ts";
import type { Command, CommandContext } from "../command.ts";
import { formatTable } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

async function client(ctx: CommandContext): Promise<MailClient> {
  const { homeLayout, resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
    "../../home/mod.ts",
    import.meta.url,
  );
  const { MailClient } = await importLazily<typeof import("../../mail/client.ts")>(
    "../../mail/client.ts",
    import.meta.url,
  );
  return await MailClient.connect(homeLayout(resolveHome(ctx.homeOption)));
}

/** For help, completions and checks: `MAIL_STATUSES` of lib/mail (a test checks they agree). */
const MAIL_STATUSES: readonly MailStatus[] = [
  "new",
  "retrying",
  "claimed",
  "done",
  "dead",
  "queued",
];

function onePositional(ctx: CommandContext, what: string, usage: string): string {
  if (ctx.positionals.length !== 1) {
    throw new UsageError(
      ctx.positionals.length === 0 ? `missing ${what}` : `expected one ${what}`,
      { hint: `courier mail ${usage} --help` },
    );
  }
  return ctx.positionals[0];
}

function required(ctx: CommandContext, name: string, hint: string): string {
  const value = stringOption(ctx.values, name);
  if (value === undefined || value === "") {
    throw new UsageError(`option --${name} is required`, { hint: `courier mail ${hint} --help` });
  }
  return value;
}

const AGENT = {
  agent: {
    type: "string",
    valueName: "AGENT",
    description: "the agent id (required)",
  },
} as const;

const listCommand: Command = {
  name: "list",
  summary: "list mails (oldest first)",
  usage: ["list [--status S] [--provider P] [--direction D] [--limit N] [--json]"],
  options: {
    status: {
      type: "string",
      valueName: "S",
      description: `only mails in this status (${MAIL_STATUSES.join(", ")})`,
      choices: MAIL_STATUSES,
    },
    provider: { type: "string", valueName: "P", description: "only this provider's mails" },
    direction: {
      type: "string",
      valueName: "D",
      description: "only inbound or only outbound mails",
      choices: ["inbound", "outbound"],
    },
    limit: { type: "string", valueName: "N", description: "at most N mails (default 1000)" },
  },
  async run(ctx) {
    const status = stringOption(ctx.values, "status");
    if (status !== undefined && !(MAIL_STATUSES as readonly string[]).includes(status)) {
      throw new UsageError(
        `invalid --status "${status}": expected one of ${MAIL_STATUSES.join(", ")}`,
        { hint: "courier mail list --help" },
      );
    }
    const direction = stringOption(ctx.values, "direction");
    if (direction !== undefined && direction !== "inbound" && direction !== "outbound") {
      throw new UsageError(`invalid --direction "${direction}": expected inbound or outbound`, {
        hint: "courier mail list --help",
      });
    }
    const limitText = stringOption(ctx.values, "limit");
    const limit = limitText === undefined ? undefined : Number(limitText);
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
      throw new UsageError(`invalid --limit "${limitText}": expected a whole number above 0`, {
        hint: "courier mail list --help",
      });
    }
    const mails = await (await client(ctx)).list({
      status: status as MailStatus | undefined,
      provider: stringOption(ctx.values, "provider"),
      direction: direction as "inbound" | "outbound" | undefined,
      limit,
    });
    if (ctx.out.json) {
      ctx.out.data({ messages: mails, count: mails.length });
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
    if (ctx.out.json) {
      ctx.out.data(mail);
      return 0;
    }
    const session = mail.session as { id: string; type: string; name?: string };
    const delivery = mail.delivery as { attempts: number; dead_reason?: string };
    const rows: string[][] = [
      ["id", String(mail.id)],
      ["status", String(mail.status)],
      ["provider", String(mail.provider)],
      ["direction", String(mail.direction)],
      ["session", `${session.name ? `${session.name} ` : ""}(${session.id}, ${session.type})`],
      ["received", String(mail.received_at)],
      ["attempts", String(delivery?.attempts ?? 0)],
    ];
    const claim = mail.claim as { agent_id: string; expires_at: string } | undefined;
    if (claim) rows.push(["claimed by", `${claim.agent_id} until ${claim.expires_at}`]);
    if (delivery?.dead_reason) rows.push(["dead reason", delivery.dead_reason]);
    rows.push(["file", String(mail.path)]);
    const [, ...lines] = formatTable(["", ""], rows);
    ctx.out.text(...lines, "", String(mail.body).trimEnd());
    return 0;
  },
};

const claimCommand: Command = {
  name: "claim",
  summary: "claim a mail for an agent",
  usage: ["claim ID --agent A [--timeout SECONDS]"],
  options: {
    ...AGENT,
    timeout: {
      type: "string",
      valueName: "SECONDS",
      description: "how long the claim lasts (default: the daemon's, 300)",
    },
  },
  positionals: true,
  async run(ctx) {
    const id = onePositional(ctx, "mail ID", "claim");
    const agent = required(ctx, "agent", "claim");
    const timeoutText = stringOption(ctx.values, "timeout");
    const timeoutS = timeoutText === undefined ? undefined : Number(timeoutText);
    if (timeoutS !== undefined && (!Number.isFinite(timeoutS) || timeoutS <= 0)) {
      throw new UsageError(`invalid --timeout "${timeoutText}": expected seconds above 0`, {
        hint: "courier mail claim --help",
      });
    }
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

/** `courier mail …`: thin clients of the running daemon's mail API. */
export const mailCommand: Command = {
  name: "mail",
  summary: "list, show, claim, complete, fail and send mail",
  usage: ["mail <command> [options]"],
  options: {},
  subcommands: [listCommand, showCommand, claimCommand, doneCommand, failCommand, sendCommand],
};
