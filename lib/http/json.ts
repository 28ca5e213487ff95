/** The content type of every JSON answer the daemon gives. */
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

/**
 * A JSON response (`application/json`, newline-terminated) with the given
 * status and extra headers.
 *
 * @example
 * ```ts
 * return jsonResponse({ error: "not found: /x" }, 404);
 * ```
 */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": JSON_CONTENT_TYPE, ...headers },
  });
}

/** A 405 answer naming the methods that are allowed (and an `Allow` header). */
export function methodNotAllowed(method: string, allowed: string): Response {
  return jsonResponse(
    { error: `method ${method} not allowed here; use ${allowed}` },
    405,
    { allow: allowed },
  );
}
