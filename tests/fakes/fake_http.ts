/**
 * What the fake chat platforms share: an HTTP server on a leased loopback
 * port that records every request, answers injected replies first (429s,
 * platform errors), and lets a test wait for a condition.
 */
import { leaseTestPort, releaseTestPort } from "../helpers/ports.ts";

/** A request the fake received. */
export interface RecordedRequest {
  /** HTTP method. */
  method: string;
  /** Path, without the query. */
  path: string;
  /** Query parameters. */
  query: URLSearchParams;
  /** Request headers. */
  headers: Headers;
  /** The body parsed as JSON (`null` when empty or not JSON). */
  body: Record<string, unknown> | null;
  /** When it arrived (ms since the epoch). */
  at: number;
}

/** A reply a test injects for the next requests to a path. */
export interface InjectedReply {
  /** HTTP status. */
  status: number;
  /** JSON body. */
  body?: unknown;
  /** Extra headers (`retry-after`, `x-ogw-ratelimit-reset`). */
  headers?: Record<string, string>;
}

/** Answers a recorded request (the platform's own behaviour). */
export type FakeHandler = (
  request: RecordedRequest,
  original: Request,
) => Response | Promise<Response>;

/** A JSON answer. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The HTTP side of a fake platform. */
export class FakeHttp {
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string;
  readonly #server: Deno.HttpServer;
  readonly #port: number;
  readonly #injected = new Map<string, InjectedReply[]>();
  readonly #waiters = new Set<() => void>();

  private constructor(port: number, handler: FakeHandler) {
    this.#port = port;
    this.origin = `http://127.0.0.1:${port}`;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port, onListen() {} },
      (request) => this.#serve(request, handler),
    );
  }

  /** Starts a fake on a leased port. */
  static async start(handler: FakeHandler): Promise<FakeHttp> {
    return new FakeHttp(await leaseTestPort(), handler);
  }

  /** Makes the next `times` requests to `path` get `reply` instead of the platform's answer. */
  inject(path: string, reply: InjectedReply, times = 1): void {
    const queue = this.#injected.get(path) ?? [];
    for (let i = 0; i < times; i++) queue.push(reply);
    this.#injected.set(path, queue);
  }

  /** The requests to `path`. */
  requestsTo(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Wakes {@link until} waiters (after a state change the fake made). */
  notify(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /**
   * Resolves once `check()` holds (checked now and after every change);
   * rejects after 20 s so that a broken test fails instead of hanging.
   */
  until(check: () => boolean, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const timer = setTimeout(() => {
      this.#waiters.delete(wake);
      reject(new Error(`the fake never saw: ${what}`));
    }, 20_000);
    const wake = () => {
      if (!check()) return;
      clearTimeout(timer);
      this.#waiters.delete(wake);
      resolve();
    };
    this.#waiters.add(wake);
    return promise;
  }

  /** Stops the server and gives its port back. */
  async close(): Promise<void> {
    await this.#server.shutdown();
    await releaseTestPort(this.#port);
  }

  async #serve(request: Request, handler: FakeHandler): Promise<Response> {
    const url = new URL(request.url);
    let body: Record<string, unknown> | null = null;
    if (request.method !== "GET") {
      try {
        body = JSON.parse(await request.text());
      } catch {
        body = null;
      }
    }
    const recorded: RecordedRequest = {
      method: request.method,
      path: url.pathname,
      query: url.searchParams,
      headers: request.headers,
      body,
      at: Date.now(),
    };
    if (request.headers.get("upgrade") !== "websocket") this.requests.push(recorded);
    try {
      const injected = this.#injected.get(url.pathname)?.shift();
      if (injected) return json(injected.body ?? {}, injected.status, injected.headers);
      return await handler(recorded, request);
    } finally {
      this.notify();
    }
  }
}
