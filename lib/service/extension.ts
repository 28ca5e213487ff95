import type { HomeLayout } from "../home/mod.ts";
import type { RequestContext } from "../http/mod.ts";
import type { Logger } from "../log/mod.ts";

/** What the daemon hands a service that runs inside it. */
export interface ExtensionContext {
  /** The home's paths. */
  layout: HomeLayout;
  /** The daemon's log. */
  log: Logger;
  /** Options given on `start` that the daemon passes through (`--debounce-window`…). */
  options: Record<string, string | number | boolean | undefined>;
}

/**
 * A service hosted by the daemon (the mail service is one; the chat-platform
 * connections are others). The daemon signals ready as soon as it serves, and
 * the services load and start after that, so `courier start` never waits for
 * a mailbox to be indexed or a platform to answer. In the daemon's order:
 *
 * 1. `prepare` (optional): after the instance lock is taken and before the
 *    port is bound. Cheap checks only, such as reading and validating the
 *    service's settings in `config.json`, so that a bad configuration still
 *    refuses the start at once (`courier start` exits 1 with the reason).
 *    It must not import heavy modules or touch the network: the daemon is
 *    not ready until every `prepare` has returned.
 * 2. `start`: after the daemon signalled ready, one service after the other.
 *    Load what the service needs (`importLazily`), recover its state,
 *    connect. Requests for its routes (`owns`) that arrive meanwhile wait
 *    for it (a few seconds at most, then 503 with `Retry-After`); `/health`
 *    answers at once and reports the service `starting`. A `start` that
 *    throws leaves the daemon serving: the error is logged, reported in
 *    `/health`, and the service's routes answer 503 naming it.
 * 3. `handle`: every HTTP request that passed the guard chain (`lib/http`:
 *    Host, Origin, throttle, API token, JSON-only), once started, is offered
 *    to the services first; `health()` is merged into `/health`.
 * 4. `draining`, then `stop`: during graceful shutdown, `stop` after the
 *    server stopped accepting and finished the requests in flight (and
 *    after `start` settled; never for a service that did not start).
 */
export interface DaemonExtension {
  /** A short name for logs and `/health` (`mail`). */
  readonly name: string;
  /** Cheap checks before the daemon binds (validate settings); throwing refuses the start. */
  prepare?(context: ExtensionContext): Promise<void>;
  /** Loads and starts the service, after the daemon signalled ready. */
  start(context: ExtensionContext): Promise<void>;
  /**
   * Whether a request for `url` is this service's, decided from the URL
   * alone: such requests wait for `start`. Without it, every request but
   * the daemon's own routes (`/health`, `/api/v1/status`) does.
   */
  owns?(url: URL): boolean;
  /**
   * Answers a request, or returns `null` to let the daemon answer it.
   * `context.authenticated` says whether it carried the API token (always
   * true unless {@link DaemonExtension.verifiesRequest} claimed it).
   */
  handle(request: Request, url: URL, context: RequestContext): Promise<Response | null>;
  /**
   * Whether this service verifies `request` itself, as a chat platform's
   * signed webhook is verified: then the route does not demand the API token
   * (a right one is still accepted, a wrong one still refused, and the Host,
   * Origin, throttle and JSON-only guards still apply), and `handle` must
   * verify the request before it parses it unless `context.authenticated`.
   * Called before authentication, for every request, also before `start`
   * (after `prepare`): decide from the method and URL alone, never from the
   * body.
   */
  verifiesRequest?(request: Request, url: URL): boolean;
  /** Fields to add to `/health` (e.g. `{ metrics: {...} }`). */
  health(): Record<string, unknown>;
  /** Called once shutdown begins, before in-flight requests finish (e.g. answer 503 to new work). */
  draining?(): void;
  /** Flushes and stops (the daemon waits for it before exiting). */
  stop(): Promise<void>;
}
