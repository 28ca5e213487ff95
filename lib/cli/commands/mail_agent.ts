/**
 * The agent side of `courier mail`: `next` (claim one mail, waiting for
 * it), `work` (a worker loop running a command per mail) and `watch` (the
 * event stream).
 *
 * @module
 */
import type { WorkerEvent } from "../../agent/worker_events.ts";
import type { MailStreamEvent } from "../../mail/client.ts";
import type { MailEventType } from "../../mail/events.ts";
import { CourierError, ExitCode, UsageError } from "../../errors/mod.ts";
import { parseInteger, stringOption } from "../args.ts";
import type { Command, CommandContext } from "../command.ts";
import { writeStdout } from "../output.ts";
import {
  AGENT,
  CLAIM_TIMEOUT,
  claimTimeout,
  listOption,
  mailClient,
  mailHome,
  mailLines,
  required,
} from "./mail_shared.ts";
import { importLazily } from "../../lazy/mod.ts";

/** For help, completions and checks: `MAIL_EVENT_TYPES` of lib/mail (a test checks they agree). */
const EVENT_TYPES: readonly MailEventType[] = [
  "mail.new",
  "mail.claimed",
  "mail.released",
  "mail.done",
  "mail.retrying",
  "mail.dead",
  "outbound.queued",
  "outbound.retrying",
  "outbound.sent",
  "outbound.dead",
];

/** The signals that stop `work` and `watch` gracefully. */
const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/** No mail came within `mail next --wait` (exit {@link ExitCode.TryAgain}, 75). */
export class NoMailError extends CourierError {
  /** @param waitS How long it waited, in seconds. */
  constructor(waitS: number) {
    super(`no mail came within ${waitS} s`, {
      exitCode: ExitCode.TryAgain,
      facts: { waited_s: waitS },
    });
    this.name = "NoMailError";
  }
}

const FILTERS = {
  provider: { type: "string", valueName: "P", description: "only this provider's mails" },
  session: { type: "string", valueName: "ID", description: "only this conversation's mails" },
} as const;

/** Runs `body` with SIGINT and SIGTERM going to `onSignal` instead of ending the process. */
async function withSignals<T>(
  onSignal: (signal: Deno.Signal) => void,
  body: () => Promise<T>,
): Promise<T> {
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  try {
    return await body();
  } finally {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  }
}

