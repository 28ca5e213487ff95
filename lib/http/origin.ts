/**
 * The CSRF guard: browsers say where a request comes from (`Origin`,
 * `Sec-Fetch-Site`); requests from web pages are refused unless their origin
 * is listed, and only listed origins ever get CORS headers.
 *
 * @module
 */

/** What {@link checkOrigin} decided. */
export type OriginVerdict =
  /** Not from a foreign page; `cors` is the allowed origin to answer with CORS headers, if any. */
  | { ok: true; cors: string | null }
  /** From a web page whose origin is not allowed: refuse with 403. */
  | { ok: false; reason: string };

/** Methods a listed origin may use, and headers it may send. */
const CORS_METHODS = "GET, HEAD, POST";
const CORS_HEADERS = "authorization, content-type, last-event-id";

/**
 * Checks where a request comes from. A request with an `Origin` passes only
 * when the origin is listed in `allowedOrigins` or is the daemon's own
 * (`http://<Host>`); one without `Origin` passes unless the browser marks it
 * `Sec-Fetch-Site: cross-site` or `same-site` (another port or subdomain is
 * another origin). Clients that are not browsers (curl, courier itself) send
 * neither header.
 */
export function checkOrigin(
  headers: Headers,
  options: { allowedOrigins: ReadonlySet<string>; host: string },
): OriginVerdict {
  const origin = headers.get("origin");
  if (origin !== null) {
    if (options.allowedOrigins.has(origin)) return { ok: true, cors: origin };
    if (origin.toLowerCase() === `http://${options.host.toLowerCase()}`) {
      return { ok: true, cors: null };
    }
    return {
      ok: false,
      reason: `requests from the web page origin ${
        JSON.stringify(origin.slice(0, 200))
      } are refused; list it in config.json allowed_origins if it is yours`,
    };
  }
  const site = headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") {
    return {
      ok: false,
      reason: `requests from other web sites (Sec-Fetch-Site: ${site.slice(0, 40)}) are refused`,
    };
  }
  return { ok: true, cors: null };
}

/** The answer to a CORS preflight (`OPTIONS`) from an allowed origin. */
export function preflightResponse(origin: string, request: Request): Response {
  const headers = new Headers({
    "access-control-allow-origin": origin,
    "access-control-allow-methods": CORS_METHODS,
    "access-control-allow-headers": CORS_HEADERS,
    "access-control-max-age": "600",
    vary: "Origin",
  });
  if (request.headers.get("access-control-request-private-network") === "true") {
    headers.set("access-control-allow-private-network", "true");
  }
  return new Response(null, { status: 204, headers });
}

/**
 * Adds the CORS headers for an allowed origin to `response`. Its body is
 * passed on as it is, never read (an event stream keeps streaming).
 */
export function withCors(response: Response, origin: string): Response {
  let target = response;
  try {
    target.headers.set("access-control-allow-origin", origin);
  } catch {
    // Immutable headers (a fetched response): copy them, keep the body stream.
    target = new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers: new Headers(response.headers),
    });
    target.headers.set("access-control-allow-origin", origin);
  }
  target.headers.set("access-control-expose-headers", "retry-after, www-authenticate");
  target.headers.append("vary", "Origin");
  return target;
}
