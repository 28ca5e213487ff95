import { CourierError } from "../errors/mod.ts";
import type { HomeLayout } from "../home/mod.ts";
import { readTokenFile } from "../http/token.ts";
import { readDaemonState } from "../service/state_file.ts";
import type { ClaimEntry } from "./claims.ts";
import type { MailListFilter, MailSummary, ReceiveResult } from "./service.ts";

/** No daemon answers for this home. */
export class DaemonNotRunningError extends CourierError {
  /**
   * Creates a `DaemonNotRunningError`.
   *
   * @param cause Why we think so (no state file, connection refused).
   */
  constructor(cause?: unknown) {
    super("Courier is not running; start it with 'courier start'", { cause });
    this.name = "DaemonNotRunningError";
  }
}

/** The daemon answered a mail request with an error. */
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
    super(`${String(body.error ?? `HTTP ${status}`)}${field}`);
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

/**
 * A thin client of the mail HTTP API (what `courier mail …` uses). It sends
 * the API token with every request.
 *
 * @example
 * ```ts
 * const client = await MailClient.connect(homeLayout(resolveHome()));
 * console.log(await client.list({ status: "new" }));
 * ```
 */
export class MailClient {
  /** The daemon's base URL (`http://127.0.0.1:8644`). */
  readonly apiUrl: string;
  readonly #token: string | undefined;

  /**
   * Creates a `MailClient`.
   *
   * @param apiUrl The daemon's base URL.
   * @param options `token`: the API token (`<home>/run/api.token`).
   */
  constructor(apiUrl: string, options: { token?: string } = {}) {
    this.apiUrl = apiUrl.replace(/\/+$/, "");
    this.#token = options.token;
  }

  /**
   * A client of the daemon running in `layout`'s home, with the home's API token.
   *
   * @throws {DaemonNotRunningError} when no daemon state is recorded.
   * @throws {TokenFileError} when the API token cannot be read (exit code 3).
   */
  static async connect(layout: HomeLayout): Promise<MailClient> {
    const url = await readDaemonApiUrl(layout);
    if (!url) throw new DaemonNotRunningError();
    return new MailClient(url, { token: await readTokenFile(layout.tokenFile) });
  }

  /** Lists mails. */
  async list(filter: MailListFilter = {}): Promise<MailSummary[]> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) {
      if (value !== undefined) query.set(key, String(value));
    }
    const suffix = query.size > 0 ? `?${query}` : "";
    const result = await this.#request("GET", `/api/v1/messages${suffix}`);
    return result.messages as MailSummary[];
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

  async #request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Record<string, unknown>> {
    let response: Response;
    try {
      const headers: Record<string, string> = {};
      if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
      if (method !== "GET") headers["content-type"] = "application/json";
      response = await fetch(this.apiUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new DaemonNotRunningError(error);
    }
    const text = await response.text();
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(text);
    } catch {
      value = { error: `HTTP ${response.status}: ${text.slice(0, 200)}` };
    }
    if (!response.ok) throw new MailRequestError(response.status, value);
    return value;
  }
}
