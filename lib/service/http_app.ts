import {
  type GuardOptions,
  guardRequests,
  jsonResponse,
  methodNotAllowed,
  type PeerInfo,
  type RequestContext,
} from "../http/mod.ts";
import type { DaemonExtension } from "./extension.ts";
import type { DaemonState } from "./state_file.ts";

/** What the daemon's HTTP handler needs to know. */
export interface AppContext {
  /** The daemon's state (host, port, home…), set once it is listening. */
  state: () => DaemonState | null;
  /** When the daemon started (`performance.now()` based). */
  startedAt: number;
  /** The hosted services, asked first for every request that passed the guards. */
  extensions: DaemonExtension[];
  /** Called when a request fails unexpectedly. */
  onError: (error: unknown) => void;
  /** The guard chain's token, hosts, origins and throttle (see `prepareApiGuard`). */
  guard: Omit<GuardOptions, "authRequirement">;
}

/**
 * Builds the daemon's request handler: the guard chain (`lib/http`
 * `guardRequests`) in front of everything, then the hosted services, then
 * `GET /health`, `GET /api/v1/status`, and a JSON 404 for anything else.
 *
 * Every route needs the API token except `/health` (without the token it
 * answers only `status`, `version`, `pid`, `uptime_s`) and the requests a
 * hosted service says it verifies itself (`DaemonExtension.verifiesRequest`).
 */
export function createHandler(
  context: AppContext,
): (request: Request, info?: PeerInfo) => Promise<Response> {
  const base = () => {
    const state = context.state();
    return {
      status: "healthy",
      version: state?.version,
      pid: Deno.pid,
      uptime_s: Math.round((performance.now() - context.startedAt) / 100) / 10,
    };
  };
  const extra = () => Object.assign({}, ...context.extensions.map((e) => e.health()));
  const app = async (request: Request, ctx: RequestContext): Promise<Response> => {
    const url = ctx.url;
    try {
      for (const extension of context.extensions) {
        const response = await extension.handle(request, url, ctx);
        if (response) return response;
      }
      if (url.pathname === "/health" || url.pathname === "/api/v1/status") {
        if (request.method !== "GET" && request.method !== "HEAD") {
          return methodNotAllowed(request.method, "GET, HEAD");
        }
        if (!ctx.authenticated) return jsonResponse(base());
        if (url.pathname === "/health") return jsonResponse({ ...base(), ...extra() });
        const state = context.state();
        return jsonResponse({
          ...base(),
          host: state?.host,
          port: state?.port,
          api_url: state?.api_url,
          home: state?.home,
          started_at: state?.started_at,
          ...extra(),
        });
      }
      return jsonResponse({ error: `not found: ${url.pathname}` }, 404);
    } catch (error) {
      context.onError(error);
      return jsonResponse({ error: "internal error" }, 500);
    }
  };
  return guardRequests(app, {
    ...context.guard,
    authRequirement: (request, url) =>
      url.pathname === "/health" ||
        context.extensions.some((e) => e.verifiesRequest?.(request, url) ?? false)
        ? "optional"
        : "required",
  });
}
