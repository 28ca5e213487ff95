import { jsonResponse, methodNotAllowed } from "./json.ts";
import { checkOrigin, preflightResponse, withCors } from "./origin.ts";
import { type AuthThrottle, peerKey } from "./throttle.ts";

/** Whether a route needs the API token, or takes it when given (`/health`, signed webhooks). */
export type AuthRequirement = "required" | "optional";

/** What the guard chain hands the handler behind it with each request it lets through. */
export interface RequestContext {
  /** The request's URL, parsed once. */
  url: URL;
  /** The peer's address as throttling keys it (`127.0.0.1`; an IPv6 /64). */
  peer: string;
  /** Whether the request carried the valid API token. */
  authenticated: boolean;
  /**
   * Whether the token this request carried is still the API token (false
   * once it was rotated, or when it carried none). A long-lived response (an
   * event stream) asks it now and then, e.g. with each keep-alive, and ends
   * when it turns false: a rotation then also cuts streams opened before it.
   */
  stillAuthenticated: () => boolean;
}

/** A handler behind the guard chain. */
export type GuardedHandler = (request: Request, context: RequestContext) => Promise<Response>;

/** The part of `Deno.ServeHandlerInfo` the guard chain uses. */
export interface PeerInfo {
  /** Where the request came from. */
  remoteAddr: { hostname: string };
}

/** Options of {@link guardRequests}. */
export interface GuardOptions {
  /** Checks a presented token (a {@link LiveToken}). */
  token: { verify(presented: string): boolean };
  /** Where the token lives, for the 401 answer. */
  tokenFile: string;
  /** Whether a `Host` is one the daemon answers to (see `createHostCheck`). */
  hostAllowed: (host: string | null) => boolean;
  /** Web origins allowed to call the API (`config.json` `allowed_origins`). */
  allowedOrigins?: readonly string[];
  /** Brute-force protection (default: none). */
  throttle?: AuthThrottle;
  /** Whether a route needs the token (default: every route does). */
  authRequirement?: (request: Request, url: URL) => AuthRequirement;
  /** Called when a peer gets locked out (for the log: the peer and for how long). */
  onLockout?: (peer: string, seconds: number) => void;
}

