/**
 * The daemon's HTTP server: the runtime's HTTP implementation, on
 * connections this module accepts itself, so that it decides how many are
 * open at once, closes the ones that idle, and survives accept errors such
 * as running out of file descriptors.
 *
 * @module
 */
import { Notices, type ServerLog } from "./http_notices.ts";
import {
  closeConnection,
  runtimeServeOnConnection,
  type ServeOnConnection,
} from "./http_runtime.ts";

export type { ServerLog };

/** How many connections the server keeps, and for how long. */
export interface ConnectionLimits {
  /**
   * Most connections open at once. At the limit the connection that has
   * idled longest is closed to admit a new one; when every connection has a
   * request in flight, new ones wait in the kernel's listen queue.
   * `Infinity`: no limit, and the runtime's own accept loop serves (see
   * {@link serveHttp}).
   */
  maxConnections: number;
  /** A connection with no request in flight is closed after this long (ms). */
  idleTimeoutMs: number;
  /** A new connection must deliver its first request's headers within this (ms). */
  headerTimeoutMs: number;
}

/** The defaults of {@link ConnectionLimits}. */
export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  maxConnections: 512,
  idleTimeoutMs: 60_000,
  headerTimeoutMs: 20_000,
});

/** Options of {@link serveHttp}. */
export interface ServeHttpOptions {
  /** The address to listen on. */
  hostname: string;
  /** The port to listen on. */
  port: number;
  /** Answers each request (`info.remoteAddr` names the client). */
  handler: Deno.ServeHandler<Deno.NetAddr>;
  /** Answers when `handler` throws (default: a bare 500). */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Connection limits (defaults: {@link DEFAULT_CONNECTION_LIMITS}). */
  limits?: Partial<ConnectionLimits>;
  /** On shutdown, how long requests in flight may take before their connections are closed. */
  drainTimeoutMs?: number;
  /** Where limits reached, connections closed and accept errors are reported (rate-limited). */
  log?: ServerLog;
}

/** Counts of a {@link CourierHttpServer}'s connections. */
export interface ConnectionStats {
  /** Connections open now. */
  open: number;
  /** Of those, connections with a request in flight. */
  busy: number;
  /** The limit in force (`Infinity`: none). */
  limit: number;
  /** Connections closed since start because they idled past a timeout. */
  timed_out: number;
  /** Idle connections closed since start to admit new ones at the limit. */
  evicted: number;
  /** Accept errors since start (each retried). */
  accept_errors: number;
}

/** A running server. */
export interface CourierHttpServer {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Its connection counts. */
  stats(): ConnectionStats;
  /**
   * Stops accepting, closes idle connections, lets requests in flight
   * finish (their connections close once answered) for up to the drain
   * timeout, then closes what is left.
   */
  shutdown(): Promise<void>;
}

/**
 * Whether {@link serveHttp} can enforce connection limits in this runtime
 * (it can in Deno 2.9; elsewhere it falls back to `Deno.serve`).
 */
export function connectionLimitsSupported(): boolean {
  return runtimeServeOnConnection() !== null;
}

/** One open connection. */
interface Connection {
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  readonly abort: AbortController;
  readonly remote: string;
  /** Requests in flight. */
  busy: number;
  /** Requests seen. */
  requests: number;
  /**
   * When it was accepted, or last became idle (`performance.now()`); `null`
   * for "just now": stamped by the next sweep, so that answering a request
   * costs no clock reading (an idle timeout may then run up to a second late).
   */
  idleSince: number | null;
  /** Orders idle connections by when they became idle, for closing the longest-idle first. */
  idleOrder: number;
}

