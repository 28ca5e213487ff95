/**
 * What the `courier mail …` commands share: the client of the daemon,
 * argument checks and the text form of a mail. Light at its top like a
 * command module (see `../command.ts`).
 *
 * @module
 */
import type { MailClient } from "../../mail/client.ts";
import { UsageError } from "../../errors/mod.ts";
import { stringOption } from "../args.ts";
import type { CommandContext, OptionSpec } from "../command.ts";
import { formatTable } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

/** The home's directory, as `--home` or the environment says. */
export async function mailHome(ctx: CommandContext): Promise<string> {
  const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
    "../../home/mod.ts",
    import.meta.url,
  );
  return resolveHome(ctx.homeOption);
}

/** A client of the daemon of this home, with its API token. */
export async function mailClient(ctx: CommandContext): Promise<MailClient> {
  const { homeLayout } = await importLazily<typeof import("../../home/mod.ts")>(
    "../../home/mod.ts",
    import.meta.url,
  );
  const { MailClient } = await importLazily<typeof import("../../mail/client.ts")>(
    "../../mail/client.ts",
    import.meta.url,
  );
  return await MailClient.connect(homeLayout(await mailHome(ctx)));
}

/** The one positional argument of a command (`ID`, `PROVIDER`). */
export function onePositional(ctx: CommandContext, what: string, usage: string): string {
  if (ctx.positionals.length !== 1) {
    throw new UsageError(
      ctx.positionals.length === 0 ? `missing ${what}` : `expected one ${what}`,
      { hint: `courier mail ${usage} --help` },
    );
  }
  return ctx.positionals[0];
}

/** A string option that must be given and not be empty. */
export function required(ctx: CommandContext, name: string, hint: string): string {
  const value = stringOption(ctx.values, name);
  if (value === undefined || value === "") {
    throw new UsageError(`option --${name} is required`, { hint: `courier mail ${hint} --help` });
  }
  return value;
}

/**
 * The words of a list option (`--status new,retrying`, or given more than
 * once), each checked against `allowed`; `undefined` when none was given.
 */
export function listOption<T extends string>(
  ctx: CommandContext,
  options: { name: string; allowed: readonly T[]; hint: string },
): T[] | undefined {
  const { name, allowed } = options;
  const given = ctx.values[name];
  const words = (Array.isArray(given) ? given : typeof given === "string" ? [given] : [])
    .flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
  if (words.length === 0) return undefined;
  for (const word of words) {
    if (!(allowed as readonly string[]).includes(word)) {
      throw new UsageError(
        `invalid --${name} "${word}": expected one or more of ${allowed.join(", ")}`,
        { hint: `courier mail ${options.hint} --help` },
      );
    }
  }
  return [...new Set(words)] as T[];
}

/** `--agent A`. */
export const AGENT: Record<"agent", OptionSpec> = {
  agent: {
    type: "string",
    valueName: "AGENT",
    description: "the agent id (required)",
  },
};

/** `--timeout SECONDS`: how long a claim lasts. */
export const CLAIM_TIMEOUT: Record<"timeout", OptionSpec> = {
  timeout: {
    type: "string",
    valueName: "SECONDS",
    description: "how long the claim lasts (default: the daemon's, 300)",
  },
};

/** The claim length of `--timeout` in seconds (above 0, at most a day), if given. */
export function claimTimeout(ctx: CommandContext, hint: string): number | undefined {
  const text = stringOption(ctx.values, "timeout");
  if (text === undefined) return undefined;
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(seconds > 0 && seconds <= 86_400)) {
    throw new UsageError(
      `invalid --timeout "${text}": expected seconds above 0 and at most 86400`,
      { hint: `courier mail ${hint} --help` },
    );
  }
  return seconds;
}

/** A mail as `mail show` and `mail next` print it: its fields, then its conversation. */
export function mailLines(mail: Record<string, unknown>): string[] {
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
  return [...lines, "", String(mail.body).trimEnd()];
}