/** Methods that change nothing and carry no body: exempt from the JSON-only rule. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Whether a `Content-Type` is JSON (`application/json`, parameters allowed). */
export function isJsonContentType(value: string | null): boolean {
  if (value === null) return false;
  const semicolon = value.indexOf(";");
  const type = (semicolon === -1 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  return type === "application/json";
}

/** The token of an `Authorization: Bearer <token>` header, or `null` for any other value. */
export function bearerToken(header: string): string | null {
  const match = /^bearer +(\S+) *$/i.exec(header);
  return match ? match[1] : null;
}

/**
 * Puts the one guard chain in front of `handler`. Every request passes, in
 * this order:
 *
 * 1. **Host** (DNS rebinding): a `Host` the daemon does not answer to → 421,
 *    before anything else runs.
 * 2. **Origin** (CSRF): a request from a web page whose origin is not allowed
 *    → 403; `OPTIONS` preflights succeed only for allowed origins, and only
 *    they ever get CORS headers.
 * 3. **Throttle**: a peer locked out after too many wrong tokens → 429 with
 *    `Retry-After`.
 * 4. **Token**: `Authorization: Bearer <token>`, compared in constant time →
 *    401 with `WWW-Authenticate: Bearer` when missing or wrong (a query
 *    string is never looked at). Routes whose requirement is `optional`
 *    pass without a token, but a token they are given must be right.
 * 5. **JSON only**: any method but GET/HEAD/OPTIONS without
 *    `Content-Type: application/json` → 415; forms and `text/plain` never
 *    reach a handler.
 *
 * The chain never reads a body, and passes the handler's response on as it
 * is (streams keep streaming).
 *
 * @example
 * ```ts
 * Deno.serve(guardRequests(app, { token, tokenFile, hostAllowed }));
 * ```
 */
export function guardRequests(
  handler: GuardedHandler,
  options: GuardOptions,
): (request: Request, info?: PeerInfo) => Promise<Response> {
  const allowedOrigins = new Set(options.allowedOrigins ?? []);
  const requirement = options.authRequirement ?? (() => "required" as const);
  return async (request, info) => {
    const host = request.headers.get("host");
    const url = new URL(request.url);
    if (!options.hostAllowed(host) || (url.host !== host && !options.hostAllowed(url.host))) {
      return misdirected(host === null ? null : url.host === host ? host : `${host}, ${url.host}`);
    }
    const origin = checkOrigin(request.headers, { allowedOrigins, host: host! });
    if (!origin.ok) return jsonResponse({ error: origin.reason }, 403);
    const cors = origin.cors;
    const finish = cors === null ? (r: Response) => r : (r: Response) => withCors(r, cors);
    if (request.method === "OPTIONS") {
      return cors === null
        ? methodNotAllowed("OPTIONS", "GET, HEAD, POST")
        : preflightResponse(cors, request);
    }
    const peer = peerKey(info?.remoteAddr.hostname ?? "unknown");
    const authorization = request.headers.get("authorization");
    let authenticated = false;
    let presented: string | null = null;
    if (authorization !== null || requirement(request, url) === "required") {
      const locked = options.throttle?.lockedFor(peer) ?? 0;
      if (locked > 0) return finish(tooManyAttempts(peer, locked));
      if (authorization === null) return finish(unauthorized(options.tokenFile, "missing"));
      presented = bearerToken(authorization);
      authenticated = presented !== null && options.token.verify(presented);
      if (!authenticated) {
        const lockedNow = options.throttle?.recordFailure(peer) ?? 0;
        if (lockedNow > 0) options.onLockout?.(peer, Math.ceil(lockedNow / 1000));
        return finish(unauthorized(options.tokenFile, "invalid"));
      }
    }
    if (
      !SAFE_METHODS.has(request.method) && !isJsonContentType(request.headers.get("content-type"))
    ) {
      return finish(unsupportedMediaType(request));
    }
    const stillAuthenticated = authenticated ? () => options.token.verify(presented!) : () => false;
    return finish(await handler(request, { url, peer, authenticated, stillAuthenticated }));
  };
}

function misdirected(host: string | null): Response {
  const named = host === null
    ? "a request without Host"
    : `Host ${JSON.stringify(host.slice(0, 200))}`;
  return jsonResponse(
    {
      error: `${named}: not a name this courier answers to ` +
        `(127.0.0.1, localhost, [::1], the host it listens on, config.json allowed_hosts)`,
    },
    421,
  );
}

function unauthorized(tokenFile: string, why: "missing" | "invalid"): Response {
  const what = why === "missing" ? "this request needs the API token" : "wrong API token";
  return jsonResponse(
    {
      error: `${what}: send "Authorization: Bearer <token>" (never in the URL); the token is ` +
        `in ${tokenFile}, and 'courier token' prints it`,
      token_file: tokenFile,
    },
    401,
    {
      "www-authenticate": why === "missing"
        ? 'Bearer realm="courier"'
        : 'Bearer realm="courier", error="invalid_token"',
    },
  );
}

function tooManyAttempts(peer: string, lockedMs: number): Response {
  const seconds = Math.ceil(lockedMs / 1000);
  return jsonResponse(
    {
      error: `too many wrong API tokens from ${peer}: refused for ${seconds} s more`,
      retry_after_s: seconds,
    },
    429,
    { "retry-after": String(seconds) },
  );
}

function unsupportedMediaType(request: Request): Response {
  const got = request.headers.get("content-type");
  return jsonResponse(
    {
      error: `${request.method} needs "Content-Type: application/json" (got ${
        got === null ? "none" : JSON.stringify(got.slice(0, 100))
      })`,
    },
    415,
  );
}
