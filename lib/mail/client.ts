import { CourierError, ExitCode, type ExitCodeValue } from "../errors/mod.ts";
import type { HomeLayout } from "../home/mod.ts";
import { readTokenFile } from "../http/token.ts";
import { readDaemonState } from "../service/state_file.ts";
import type { ClaimedMail } from "./claiming.ts";
import type { ClaimEntry } from "./claims.ts";
import type { MailEvent } from "./events.ts";
import type { PruneResult } from "./retention.ts";
import type { ReceiveResult } from "./intake.ts";
import type { MailListFilter, MailListPage, MailSummary } from "./listing.ts";

/** No daemon answers for this home (exit {@link ExitCode.NotRunning}). */
export class DaemonNotRunningError extends CourierError {
  /**
   * Creates a `DaemonNotRunningError`.
   *
   * @param cause Why we think so (no state file, connection refused).
   */
  constructor(cause?: unknown) {
    super("Courier is not running; start it with 'courier start'", {
      cause,
      exitCode: ExitCode.NotRunning,
    });
    this.name = "DaemonNotRunningError";
  }
}

/**
 * The exit code of a mail command whose request the daemon answered with
 * `status`: 400 and 413 bad input, 403 forbidden, 404 not found, 409
 * conflict, 503 try again; anything else a plain failure.
 */
export function exitCodeOfStatus(status: number): ExitCodeValue {
  switch (status) {
    case 400:
    case 413:
      return ExitCode.BadInput;
    case 403:
      return ExitCode.Forbidden;
    case 404:
      return ExitCode.NotFound;
    case 409:
      return ExitCode.Conflict;
    case 503:
      return ExitCode.TryAgain;
    default:
      return ExitCode.Failure;
  }
}

/**
 * The daemon answered a mail request with an error. Its exit code follows
 * the HTTP status ({@link exitCodeOfStatus}); it (`http_status`) and the body's
 * facts (`field`, `holder`, `expires_at`…) are in the CLI's `--json` error.
 */
export class MailRequestError extends CourierError {
  /** The HTTP status. */
  readonly status: number;
  /** The JSON error body (`{error, field?, holder?…}`). */
  readonly body: Record<string, unknown>;

  /**
   * Creates a `MailRequestError`.
   *
   * @param status The HTTP status.
   * @param body The JSON error body.
   */
  constructor(status: number, body: Record<string, unknown>) {
    const field = typeof body.field === "string" ? ` (field ${body.field})` : "";
    const { error: _, ...facts } = body;
    super(`${String(body.error ?? `HTTP ${status}`)}${field}`, {
      exitCode: exitCodeOfStatus(status),
      facts: { http_status: status, ...facts },
    });
    this.name = "MailRequestError";
    this.status = status;
    this.body = body;
  }
}

/**
 * The API URL of the daemon running in `layout`'s home, read from its
 * state file (`run/courier.json`), or `null` when there is none.
 */
export async function readDaemonApiUrl(layout: HomeLayout): Promise<string | null> {
  const state = await readDaemonState(layout);
  return state?.api_url ?? null;
}

/** The `reset` event: the client fell too far behind (or the daemon restarted): resync. */
export interface ResetEvent {
  /** `reset`. */
  type: "reset";
  /** The stream position after it (pass it on as `lastEventId`). */
  id: number;
  /** The `Last-Event-ID` the client came back with. */
  last_event_id: number;
  /** Why, in words. */
  reason: string;
}

/** What {@link MailClient.events} yields. */
export type MailStreamEvent = MailEvent | ResetEvent;

/** Options of {@link MailClient.events}. */
export interface EventsOptions {
  /** Resume after this event id (what was missed comes first, or a `reset`). */
  lastEventId?: number;
  /** Only these event types. */
  types?: string[];
  /** Ends the stream. */
  signal?: AbortSignal;
  /**
   * Reconnect when the stream ends or the daemon is gone (a restart),
   * resuming after the last event, until `signal` aborts (default false:
   * the iteration ends with the stream).
   */
  reconnect?: boolean;
}

/** Options of {@link MailClient.claimNext}. */
export interface ClaimNextRequest {
  /** Only this provider's mails. */
  provider?: string;
  /** Only this conversation's mails. */
  sessionId?: string;
  /** Wait up to this many seconds (0 to 60) for a claimable mail. */
  waitS?: number;
  /** The claim's length in seconds (default the daemon's). */
  timeoutS?: number;
  /** Aborts the wait (the daemon gives back a mail it claimed for a client that left). */
  signal?: AbortSignal;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
  });
}

/**
 * Parses a Server-Sent Events body into `{id, event, data}` frames
 * (comments skipped; multi-line `data` joined with newlines).
 */
