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
 * A service hosted by the daemon (the mail service is one). The daemon calls
 * `start` after taking the instance lock and before binding its port,
 * offers every HTTP request that passed the guard chain (`lib/http`: Host,
 * Origin, throttle, API token, JSON-only) to `handle` first, merges
 * `health()` into `/health`, and calls `stop` during graceful shutdown after
 * the server stopped accepting requests and finished the ones in flight.
 */
export interface DaemonExtension {
  /** A short name for logs (`mail`). */
  readonly name: string;
  /** Prepares the service (recover journals, start timers). */
  start(context: ExtensionContext): Promise<void>;
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
   * Called before authentication, for every request: decide from the method
   * and URL alone, never from the body.
   */
  verifiesRequest?(request: Request, url: URL): boolean;
  /** Fields to add to `/health` (e.g. `{ metrics: {...} }`). */
  health(): Record<string, unknown>;
  /** Called once shutdown begins, before in-flight requests finish (e.g. answer 503 to new work). */
  draining?(): void;
  /** Flushes and stops (the daemon waits for it before exiting). */
  stop(): Promise<void>;
}
