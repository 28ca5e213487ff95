import { MailValidationError, PayloadTooLargeError } from "./errors.ts";
import type { MailSender, MailSession, SessionType } from "./mail_file.ts";
import { isValidProvider, MAIL_ID_PATTERN } from "./mailbox.ts";

const decoder = new TextDecoder();

/**
 * Reads a JSON object body of at most `limit` bytes. A declared
 * `content-length` over the limit is refused before reading; a chunked body
 * is cut off as soon as it passes the limit.
 *
 * @throws {PayloadTooLargeError} over the limit (413).
 * @throws {MailValidationError} when the body is not a JSON object (400, field `body`).
 */
export async function readJsonBody(
  request: Request,
  limit: number,
): Promise<Record<string, unknown>> {
  const bytes = await readBodyBytes(request, limit);
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new MailValidationError("body", "the request body must be a JSON object");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MailValidationError("body", "the request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * Reads a body as raw bytes, at most `limit` of them: a declared
 * `content-length` over the limit is refused before reading; a chunked body
 * is cut off as soon as it passes the limit.
 *
 * @throws {PayloadTooLargeError} over the limit (413).
 */
export async function readBodyBytes(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  let bytes: Uint8Array;
  if (declared !== null && /^\d+$/.test(declared)) {
    if (Number(declared) > limit) {
      await request.body?.cancel().catch(() => {});
      throw new PayloadTooLargeError(limit);
    }
    bytes = new Uint8Array(await request.arrayBuffer());
  } else {
    bytes = await readCapped(request, limit);
  }
  if (bytes.length > limit) throw new PayloadTooLargeError(limit);
  return bytes;
}

async function readCapped(request: Request, limit: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new PayloadTooLargeError(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/**
 * Checks a provider name from a URL.
 *
 * @throws {MailValidationError} unless it is 1-64 letters, digits, `-`, `_`.
 */
export function validateProvider(name: string): string {
  if (!isValidProvider(name)) {
    throw new MailValidationError(
      "provider",
      `invalid provider "${name.slice(0, 80)}": use 1-64 letters, digits, "-" or "_"`,
    );
  }
  return name;
}

/**
 * Checks a mail id from a URL.
 *
 * @throws {MailValidationError} unless it is letters, digits, `-` and `_`.
 */
export function validateMailId(id: string): string {
  if (!MAIL_ID_PATTERN.test(id)) {
    throw new MailValidationError("id", `invalid mail id "${id.slice(0, 80)}"`);
  }
  return id;
}

/** Options of {@link stringField}. */
export interface StringFieldOptions {
  /** Must be present (default true). */
  required?: boolean;
  /** May be empty or blank (default false). */
  allowEmpty?: boolean;
  /** Longest length allowed. */
  max?: number;
  /** The field's name in errors (`sender.id`). */
  path?: string;
  /** Accept a number and turn it into text (ids; default false). */
  allowNumber?: boolean;
}

/** A string field: required and non-empty unless said otherwise. */
export function stringField(
  body: Record<string, unknown>,
  field: string,
  options: StringFieldOptions = {},
): string | undefined {
  const name = options.path ?? field;
  const value = body[field];
  if (value === undefined || value === null) {
    if (options.required ?? true) throw new MailValidationError(name, `"${name}" is required`);
    return undefined;
  }
  const text = options.allowNumber && typeof value === "number" && Number.isFinite(value)
    ? String(value)
    : value;
  if (typeof text !== "string") {
    throw new MailValidationError(name, `"${name}" must be a string`);
  }
  if (!options.allowEmpty && text.trim() === "") {
    throw new MailValidationError(name, `"${name}" must not be empty`);
  }
  if (options.max !== undefined && text.length > options.max) {
    throw new MailValidationError(name, `"${name}" is longer than ${options.max} characters`);
  }
  return text;
}

function objectField(
  body: Record<string, unknown>,
  field: string,
  required: boolean,
): Record<string, unknown> | undefined {
  const value = body[field];
  if (value === undefined || value === null) {
    if (required) throw new MailValidationError(field, `"${field}" is required`);
    return undefined;
  }
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new MailValidationError(field, `"${field}" must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** A validated inbound webhook message. */
export interface InboundInput {
  /** The conversation. */
  session: MailSession;
  /** Who sent it. */
  sender: MailSender;
  /** Its text. */
  text: string;
  /** When it was sent (ISO 8601), if the webhook said. */
  time?: string;
  /** The provider's message id, if any. */
  message_id?: string;
  /** `extra` plus any field courier does not know. */
  extra?: Record<string, unknown>;
}

const SESSION_TYPES: readonly SessionType[] = ["direct", "group", "thread"];
const INBOUND_FIELDS = new Set([
  "session_id",
  "session_type",
  "session_name",
  "thread_key",
  "sender",
  "text",
  "timestamp",
  "message_id",
  "extra",
]);

/**
 * Parses a timestamp: ISO 8601 text, or a number of milliseconds since the
 * epoch (values below 10^11 are taken as seconds).
 */
export function parseTimestamp(value: unknown, field = "timestamp"): string {
  let ms: number;
  if (typeof value === "number" && Number.isFinite(value)) {
    ms = value < 1e11 ? value * 1000 : value;
  } else if (typeof value === "string" && value.trim() !== "") {
    ms = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : Date.parse(value);
    if (/^\d+(\.\d+)?$/.test(value.trim()) && ms < 1e11) ms *= 1000;
  } else {
    throw new MailValidationError(field, `"${field}" must be ISO 8601 text or epoch milliseconds`);
  }
  const date = new Date(ms);
  if (!Number.isFinite(ms) || Number.isNaN(date.getTime())) {
    throw new MailValidationError(field, `"${field}" is not a valid time`);
  }
  return date.toISOString();
}

/**
 * Validates `POST /api/v1/inbound/<provider>`:
 * `{session_id, session_type?, session_name?, thread_key?, sender: {id, name},
 * text, timestamp?, message_id?, extra?}`. Unknown fields go to `extra`.
 *
 * @throws {MailValidationError} naming the first bad field.
 */
export function validateInbound(body: Record<string, unknown>): InboundInput {
  const sessionId = stringField(body, "session_id", { max: 512, allowNumber: true })!;
  const rawType = stringField(body, "session_type", { required: false });
  const threadKey = stringField(body, "thread_key", {
    required: false,
    max: 512,
    allowNumber: true,
  });
  let type: SessionType;
  if (rawType === undefined) type = threadKey ? "thread" : "direct";
  else if ((SESSION_TYPES as readonly string[]).includes(rawType)) type = rawType as SessionType;
  else {
    throw new MailValidationError(
      "session_type",
      `"session_type" must be one of ${SESSION_TYPES.join(", ")}`,
    );
  }
  const session: MailSession = { id: sessionId, type };
  const sessionName = stringField(body, "session_name", { required: false, allowEmpty: true });
  if (sessionName) session.name = sessionName;
  if (threadKey !== undefined) session.thread_key = threadKey;
  const senderValue = objectField(body, "sender", true)!;
  const senderId = stringField(senderValue, "id", {
    path: "sender.id",
    max: 512,
    allowNumber: true,
  })!;
  const senderName = stringField(senderValue, "name", {
    path: "sender.name",
    required: false,
    allowEmpty: true,
  });
  const text = stringField(body, "text", { allowEmpty: true })!;
  const input: InboundInput = {
    session,
    sender: { id: senderId, name: senderName || senderId },
    text,
  };
  if (body.timestamp !== undefined && body.timestamp !== null) {
    input.time = parseTimestamp(body.timestamp);
  }
  const messageId = stringField(body, "message_id", {
    required: false,
    max: 512,
    allowNumber: true,
  });
  if (messageId !== undefined) input.message_id = messageId;
  const extra: Record<string, unknown> = { ...objectField(body, "extra", false) };
  for (const [key, value] of Object.entries(body)) {
    if (!INBOUND_FIELDS.has(key)) extra[key] = value;
  }
  if (Object.keys(extra).length > 0) input.extra = extra;
  return input;
}

/** A validated outbound request. */
export interface OutboundInput {
  /** The recipient (a user or conversation id on the provider). */
  to: string;
  /** The text to send. */
  text: string;
  /** The mail this answers. */
  reply_to?: string;
  /** Anything else to pass along. */
  extra?: Record<string, unknown>;
}

/**
 * Validates `POST /api/v1/outbound/<provider>`: `{to, text, reply_to?, extra?}`.
 *
 * @throws {MailValidationError} naming the first bad field.
 */
export function validateOutbound(body: Record<string, unknown>): OutboundInput {
  const input: OutboundInput = {
    to: stringField(body, "to", { max: 512, allowNumber: true })!,
    text: stringField(body, "text")!,
  };
  const replyTo = stringField(body, "reply_to", { required: false, max: 512 });
  if (replyTo !== undefined) input.reply_to = replyTo;
  const extra = objectField(body, "extra", false);
  if (extra) input.extra = extra;
  return input;
}

/** `{agent_id}` of claim, complete and fail. */
export function validateAgent(body: Record<string, unknown>): string {
  return stringField(body, "agent_id", { max: 256 })!;
}

/**
 * The claim `timeout` in seconds (default `fallback`): more than 0, at most a day.
 *
 * @throws {MailValidationError} on anything else.
 */
export function validateTimeout(body: Record<string, unknown>, fallback: number): number {
  const value = body.timeout;
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > 86_400) {
    throw new MailValidationError(
      "timeout",
      `"timeout" must be a number of seconds above 0 and at most 86400`,
    );
  }
  return value;
}

/** `{reason, retryable?}` of fail; `retryable` defaults to true. */
export function validateFailure(
  body: Record<string, unknown>,
): { reason: string; retryable: boolean } {
  const reason = stringField(body, "reason", { max: 4096 })!;
  const retryable = body.retryable ?? true;
  if (typeof retryable !== "boolean") {
    throw new MailValidationError("retryable", `"retryable" must be true or false`);
  }
  return { reason, retryable };
}

/** A validated claim-next request. */
export interface ClaimNextInput {
  /** The agent claiming. */
  agentId: string;
  /** Only this provider's mails. */
  provider?: string;
  /** Only this conversation's mails. */
  sessionId?: string;
  /** The claim's length in seconds (default: the daemon's). */
  timeoutS?: number;
  /** Seconds to wait for a claimable mail (0 to 60, default 0). */
  waitS: number;
}

/**
 * Validates `POST /api/v1/messages/claim-next`:
 * `{agent_id, provider?, session_id?, direction?, wait_s?, timeout?}`.
 * Only inbound mails are claimed, so `direction` may only be `inbound`.
 *
 * @throws {MailValidationError} naming the first bad field.
 */
export function validateClaimNext(body: Record<string, unknown>): ClaimNextInput {
  const input: ClaimNextInput = { agentId: validateAgent(body), waitS: 0 };
  const provider = stringField(body, "provider", { required: false, max: 64 });
  if (provider !== undefined) input.provider = validateProvider(provider);
  const session = stringField(body, "session_id", { required: false, max: 512, allowNumber: true });
  if (session !== undefined) input.sessionId = session;
  const direction = stringField(body, "direction", { required: false });
  if (direction !== undefined && direction !== "inbound") {
    throw new MailValidationError(
      "direction",
      direction === "outbound"
        ? `"direction" outbound: courier delivers outbound mail itself; agents claim inbound mail`
        : `"direction" must be inbound`,
    );
  }
  const wait = body.wait_s;
  if (wait !== undefined && wait !== null) {
    if (typeof wait !== "number" || !Number.isFinite(wait) || wait < 0 || wait > 60) {
      throw new MailValidationError("wait_s", `"wait_s" must be a number of seconds from 0 to 60`);
    }
    input.waitS = wait;
  }
  if (body.timeout !== undefined && body.timeout !== null) {
    input.timeoutS = validateTimeout(body, 0);
  }
  return input;
}

/** A validated prune request. */
export interface PruneInput {
  /** Mails finished longer ago than this (ms). */
  olderThanMs: number;
  /** Which final statuses. */
  statuses: ("done" | "dead")[];
  /** Only count. */
  dryRun: boolean;
}

/**
 * Validates `POST /api/v1/messages/prune`:
 * `{older_than_s, status?: "done" | "dead" | ["done", "dead"], dry_run?}`.
 *
 * @throws {MailValidationError} naming the first bad field.
 */
export function validatePrune(body: Record<string, unknown>): PruneInput {
  const older = body.older_than_s;
  if (typeof older !== "number" || !Number.isFinite(older) || older < 0) {
    throw new MailValidationError(
      "older_than_s",
      `"older_than_s" is required: a number of seconds (0 or more) since the mails finished`,
    );
  }
  const raw = body.status ?? ["done", "dead"];
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length === 0 || list.some((s) => s !== "done" && s !== "dead")) {
    throw new MailValidationError(
      "status",
      `"status" must be "done", "dead" or both: only finished mails are pruned`,
    );
  }
  const dryRun = body.dry_run ?? false;
  if (typeof dryRun !== "boolean") {
    throw new MailValidationError("dry_run", `"dry_run" must be true or false`);
  }
  return {
    olderThanMs: older * 1000,
    statuses: [...new Set(list)] as ("done" | "dead")[],
    dryRun,
  };
}
