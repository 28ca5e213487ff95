/**
 * `POST /api/v1/inbound/<name>` for a chat provider in webhook mode, as the
 * platform sends it (no API token): the raw body, size-limited, goes to the
 * provider, which verifies it before anything parses it; a refused request
 * gets the provider's status (401) and stores nothing; a handshake (URL
 * challenge) is answered as the provider says; messages are journaled, one
 * by one in order, and only then answered (within Slack's 3 seconds: one
 * group-committed write).
 *
 * The same route with the API token is the generic JSON webhook, so that
 * scripts can put messages into a platform's mailbox (see `MailExtension`).
 *
 * @module
 */
import { jsonResponse } from "../http/mod.ts";
import { MailError, MailUnavailableError } from "./errors.ts";
import { mailErrorResponse } from "./http_api.ts";
import { inboundProviderName } from "./provider_config.ts";
import type { ChatProviders } from "./providers.ts";
import type { MailService } from "./service.ts";
import { readBodyBytes } from "./validate.ts";

/**
 * Answers a platform's webhook request for a provider in webhook mode, or
 * returns `null` when the request is not one (another route, another
 * provider, or not a POST).
 */
export async function handlePlatformWebhook(
  providers: ChatProviders,
  service: MailService,
  request: Request,
  url: URL,
  peer: string,
): Promise<Response | null> {
  const name = inboundProviderName(request, url);
  const provider = name === null ? undefined : providers.webhook(name);
  if (name === null || !provider) return null;
  try {
    if (service.isDraining) throw new MailUnavailableError("courier is stopping; retry shortly");
    const body = await readBodyBytes(request, service.settings.maxBodyBytes);
    const outcome = await provider.handleWebhook(request, body);
    switch (outcome.kind) {
      case "rejected":
        providers.rejected(name, outcome.reason, peer);
        return jsonResponse({ error: `request refused: ${outcome.reason}` }, outcome.status);
      case "answer":
        return outcome.response;
      case "messages":
        await providers.store(name, outcome.messages);
        return outcome.respond();
    }
  } catch (error) {
    if (error instanceof MailError) return await mailErrorResponse(request, error);
    throw error;
  }
}
