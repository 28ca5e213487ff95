/**
 * Outbound mail through a chat platform: the {@link OutboundSender} of a
 * provider, and which message of a mail a reply answers.
 *
 * @module
 */
import type { OutboundChatMessage, Provider } from "../providers/provider.ts";
import { MailNotFoundError, MailValidationError } from "./errors.ts";
import type { MailDocument, MailFrontMatter } from "./mail_file.ts";
import { DeliveryError, type OutboundSender } from "./outbound.ts";
import type { OutboundInput } from "./validate.ts";

/** What a reply needs of the message it answers (see {@link OutboundChatMessage.replyTo}). */
export type ReplyTarget = NonNullable<OutboundChatMessage["replyTo"]>;

/** What a reply needs of the mail it answers: its id, provider, direction, session and messages. */
export type AnsweredMail = Pick<
  MailFrontMatter,
  "id" | "provider" | "direction" | "session" | "messages"
>;

/**
 * The message of an inbound mail a reply answers: the last one that says
 * how to answer it (`extra.reply`, kept by the platform module). A mail
 * folds a burst of one conversation, so the last message is the one the
 * reply follows: in a thread the thread, for DingTalk the freshest session
 * webhook, for Lark and Telegram the message quoted. `null` for a mail whose
 * messages carry no `extra.reply` (posted with the generic JSON).
 */
export function replyTargetOf(mail: AnsweredMail): ReplyTarget | null {
  for (let i = mail.messages.length - 1; i >= 0; i--) {
    const message = mail.messages[i];
    const reply = message.extra?.reply;
    if (typeof reply === "object" && reply !== null && !Array.isArray(reply)) {
      return {
        message_id: message.message_id ?? "",
        reply: reply as Record<string, unknown>,
        session_id: mail.session.id,
      };
    }
  }
  return null;
}

/**
 * Why mail `answered` cannot be answered through `provider` by a message to
 * `to`, or `null` when it can.
 */
export function replyProblem(answered: AnsweredMail, provider: string, to: string): string | null {
  const id = answered.id;
  if (answered.direction !== "inbound") {
    return `reply_to ${id} is an outbound mail: a reply answers an inbound mail`;
  }
  if (answered.provider !== provider) {
    return `reply_to ${id} came through provider "${answered.provider}": send the reply ` +
      `through that provider`;
  }
  if (answered.session.id !== to) {
    return `reply_to ${id} is a mail of conversation "${answered.session.id}": a reply goes ` +
      `there, so "to" must be "${answered.session.id}"`;
  }
  return null;
}

/** Options of {@link providerSender}. */
export interface ProviderSenderOptions {
  /** Reads a mail by id (`MailService.show`); throws `MailNotFoundError` for an unknown one. */
  lookup: (id: string) => Promise<Record<string, unknown>>;
  /** Told of each send's outcome (for the provider's counters and last error). */
  onResult?: (error: unknown | null) => void;
}

/**
 * The {@link OutboundSender} of a chat provider: sends an outbound mail's
 * `to`, text and `extra` with `provider.send`, the mail id as the
 * idempotency key. A reply (`reply_to`) goes to the conversation and thread
 * of the message it answers ({@link replyTargetOf}); it is checked when the
 * mail is queued (the mail answered exists, is inbound, came through this
 * provider, and `to` is its conversation). A `ProviderError` is thrown as it
 * is: its `retryable` and `retryAfterMs` drive the retry schedule, its
 * message (with the platform's own error) is the failure reason.
 */
export function providerSender(provider: Provider, options: ProviderSenderOptions): OutboundSender {
  const answered = async (id: string): Promise<AnsweredMail> => {
    const view = await options.lookup(id) as unknown as AnsweredMail;
    return { ...view, messages: Array.isArray(view.messages) ? view.messages : [] };
  };
  return {
    kind: provider.type,
    async check(input: OutboundInput): Promise<void> {
      if (input.reply_to === undefined) return;
      let mail: AnsweredMail;
      try {
        mail = await answered(input.reply_to);
      } catch (error) {
        if (!(error instanceof MailNotFoundError)) throw error;
        throw new MailValidationError(
          "reply_to",
          `reply_to: no mail "${input.reply_to}" to answer`,
        );
      }
      const problem = replyProblem(mail, provider.name, input.to);
      if (problem) throw new MailValidationError("reply_to", problem);
    },
    async send(mail: MailDocument, signal: AbortSignal): Promise<void> {
      const fm = mail.frontMatter;
      const to = fm.participants.to?.id ?? fm.session.id;
      const message: OutboundChatMessage = {
        to,
        text: fm.content.text,
        idempotencyKey: fm.id,
      };
      if (Object.keys(fm.metadata.extra ?? {}).length > 0) message.extra = fm.metadata.extra;
      try {
        if (fm.reply_to !== undefined) {
          let target: AnsweredMail;
          try {
            target = await answered(fm.reply_to);
          } catch (error) {
            throw error instanceof MailNotFoundError
              ? new DeliveryError(`the mail it answers (${fm.reply_to}) is gone`, {
                retryable: false,
              })
              : error;
          }
          const problem = replyProblem(target, provider.name, to);
          if (problem) throw new DeliveryError(problem, { retryable: false });
          const replyTo = replyTargetOf(target);
          if (replyTo) message.replyTo = replyTo;
        }
        await provider.send(message, signal);
        options.onResult?.(null);
      } catch (error) {
        options.onResult?.(error);
        throw error;
      }
    },
  };
}
