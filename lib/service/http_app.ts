import { jsonResponse, methodNotAllowed } from "../http/mod.ts";
import type { DaemonExtension } from "./extension.ts";
import type { DaemonState } from "./state_file.ts";

/** What the daemon's HTTP handler needs to know. */
export interface AppContext {
  /** The daemon's state (host, port, home…), set once it is listening. */
  state: () => DaemonState | null;
  /** When the daemon started (`performance.now()` based). */
  startedAt: number;
  /** The hosted services, asked first for every request. */
  extensions: DaemonExtension[];
  /** Called when a request fails unexpectedly. */
  onError: (error: unknown) => void;
}

/**
 * Builds the daemon's request handler: hosted services first, then
 * `GET /health`, `GET /api/v1/status`, and a JSON 404 for anything else.
 */
export function createHandler(context: AppContext): (request: Request) => Promise<Response> {
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
  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    try {
      for (const extension of context.extensions) {
        const response = await extension.handle(request, url);
        if (response) return response;
      }
      if (url.pathname === "/health" || url.pathname === "/api/v1/status") {
        if (request.method !== "GET" && request.method !== "HEAD") {
          return methodNotAllowed(request.method, "GET, HEAD");
        }
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
}
