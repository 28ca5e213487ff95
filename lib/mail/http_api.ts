import { jsonResponse, methodNotAllowed } from "../http/mod.ts";
import { MailError, MailValidationError } from "./errors.ts";
import { MAIL_STATUSES, type MailStatus } from "./mailbox.ts";
import type { MailListFilter, MailService } from "./service.ts";
import {
  readJsonBody,
  validateAgent,
  validateFailure,
  validateInbound,
  validateMailId,
  validateOutbound,
  validateProvider,
  validateTimeout,
} from "./validate.ts";

const PREFIX = "/api/v1/";

/**
 * The mail service's HTTP API. Answers
 *
 * - `POST /api/v1/inbound/<provider>` → 202 `{accepted, pending_key}`
 * - `GET /api/v1/messages?status=&provider=&direction=&limit=` → `{messages, count}`
 * - `GET /api/v1/messages/<id>` → the mail
 * - `POST /api/v1/messages/<id>/claim|complete|fail`
 * - `POST /api/v1/outbound/<provider>` → 202 `{queued, id}`
 *
 * and returns `null` for every other path. Errors are JSON
 * `{error, field?}` with 400, 403, 404, 405, 409, 413 or 503.
 */
export async function handleMailRequest(
  service: MailService,
  request: Request,
  url: URL,
): Promise<Response | null> {
  if (!url.pathname.startsWith(PREFIX)) return null;
  const parts = url.pathname.slice(PREFIX.length).split("/");
  const area = parts[0];
  if (area !== "inbound" && area !== "outbound" && area !== "messages") return null;
  try {
    if (area === "inbound") return await inbound(service, request, parts);
    if (area === "outbound") return await outbound(service, request, parts);
    return await messages(service, request, url, parts);
  } catch (error) {
    if (error instanceof MailError) return jsonResponse(error.toJson(), error.status);
    throw error;
  }
}

function notFound(path: string): Response {
  return jsonResponse({ error: `not found: ${path}` }, 404);
}

/**
 * What inbound and outbound posts share: the path shape, the method, 503
 * while draining, the provider name and a size-limited JSON body.
 */
async function postedJson(
  service: MailService,
  request: Request,
  parts: string[],
): Promise<Response | { provider: string; body: Record<string, unknown> }> {
  if (parts.length !== 2) return notFound(`/api/v1/${parts.join("/")}`);
  if (request.method !== "POST") return methodNotAllowed(request.method, "POST");
  if (service.isDraining) {
    await request.body?.cancel().catch(() => {});
    return jsonResponse({ error: "courier is stopping; retry shortly" }, 503);
  }
  const provider = validateProvider(parts[1]);
  return { provider, body: await readJsonBody(request, service.settings.maxBodyBytes) };
}

async function inbound(service: MailService, request: Request, parts: string[]): Promise<Response> {
  const posted = await postedJson(service, request, parts);
  if (posted instanceof Response) return posted;
  const result = await service.receive(posted.provider, validateInbound(posted.body));
  return jsonResponse(result, 202);
}

async function outbound(
  service: MailService,
  request: Request,
  parts: string[],
): Promise<Response> {
  const posted = await postedJson(service, request, parts);
  if (posted instanceof Response) return posted;
  return jsonResponse(await service.send(posted.provider, validateOutbound(posted.body)), 202);
}

function listFilter(url: URL): MailListFilter {
  const filter: MailListFilter = {};
  const status = url.searchParams.get("status");
  if (status !== null && status !== "") {
    if (!(MAIL_STATUSES as readonly string[]).includes(status)) {
      throw new MailValidationError(
        "status",
        `"status" must be one of ${MAIL_STATUSES.join(", ")}`,
      );
    }
    filter.status = status as MailStatus;
  }
  const provider = url.searchParams.get("provider");
  if (provider !== null && provider !== "") filter.provider = validateProvider(provider);
  const direction = url.searchParams.get("direction");
  if (direction !== null && direction !== "") {
    if (direction !== "inbound" && direction !== "outbound") {
      throw new MailValidationError("direction", `"direction" must be inbound or outbound`);
    }
    filter.direction = direction;
  }
  const limit = url.searchParams.get("limit");
  if (limit !== null && limit !== "") {
    const n = /^\d+$/.test(limit) ? Number(limit) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 100_000) {
      throw new MailValidationError("limit", `"limit" must be a whole number from 1 to 100000`);
    }
    filter.limit = n;
  }
  return filter;
}

async function messages(
  service: MailService,
  request: Request,
  url: URL,
  parts: string[],
): Promise<Response> {
  if (parts.length === 1 || (parts.length === 2 && parts[1] === "")) {
    if (request.method !== "GET") return methodNotAllowed(request.method, "GET");
    const list = service.list(listFilter(url));
    return jsonResponse({ messages: list, count: list.length });
  }
  const id = validateMailId(parts[1]);
  if (parts.length === 2) {
    if (request.method !== "GET") return methodNotAllowed(request.method, "GET");
    return jsonResponse(await service.show(id));
  }
  if (parts.length !== 3) return notFound(url.pathname);
  const action = parts[2];
  if (action !== "claim" && action !== "complete" && action !== "fail") {
    return notFound(url.pathname);
  }
  if (request.method !== "POST") return methodNotAllowed(request.method, "POST");
  const body = await readJsonBody(request, service.settings.maxBodyBytes);
  const agent = validateAgent(body);
  switch (action) {
    case "claim": {
      const timeoutS = validateTimeout(body, service.settings.claimTimeoutS);
      return jsonResponse(await service.claim(id, agent, { timeoutS }));
    }
    case "complete":
      return jsonResponse(await service.complete(id, agent));
    case "fail":
      return jsonResponse(await service.fail(id, agent, validateFailure(body)));
  }
}
