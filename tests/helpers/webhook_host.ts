/**
 * Courier's side of a platform webhook, as the mail service will host it:
 * `POST /inbound` hands the raw bytes to `provider.handleWebhook`, stores
 * the messages it yields once per `message_id` (the journal's dedup), and
 * answers as the outcome says. Tests point a fake platform at it.
 */
import type { ChatMessage, Provider, WebhookOutcome } from "../../lib/providers/mod.ts";
import { leaseTestPort, releaseTestPort } from "./ports.ts";

/** A running webhook host. */
export interface WebhookHost {
  /** The URL the platform POSTs to. */
  url: string;
  /** Messages stored, once per `message_id`, in order. */
  stored: ChatMessage[];
  /** Every outcome, in order. */
  outcomes: WebhookOutcome[];
  /** Stops the host. */
  close(): Promise<void>;
}

/** Starts a webhook host for `provider` on a leased port. */
export async function startWebhookHost(provider: Provider): Promise<WebhookHost> {
  const port = await leaseTestPort();
  const stored: ChatMessage[] = [];
  const outcomes: WebhookOutcome[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (request) => {
    const body = new Uint8Array(await request.arrayBuffer());
    const outcome = await provider.handleWebhook(request, body);
    outcomes.push(outcome);
    switch (outcome.kind) {
      case "rejected":
        return Response.json({ error: outcome.reason }, { status: outcome.status });
      case "answer":
        return outcome.response;
      case "messages":
        for (const message of outcome.messages) {
          if (!stored.some((m) => m.message_id === message.message_id)) stored.push(message);
        }
        return outcome.respond();
    }
  });
  return {
    url: `http://127.0.0.1:${port}/inbound`,
    stored,
    outcomes,
    close: async () => {
      await server.shutdown();
      await releaseTestPort(port);
    },
  };
}