const SWEEP_INTERVAL_MS = 1000;
const ACCEPT_BACKOFF_MAX_MS = 1000;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function address(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/**
 * Serves HTTP on `hostname:port` within connection limits.
 *
 * It listens with `Deno.listen` and accepts connections itself, handing
 * each to the runtime's HTTP server for one connection (the code
 * `Deno.serve` runs per connection), so requests and streaming responses
 * behave exactly as under `Deno.serve`. What it adds:
 *
 * - at most `maxConnections` open at once: at the limit the longest-idle
 *   connection (no request in flight) is closed to admit the new one; if
 *   every connection is busy, new ones wait in the kernel's listen queue;
 * - a connection with no request in flight is closed after the idle
 *   timeout, and one that has not delivered a first request after the
 *   header timeout;
 * - an accept error (out of file descriptors, `EMFILE`/`ENFILE`, or any
 *   other) never ends the server: it is logged, an idle connection is
 *   closed to free a descriptor, and accepting resumes after a backoff
 *   (5 ms doubling to 1 s).
 *
 * With `maxConnections: Infinity`, or where the runtime lacks the
 * per-connection server, it is plain `Deno.serve`: no limits, and an accept
 * error rejects its `finished` promise, which (unhandled) ends the process.
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken (as `Deno.listen`).
 */
export function serveHttp(options: ServeHttpOptions): CourierHttpServer {
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
  const onError = options.onError ??
    ((error: unknown) => {
      options.log?.error(`request failed: ${errorText(error)}`);
      return new Response("Internal Server Error", { status: 500 });
    });
  const serveOn = runtimeServeOnConnection();
  if (serveOn === null || limits.maxConnections === Infinity) {
    return runtimeServer(options, onError);
  }
  return new LimitedServer(options, { ...limits, onError, serveOn });
}

/** `Deno.serve` as it is, for `maxConnections: Infinity`. */
function runtimeServer(
  options: ServeHttpOptions,
  onError: (error: unknown) => Response | Promise<Response>,
): CourierHttpServer {
  const server = Deno.serve(
    { hostname: options.hostname, port: options.port, onListen() {}, onError },
    options.handler,
  );
  const limit = Infinity;
  return {
    addr: server.addr,
    stats: () => ({ open: 0, busy: 0, limit, timed_out: 0, evicted: 0, accept_errors: 0 }),
    shutdown: () => server.shutdown().catch(() => {}),
  };
}

class LimitedServer implements CourierHttpServer {
  readonly addr: Deno.NetAddr;
  readonly #listener: Deno.TcpListener;
  readonly #limits: ConnectionLimits;
  readonly #handler: Deno.ServeHandler<Deno.NetAddr>;
  readonly #onError: (error: unknown) => Response | Promise<Response>;
  readonly #serveOn: ServeOnConnection;
  readonly #drainTimeoutMs: number;
  readonly #log: ServerLog | undefined;
  readonly #notices: Notices;
  readonly #open = new Set<Connection>();
  readonly #finished = new Map<Connection, Promise<void>>();
  #sweeping = true;
  readonly #accepting: Promise<void>;
  #counts = { timed_out: 0, evicted: 0, accept_errors: 0 };
  /** Counts up as connections become idle (see `Connection.idleOrder`). */
  #idleOrder = 0;
  #closing = false;
  #shutdown: Promise<void> | null = null;
  /** Wakes the accept loop when a connection closes (or on shutdown). */
  #wake: (() => void) | null = null;

  constructor(
    options: ServeHttpOptions,
    settings: ConnectionLimits & {
      onError: (error: unknown) => Response | Promise<Response>;
      serveOn: ServeOnConnection;
    },
  ) {
    this.#listener = Deno.listen({ hostname: options.hostname, port: options.port });
    this.addr = this.#listener.addr;
    this.#limits = {
      maxConnections: Math.max(1, Math.floor(settings.maxConnections)),
      idleTimeoutMs: settings.idleTimeoutMs,
      headerTimeoutMs: settings.headerTimeoutMs,
    };
    this.#handler = options.handler;
    this.#onError = settings.onError;
    this.#serveOn = settings.serveOn;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? 5000;
    this.#log = options.log;
    this.#notices = new Notices(options.log);
    this.#scheduleSweep();
    this.#accepting = this.#acceptLoop();
  }

  /**
   * Closes idle connections every {@link SWEEP_INTERVAL_MS}. On an
   * AbortSignal.timeout, not setInterval: in Deno 2 the first timer loads
   * Node's timers (some 40 modules), which the daemon would pay before it is
   * ready; and it keeps nothing alive.
   */
  #scheduleSweep(): void {
    AbortSignal.timeout(SWEEP_INTERVAL_MS).addEventListener("abort", () => {
      if (!this.#sweeping) return;
      this.#closeIdle();
      this.#scheduleSweep();
    }, { once: true });
  }

  stats(): ConnectionStats {
    let busy = 0;
    for (const connection of this.#open) if (connection.busy > 0) busy++;
    return { open: this.#open.size, busy, limit: this.#limits.maxConnections, ...this.#counts };
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= this.#drain();
    return this.#shutdown;
  }

  async #acceptLoop(): Promise<void> {
    let backoff = 0;
    while (!this.#closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing) break;
        this.#counts.accept_errors++;
        // Out of descriptors: an idle connection's is the one to give up.
        const freed = this.#evictIdle();
        backoff = Math.min(Math.max(backoff * 2, 5), ACCEPT_BACKOFF_MAX_MS);
        this.#notices.note(
          "accepting a connection failed",
          "error",
          `accepting a connection failed: ${errorText(error)} (${this.#open.size} open); ` +
            `${freed ? "closed the longest-idle connection, " : ""}retrying in ${backoff} ms`,
        );
        await new Promise((resolve) => setTimeout(resolve, backoff));
        continue;
      }
      backoff = 0;
      // At the limit, the new connection takes the place of the longest-idle one; when
      // every connection has a request in flight it waits (and the ones after it wait
      // in the kernel's listen queue) until one closes.
      while (
        !this.#closing && this.#open.size >= this.#limits.maxConnections &&
        !this.#evictIdle(true)
      ) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = null;
      }
      if (this.#closing) {
        conn.close();
        break;
      }
      this.#serve(conn);
    }
  }

  #serve(conn: Deno.TcpConn): void {
    const abort = new AbortController();
    let connection: Connection | null = null;
    // Once per connection, not per request: the per-request cost stays a counter and a callback.
    const done = () => {
      const c = connection!;
      if (--c.busy > 0) return;
      c.idleSince = null;
      c.idleOrder = ++this.#idleOrder;
      // Shutting down: answered, so close it (once the runtime is done with it).
      if (this.#closing) setTimeout(() => closeConnection(c), 0);
      // A connection waiting for a place may take this one's.
      this.#wake?.();
    };
    const handler: Deno.ServeHandler<Deno.NetAddr> = (request, info) => {
      const c = connection!;
      // Busy until answered (no clock needed: a busy connection is never closed for idling).
      c.busy++;
      c.requests++;
      info.completed.then(done, done);
      return this.#handler(request, info);
    };
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = this.#serveOn(conn, abort.signal, handler, this.#onError, () => {});
    } catch (error) {
      this.#notices.note(
        "serving a connection failed",
        "error",
        `serving a connection failed: ${errorText(error)}`,
      );
      try {
        conn.close();
      } catch {
        // already closed
      }
      return;
    }
    connection = {
      server,
      abort,
      remote: address(conn.remoteAddr),
      busy: 0,
      requests: 0,
      idleSince: performance.now(),
      idleOrder: ++this.#idleOrder,
    };
    const c = connection;
    this.#open.add(c);
    // A connection's errors (a reset, a malformed request) end that connection only.
    const finished = server.finished.catch(() => {}).finally(() => {
      this.#open.delete(c);
      this.#finished.delete(c);
      this.#wake?.();
    });
    this.#finished.set(c, finished);
  }

  /**
   * Closes the connection that has idled longest, to admit a new one at the
   * limit (or to free its descriptor after an accept error); `false` when
   * every connection is busy.
   */
  #evictIdle(forLimit = false): boolean {
    let oldest: Connection | null = null;
    for (const c of this.#open) {
      if (c.busy === 0 && !c.abort.signal.aborted && (!oldest || c.idleOrder < oldest.idleOrder)) {
        oldest = c;
      }
    }
    if (!oldest) return false;
    this.#counts.evicted++;
    if (forLimit) {
      const idle = oldest.idleSince === null ? 0 : performance.now() - oldest.idleSince;
      this.#notices.note(
        "connection limit reached",
        "warn",
        `connection limit reached (${this.#limits.maxConnections} open): closed the idle ` +
          `connection from ${oldest.remote} (idle ${Math.round(idle)} ms) to admit a new one; ` +
          `raise "max_connections" in config.json if this is real load`,
      );
    }
    closeConnection(oldest);
    // Its descriptor is freed as the runtime drops it; count it gone now.
    this.#open.delete(oldest);
    return true;
  }

  /** Closes connections that idled past their timeout. */
  #closeIdle(): void {
    const now = performance.now();
    for (const c of this.#open) {
      if (c.busy > 0 || c.abort.signal.aborted) continue;
      c.idleSince ??= now;
      const limit = c.requests === 0 ? this.#limits.headerTimeoutMs : this.#limits.idleTimeoutMs;
      if (now - c.idleSince < limit) continue;
      this.#counts.timed_out++;
      closeConnection(c);
      this.#open.delete(c);
    }
    this.#notices.flush();
  }

  async #drain(): Promise<void> {
    this.#closing = true;
    this.#sweeping = false;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    this.#wake?.();
    await this.#accepting;
    // Idle connections close now; busy ones as soon as they have answered (see #serve).
    for (const c of this.#open) if (c.busy === 0) closeConnection(c);
    const all = () => Promise.all(this.#finished.values());
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = await Promise.race([
      all().then(() => false),
      new Promise<boolean>((
        resolve,
      ) => (timer = setTimeout(() => resolve(true), this.#drainTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (late) {
      this.#log?.warn(
        `${this.#finished.size} connection(s) still had a request in flight ` +
          `${this.#drainTimeoutMs} ms after shutdown began: closed`,
      );
      for (const c of this.#finished.keys()) closeConnection(c);
      await all();
    }
    this.#notices.flush(true);
  }
}