export async function* readServerSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ id?: string; event?: string; data: string }> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const frame: { id?: string; event?: string; data: string[] } = { data: [] };
        for (const line of block.split("\n")) {
          if (line === "" || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") frame.id = value;
          else if (field === "event") frame.event = value;
          else if (field === "data") frame.data.push(value);
        }
        if (frame.data.length > 0) yield { ...frame, data: frame.data.join("\n") };
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * A thin client of the mail HTTP API (what `courier mail …` uses). Every
 * request goes through one place, which adds the daemon's API token.
 *
 * @example
 * ```ts
 * const client = await MailClient.connect(homeLayout(resolveHome()));
 * console.log(await client.list({ status: "new" }));
 * const mail = await client.claimNext("triage", { waitS: 30 });
 * if (mail) await client.complete(mail.id as string, "triage");
 * ```
 */
export class MailClient {
  #apiUrl: string;
  #token: string | undefined;
  readonly #layout: HomeLayout | null;

  /**
   * Creates a `MailClient`.
   *
   * @param apiUrl The daemon's base URL.
   * @param options `token`: the API token (`<home>/run/api.token`); `layout`: the home, so a
   * reconnect finds a restarted daemon's new address and a rotated token is read again.
   */
  constructor(apiUrl: string, options: { token?: string; layout?: HomeLayout } = {}) {
    this.#apiUrl = apiUrl.replace(/\/+$/, "");
    this.#token = options.token;
    this.#layout = options.layout ?? null;
  }

  /** The daemon's base URL (`http://127.0.0.1:8644`). */
  get apiUrl(): string {
    return this.#apiUrl;
  }

  /**
   * A client of the daemon running in `layout`'s home, with its API token.
   *
   * @throws {DaemonNotRunningError} when no daemon state is recorded.
   * @throws {CourierError} (exit 3) when the token file cannot be read.
   */
  static async connect(layout: HomeLayout): Promise<MailClient> {
    const url = await readDaemonApiUrl(layout);
    if (!url) throw new DaemonNotRunningError();
    return new MailClient(url, { token: await readTokenFile(layout.tokenFile), layout });
  }

  /**
   * The daemon's `/health` (with the token: `mailbox`, `metrics`, `services`…);
   * a cheap way to learn that it answers.
   *
   * @throws {DaemonNotRunningError} when it cannot be reached.
   */
  health(): Promise<Record<string, unknown>> {
    return this.#request("GET", "/health");
  }

  /** Lists mails (one page: see {@link MailClient.listPage} for the cursor). */
  async list(filter: MailListFilter = {}): Promise<MailSummary[]> {
    return (await this.listPage(filter)).messages;
  }

  /** One page of mails, with `next_cursor` when more follow (pass it as `cursor`). */
  async listPage(filter: MailListFilter = {}): Promise<MailListPage> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) {
      if (value === undefined) continue;
      query.set(key, Array.isArray(value) ? value.join(",") : String(value));
    }
    const suffix = query.size > 0 ? `?${query}` : "";
    return await this.#request("GET", `/api/v1/messages${suffix}`) as unknown as MailListPage;
  }

  /** A mail: front matter, `body`, `status`. */
  show(id: string): Promise<Record<string, unknown>> {
    return this.#request("GET", `/api/v1/messages/${encodeURIComponent(id)}`);
  }

  /** Claims a mail for `agentId` (`timeoutS` seconds, default the daemon's). */
  async claim(
    id: string,
    agentId: string,
    options: { timeoutS?: number } = {},
  ): Promise<ClaimEntry> {
    const body: Record<string, unknown> = { agent_id: agentId };
    if (options.timeoutS !== undefined) body.timeout = options.timeoutS;
    return await this.#request(
      "POST",
      `/api/v1/messages/${encodeURIComponent(id)}/claim`,
      body,
    ) as unknown as ClaimEntry;
  }

  /**
   * Claims the oldest claimable mail for `agentId`, waiting up to `waitS`
   * seconds; `null` when none came (the daemon answered 204).
   */
  async claimNext(agentId: string, options: ClaimNextRequest = {}): Promise<ClaimedMail | null> {
    const body: Record<string, unknown> = { agent_id: agentId };
    if (options.provider !== undefined) body.provider = options.provider;
    if (options.sessionId !== undefined) body.session_id = options.sessionId;
    if (options.waitS !== undefined) body.wait_s = options.waitS;
    if (options.timeoutS !== undefined) body.timeout = options.timeoutS;
    const response = await this.#send("POST", "/api/v1/messages/claim-next", body, {
      signal: options.signal,
    });
    if (response.status === 204) {
      await response.body?.cancel();
      return null;
    }
    return await parsed(response) as ClaimedMail;
  }

  /** Gives a claimed mail back at once (no failure recorded). */
  release(id: string, agentId: string): Promise<Record<string, unknown>> {
    return this.#request("POST", `/api/v1/messages/${encodeURIComponent(id)}/release`, {
      agent_id: agentId,
    });
  }

  /** Puts a dead mail back (new, or queued for outbound), attempts reset. */
  requeue(id: string): Promise<Record<string, unknown>> {
    return this.#request("POST", `/api/v1/messages/${encodeURIComponent(id)}/requeue`, {});
  }

  /** Completes a claimed mail. */
  complete(id: string, agentId: string): Promise<Record<string, unknown>> {
    return this.#request("POST", `/api/v1/messages/${encodeURIComponent(id)}/complete`, {
      agent_id: agentId,
    });
  }

  /** Fails a claimed mail. */
  fail(
    id: string,
    agentId: string,
    failure: { reason: string; retryable: boolean },
  ): Promise<Record<string, unknown>> {
    return this.#request("POST", `/api/v1/messages/${encodeURIComponent(id)}/fail`, {
      agent_id: agentId,
      reason: failure.reason,
      retryable: failure.retryable,
    });
  }

  /** Removes done and/or dead mails finished more than `olderThanS` seconds ago. */
  async prune(options: {
    olderThanS: number;
    status?: ("done" | "dead")[];
    dryRun?: boolean;
  }): Promise<PruneResult> {
    return await this.#request("POST", "/api/v1/messages/prune", {
      older_than_s: options.olderThanS,
      ...(options.status ? { status: options.status } : {}),
      ...(options.dryRun ? { dry_run: true } : {}),
    }) as unknown as PruneResult;
  }

  /** Queues an outbound mail. */
  send(
    provider: string,
    message: { to: string; text: string; reply_to?: string },
  ): Promise<Record<string, unknown>> {
    return this.#request("POST", `/api/v1/outbound/${encodeURIComponent(provider)}`, message);
  }

  /** Posts an inbound message (as a chat bridge would). */
  async receive(provider: string, message: Record<string, unknown>): Promise<ReceiveResult> {
    return await this.#request(
      "POST",
      `/api/v1/inbound/${encodeURIComponent(provider)}`,
      message,
    ) as unknown as ReceiveResult;
  }

  /**
   * Follows the event stream (`GET /api/v1/events`). With `reconnect`, a
   * stream that ends (daemon stopped or restarted) is resumed after the last
   * event seen, with backoff, until `signal` aborts.
   *
   * @throws {DaemonNotRunningError} without `reconnect`, when the daemon cannot be reached.
   * @throws {MailRequestError} when the daemon refuses the request.
   */
  async *events(options: EventsOptions = {}): AsyncGenerator<MailStreamEvent> {
    let last = options.lastEventId;
    let delay = RECONNECT_MIN_MS;
    const query = options.types?.length ? `?types=${options.types.join(",")}` : "";
    while (!options.signal?.aborted) {
      let response: Response | null = null;
      try {
        response = await this.#fetch(`/api/v1/events${query}`, {
          headers: last === undefined ? {} : { "last-event-id": String(last) },
          signal: options.signal,
        });
      } catch (error) {
        if (!options.reconnect) throw error;
      }
      if (response && !response.ok) throw await requestError(response);
      if (response?.body) {
        delay = RECONNECT_MIN_MS;
        try {
          for await (const frame of readServerSentEvents(response.body)) {
            const event = JSON.parse(frame.data) as MailStreamEvent;
            if (frame.event === "reset") Object.assign(event, { id: Number(frame.id) });
            if (typeof event.id === "number") last = event.id;
            yield event;
          }
        } catch (error) {
          if (options.signal?.aborted) return;
          if (!options.reconnect) throw new DaemonNotRunningError(error);
        }
      }
      if (!options.reconnect) return;
      await sleep(delay, options.signal);
      delay = Math.min(RECONNECT_MAX_MS, delay * 2);
    }
  }

  /**
   * One request to the daemon: the single place where the token is set. A
   * 401 after the token was rotated is tried once more with the new token.
   */
  async #fetch(path: string, init: RequestInit = {}): Promise<Response> {
    try {
      const response = await fetch(this.#apiUrl + path, this.#withToken(init));
      if (response.status !== 401 || !this.#layout || init.body instanceof ReadableStream) {
        return response;
      }
      const token = await readTokenFile(this.#layout.tokenFile).catch(() => undefined);
      if (token === undefined || token === this.#token) return response;
      await response.body?.cancel();
      this.#token = token;
      return await fetch(this.#apiUrl + path, this.#withToken(init));
    } catch (error) {
      if (init.signal?.aborted) throw error;
      if (this.#layout) {
        const url = await readDaemonApiUrl(this.#layout).catch(() => null);
        if (url) this.#apiUrl = url.replace(/\/+$/, "");
      }
      throw new DaemonNotRunningError(error);
    }
  }

  #withToken(init: RequestInit): RequestInit {
    if (this.#token === undefined) return init;
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.#token}`);
    return { ...init, headers };
  }

  #send(
    method: string,
    path: string,
    body?: unknown,
    options: { signal?: AbortSignal } = {},
  ): Promise<Response> {
    return this.#fetch(path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: options.signal,
    });
  }

  async #request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Record<string, unknown>> {
    return await parsed(await this.#send(method, path, body));
  }
}

/** The JSON body of a successful answer; an error answer is thrown as a {@link MailRequestError}. */
async function parsed(response: Response): Promise<Record<string, unknown>> {
  if (!response.ok) throw await requestError(response);
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { error: `HTTP ${response.status}: ${text.slice(0, 200)}` };
  }
}

async function requestError(response: Response): Promise<MailRequestError> {
  const text = await response.text();
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text);
  } catch {
    value = { error: `HTTP ${response.status}: ${text.slice(0, 200)}` };
  }
  return new MailRequestError(response.status, value);
}
