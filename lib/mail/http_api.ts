import { jsonResponse, methodNotAllowed } from "../http/mod.ts";
import { MailError, MailValidationError } from "./errors.ts";
import { eventStreamResponse } from "./http_events.ts";
import { MAIL_STATUSES, type MailStatus } from "./mailbox.ts";
import type { MailListFilter, MailService } from "./service.ts";
import {
  readJsonBody,
  validateAgent,
  validateClaimNext,
  validateFailure,
  validateInbound,
  validateMailId,
  validateOutbound,
  validateProvider,
  validatePrune,
  validateTimeout,
} from "./validate.ts";

const PREFIX = "/api/v1/";

/** Per-mail actions: `POST /api/v1/messages/<id>/<action>`. */
const ACTIONS = new Set(["claim", "complete", "fail", "release", "requeue"]);

/**
 * The mail service's HTTP API. Answers
 *
 * - `POST /api/v1/inbound/<provider>` → 202 `{accepted, pending_key}`
 * - `GET /api/v1/messages?status=&provider=&direction=&session_id=&order=&limit=&cursor=`
 *   → `{messages, count, next_cursor?}`
 * - `GET /api/v1/messages/<id>` → the mail
 * - `POST /api/v1/messages/claim-next` → 200 the mail and its `claim`, or 204
 * - `POST /api/v1/messages/<id>/claim|complete|fail|release|requeue`
 * - `POST /api/v1/messages/prune` → `{pruned, done, dead, before, dry_run}`
 * - `POST /api/v1/outbound/<provider>` → 202 `{queued, id}`
 * - `GET /api/v1/events` → Server-Sent Events
 *
 * and returns `null` for every other path. Errors are JSON
 * `{error, field?, …}` with 400, 403, 404, 405, 409, 413 or 503 (with
 * `Retry-After`).
 */
export async function handleMailRequest(
  service: MailService,
  request: Request,
  url: URL,
  context?: { stillAuthenticated: () => boolean },
): Promise<Response | null> {
  if (!url.pathname.startsWith(PREFIX)) return null;
  const parts = url.pathname.slice(PREFIX.length).split("/");
  const area = parts[0];
  try {
    switch (area) {
      case "inbound":
        return await inbound(service, request, parts);
      case "outbound":
        return await outbound(service, request, parts);
      case "messages":
        return await messages(service, request, url, parts);
      case "events":
        if (parts.length !== 1) return notFound(url.pathname);
        if (request.method !== "GET") return methodNotAllowed(request.method, "GET");
        return eventStreamResponse(service.events, request, url, {
          heartbeatMs: service.settings.eventsHeartbeatMs,
          stillAuthorized: context?.stillAuthenticated,
        });
      default:
        return null;
    }
  } catch (error) {
    if (error instanceof MailError) return await mailErrorResponse(request, error);
    throw error;
  }
}

/**
 * The answer to a request a {@link MailError} stopped: its status and JSON
 * body, `Retry-After` when it has one (the request body is discarded).
 */
export async function mailErrorResponse(request: Request, error: MailError): Promise<Response> {
  await request.body?.cancel().catch(() => {});
  const headers: Record<string, string> = error.retryAfterS === undefined
    ? {}
    : { "retry-after": String(error.retryAfterS) };
  return jsonResponse(error.toJson(), error.status, headers);
}

function notFound(path: string): Response {
  return jsonResponse({ error: `not found: ${path}` }, 404);
}

function stopping(): Response {
  return jsonResponse({ error: "courier is stopping; retry shortly" }, 503, { "retry-after": "1" });
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
    return stopping();
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
  const query = url.searchParams;
  const status = query.getAll("status").flatMap((s) => s.split(",")).map((s) => s.trim())
    .filter(Boolean);
  if (status.length > 0) {
    const bad = status.find((s) => !(MAIL_STATUSES as readonly string[]).includes(s));
    if (bad !== undefined) {
      throw new MailValidationError(
        "status",
        `"status" must be one or more of ${MAIL_STATUSES.join(", ")} (comma-separated)`,
      );
    }
    filter.status = [...new Set(status)] as MailStatus[];
  }
  const provider = query.get("provider");
  if (provider !== null && provider !== "") filter.provider = validateProvider(provider);
  const direction = query.get("direction");
  if (direction !== null && direction !== "") {
    if (direction !== "inbound" && direction !== "outbound") {
      throw new MailValidationError("direction", `"direction" must be inbound or outbound`);
    }
    filter.direction = direction;
  }
  const session = query.get("session_id");
  if (session !== null && session !== "") filter.session_id = session;
  const order = query.get("order");
  if (order !== null && order !== "") {
    if (order !== "oldest" && order !== "newest") {
      throw new MailValidationError("order", `"order" must be oldest or newest`);
    }
    filter.order = order;
  }
  const limit = query.get("limit");
  if (limit !== null && limit !== "") {
    const n = /^\d+$/.test(limit) ? Number(limit) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 100_000) {
      throw new MailValidationError("limit", `"limit" must be a whole number from 1 to 100000`);
    }
    filter.limit = n;
  }
  const cursor = query.get("cursor");
  if (cursor !== null && cursor !== "") filter.cursor = cursor;
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
    return jsonResponse(await service.list(listFilter(url)));
  }
  if (parts.length === 2 && (parts[1] === "claim-next" || parts[1] === "prune")) {
    if (request.method !== "POST") return methodNotAllowed(request.method, "POST");
    const body = await readJsonBody(request, service.settings.maxBodyBytes);
    if (parts[1] === "prune") return jsonResponse(await service.prune(validatePrune(body)));
    if (service.isDraining) return stopping();
    const input = validateClaimNext(body);
    const claimed = await service.claimNext({ ...input, signal: request.signal });
    return claimed ? jsonResponse(claimed) : new Response(null, { status: 204 });
  }
  const id = validateMailId(parts[1]);
  if (parts.length === 2) {
    if (request.method !== "GET") return methodNotAllowed(request.method, "GET");
    return jsonResponse(await service.show(id));
  }
  if (parts.length !== 3 || !ACTIONS.has(parts[2])) return notFound(url.pathname);
  if (request.method !== "POST") return methodNotAllowed(request.method, "POST");
  if (parts[2] === "requeue") {
    await request.body?.cancel().catch(() => {}); // takes no body
    return jsonResponse(await service.requeue(id));
  }
  const body = await readJsonBody(request, service.settings.maxBodyBytes);
  switch (parts[2]) {
    case "claim": {
      const agent = validateAgent(body);
      const timeoutS = validateTimeout(body, service.settings.claimTimeoutS);
      return jsonResponse(await service.claim(id, agent, { timeoutS }));
    }
    case "release":
      return jsonResponse(await service.release(id, validateAgent(body)));
    case "complete":
      return jsonResponse(await service.complete(id, validateAgent(body)));
    default:
      return jsonResponse(await service.fail(id, validateAgent(body), validateFailure(body)));
  }
}
