/**
 * Requests as attackers and browsers send them: HTTP/1.1 over a raw TCP
 * socket, for what `fetch` will not send (a forged `Host`, none at all, an
 * absolute request URI; loopback only), and a browser's CORS preflight.
 */

/** The `OPTIONS` preflight a browser sends before a cross-origin GET with a token. */
export function preflightInit(origin: string): RequestInit {
  return {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "GET",
      "access-control-request-headers": "authorization",
    },
  };
}

/** An answer as read off the socket. */
export interface RawResponse {
  /** The status code. */
  status: number;
  /** The response headers. */
  headers: Headers;
  /** The body as text. */
  body: string;
}

/** One request to send as it is written. */
export interface RawRequest {
  /** Method (default GET). */
  method?: string;
  /** The request target (`/health`, or an absolute URI). */
  target: string;
  /** Headers; `host` defaults to `127.0.0.1:<port>`, `null` leaves it out. */
  headers?: Record<string, string | null>;
  /** The body (a `content-length` is added). */
  body?: string;
  /** The protocol version (default `HTTP/1.1`). */
  version?: string;
}

/** Sends `request` to `127.0.0.1:port` on a fresh connection and reads the whole answer. */
export async function rawHttp(port: number, request: RawRequest): Promise<RawResponse> {
  const headers: Record<string, string | null> = {
    host: `127.0.0.1:${port}`,
    connection: "close",
    ...request.headers,
  };
  const body = new TextEncoder().encode(request.body ?? "");
  if (request.body !== undefined) headers["content-length"] = String(body.length);
  const head = [`${request.method ?? "GET"} ${request.target} ${request.version ?? "HTTP/1.1"}`];
  for (const [name, value] of Object.entries(headers)) {
    if (value !== null) head.push(`${name}: ${value}`);
  }
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = new TextEncoder().encode(head.join("\r\n") + "\r\n\r\n");
    const all = new Uint8Array(bytes.length + body.length);
    all.set(bytes);
    all.set(body, bytes.length);
    let written = 0;
    while (written < all.length) written += await conn.write(all.subarray(written));
    const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
    const [top, ...rest] = text.split("\r\n\r\n");
    const [statusLine, ...lines] = top.split("\r\n");
    const parsed = new Headers();
    for (const line of lines) {
      const colon = line.indexOf(":");
      parsed.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    return {
      status: Number(statusLine.split(" ")[1]),
      headers: parsed,
      body: rest.join("\r\n\r\n"),
    };
  } catch (error) {
    try {
      conn.close();
    } catch {
      // closed by reading it to the end
    }
    throw error;
  }
}