/** `mail next`. */
export const nextCommand: Command = {
  name: "next",
  summary: "claim the oldest claimable mail, waiting for one; exit 75 when none came",
  usage: [
    "next --agent A [--wait SECONDS] [--provider P] [--session ID] [--timeout SECONDS] [--json]",
  ],
  options: {
    ...AGENT,
    wait: {
      type: "string",
      valueName: "SECONDS",
      description: "wait up to this long for a mail (default 0: only what is there now)",
    },
    ...FILTERS,
    ...CLAIM_TIMEOUT,
  },
  async run(ctx) {
    const agent = required(ctx, "agent", "next");
    const waitText = stringOption(ctx.values, "wait") ?? "0";
    const waitS = /^\d+(\.\d+)?$/.test(waitText) ? Number(waitText) : NaN;
    if (!(waitS >= 0 && waitS <= 86_400)) {
      throw new UsageError(`invalid --wait "${waitText}": expected seconds from 0 to 86400`, {
        hint: "courier mail next --help",
      });
    }
    const timeoutS = claimTimeout(ctx, "next");
    const { MailRequestError } = await importLazily<typeof import("../../mail/client.ts")>(
      "../../mail/client.ts",
      import.meta.url,
    );
    const client = await mailClient(ctx);
    const deadline = Date.now() + waitS * 1000;
    for (;;) {
      // The daemon waits at most a minute a request: a longer --wait asks again.
      const left = Math.max(0, deadline - Date.now()) / 1000;
      let mail;
      try {
        mail = await client.claimNext(agent, {
          provider: stringOption(ctx.values, "provider"),
          sessionId: stringOption(ctx.values, "session"),
          waitS: Math.min(60, left),
          timeoutS,
        });
      } catch (error) {
        // Busy (indexing, short of disk): within --wait, ask again in a moment.
        if (!(error instanceof MailRequestError && error.status === 503) || left < 1) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      if (mail) {
        if (ctx.out.json) ctx.out.data(mail);
        else ctx.out.text(...mailLines(mail));
        return 0;
      }
      if (left <= 60) throw new NoMailError(waitS);
    }
  },
};

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

/** One line of `mail work`'s log for `event` (ids, codes and counts; never a message's text). */
export function describeWorkerEvent(event: WorkerEvent): string {
  switch (event.event) {
    case "started":
      return `worker "${event.agent_id}" started: up to ${event.concurrency} at once, running ` +
        event.command.join(" ");
    case "claimed":
      return `claimed ${event.id} (${event.provider}, session ${event.session_id}, attempt ` +
        `${event.attempts + 1}, claim until ${event.expires_at})`;
    case "done":
      return `done ${event.id}: exit 0 after ${seconds(event.duration_ms)} s` +
        (event.reply_id ? `, reply queued as ${event.reply_id}` : "");
    case "failed": {
      const how = `exit ${event.exit_code}${event.signal ? ` (${event.signal})` : ""}`;
      const next = event.status === "retrying"
        ? `retrying at ${event.retry_at} (${event.attempts} failed attempt(s) so far)`
        : event.no_retry
        ? "dead: no retry asked for"
        : `dead after ${event.attempts} failed attempt(s)`;
      const why = event.reason ? `, but ${event.reason}` : "";
      return `failed ${event.id}: ${how} after ${seconds(event.duration_ms)} s${why}; ${next}`;
    }
    case "released":
      return `released ${event.id}: ${event.reason}`;
    case "renew_failed":
      return `could not renew the claim on ${event.id}: ${event.reason}; its command goes on`;
    case "lost":
      return `lost ${event.id}: ${event.reason}`;
    case "unreachable":
      return `the daemon does not answer (${event.reason}); trying again`;
    case "reachable":
      return "the daemon answers again";
    case "stopping":
      return event.running === 0
        ? "stopping: no new mail"
        : `stopping: no new mail; waiting for ${event.running} running command(s) ` +
          "(signal again to pass the signal on to them)";
    case "forwarded":
      return `passed ${event.signal} on to ${event.running} running command(s)`;
    case "stopped":
      return `stopped: ${event.done} done, ${event.failed} failed, ${event.released} released` +
        (event.lost ? `, ${event.lost} lost` : "");
  }
}

/** The exit codes of `--no-retry 2,3`. */
function noRetryCodes(ctx: CommandContext): number[] {
  const text = stringOption(ctx.values, "no-retry");
  if (text === undefined) return [];
  return text.split(",").map((code) =>
    parseInteger(code.trim(), {
      option: "--no-retry",
      hint: "courier mail work --help",
      min: 1,
      max: 255,
    })
  );
}

/** `mail work`. */
export const workCommand: Command = {
  name: "work",
  summary: "run a command for each mail claimed, up to N at once, until SIGINT or SIGTERM",
  usage: [
    "work --agent A [--concurrency N] [--provider P] [--session ID] [--reply] " +
    "[--no-retry CODES] [--timeout SECONDS] [--json] -- CMD [ARGS…]",
  ],
  options: {
    ...AGENT,
    concurrency: {
      type: "string",
      valueName: "N",
      description: "run up to N commands at once (default 1)",
    },
    ...FILTERS,
    reply: {
      type: "boolean",
      description: "send the command's stdout, when not empty, as a reply to the conversation",
    },
    "no-retry": {
      type: "string",
      valueName: "CODES",
      description: "exit codes that dead-letter the mail at once (comma-separated, e.g. 2,3)",
    },
    timeout: {
      ...CLAIM_TIMEOUT.timeout,
      description: "how long a claim lasts, renewed every third of it (default: the daemon's, 300)",
    },
  },
  positionals: true,
  runsCommand: true,
  async run(ctx) {
    const hint = "courier mail work --help";
    const agent = required(ctx, "agent", "work");
    if (ctx.positionals.length === 0) {
      throw new UsageError(
        "missing the command to run: courier mail work --agent A [options] -- CMD [ARGS…]",
        { hint },
      );
    }
    const concurrencyText = stringOption(ctx.values, "concurrency");
    const concurrency = concurrencyText === undefined
      ? 1
      : parseInteger(concurrencyText, { option: "--concurrency", hint, min: 1, max: 1000 });
    const noRetry = noRetryCodes(ctx);
    const timeoutS = claimTimeout(ctx, "work");
    const { MailWorker } = await importLazily<typeof import("../../agent/worker.ts")>(
      "../../agent/worker.ts",
      import.meta.url,
    );
    const client = await mailClient(ctx);
    await client.health(); // no daemon answers: exit now (69), not wait for one
    const json = ctx.out.json;
    const log = (line: Record<string, unknown> | string) =>
      ctx.out.warn(
        typeof line === "string"
          ? `${new Date().toISOString()} ${line}`
          : JSON.stringify({ at: new Date().toISOString(), ...line }),
      );
    const worker = new MailWorker(client, {
      agentId: agent,
      command: ctx.positionals,
      concurrency,
      provider: stringOption(ctx.values, "provider"),
      sessionId: stringOption(ctx.values, "session"),
      timeoutS,
      reply: ctx.values.reply === true,
      noRetryCodes: noRetry,
      env: { COURIER_HOME: await mailHome(ctx) },
      onEvent: (event) => log(json ? { ...event } : describeWorkerEvent(event)),
      onStderrLine: (line, id) => {
        if (json) log({ event: "stderr", id, line });
        else ctx.out.warn(line);
      },
    });
    await withSignals((signal) => {
      if (worker.stopping) worker.interrupt(signal);
      else worker.stop();
    }, () => worker.run());
    return 0;
  },
};

function shown(value: unknown): string {
  return typeof value === "string" && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
}

/** One line of `mail watch` for `event`: time, type, mail id, then the other facts. */
export function describeMailEvent(event: MailStreamEvent): string {
  if (event.type === "reset") {
    return `${new Date().toISOString()} reset: events after ${event.last_event_id} were ` +
      `missed (${event.reason}); re-read the mails you follow`;
  }
  const { id, ...rest } = event.data;
  const facts = Object.entries(rest).map(([key, value]) => `${key}=${shown(value)}`);
  return [event.at, event.type, String(id ?? "-"), ...facts].join(" ");
}

/** `mail watch`. */
export const watchCommand: Command = {
  name: "watch",
  summary: "follow what happens to mail, one line an event, across daemon restarts",
  usage: ["watch [--types T,…] [--last-event-id N] [--json]"],
  options: {
    types: {
      type: "string",
      valueName: "T",
      description: "only these event types (comma-separated or repeated)",
      choices: EVENT_TYPES,
      multiple: true,
    },
    "last-event-id": {
      type: "string",
      valueName: "N",
      description: "start after this event id: first what was missed since (or a reset)",
    },
  },
  async run(ctx) {
    const types = listOption(ctx, { name: "types", allowed: EVENT_TYPES, hint: "watch" });
    const lastText = stringOption(ctx.values, "last-event-id");
    const lastEventId = lastText === undefined ? undefined : parseInteger(lastText, {
      option: "--last-event-id",
      hint: "courier mail watch --help",
    });
    const client = await mailClient(ctx);
    await client.health(); // a daemon that does not answer: exit now (69), and say so
    const stop = new AbortController();
    await withSignals(() => stop.abort(), async () => {
      const events = client.events({ reconnect: true, types, lastEventId, signal: stop.signal });
      for await (const event of events) {
        writeStdout((ctx.out.json ? JSON.stringify(event) : describeMailEvent(event)) + "\n");
      }
    });
    return 0;
  },
};
