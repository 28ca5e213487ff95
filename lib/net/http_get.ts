/** What {@link httpGet} got back. */
export interface HttpAnswer {
  /** The status code. */
  status: number;
  /** The response headers, by lowercase name (repeated ones joined with `, `). */
  headers: Record<string, string>;
  /** The body, decoded as UTF-8. */
  body: string;
}

/** Options of {@link httpGet}. */
export interface HttpGetOptions {
  /** Extra request headers (`authorization`…). */
  headers?: Record<string, string>;
  /** Time allowed for connecting and the whole answer (default 2000 ms). */
  timeoutMs?: number;
  /** Largest answer accepted, headers included (default 4 MiB). */
  maxBytes?: number;
}

const CRLF2 = new Uint8Array([13, 10, 13, 10]);

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Decodes a `Transfer-Encoding: chunked` body; `null` while its last chunk has not come. */
function dechunk(data: Uint8Array): Uint8Array | null {
  const parts: Uint8Array[] = [];
  let at = 0;
  while (true) {
    const lineEnd = indexOf(data, CRLF2.subarray(0, 2), at);
    if (lineEnd === -1) return null;
    const size = parseInt(new TextDecoder().decode(data.subarray(at, lineEnd)).split(";")[0], 16);
    if (!Number.isFinite(size)) throw new Error("bad chunk size in chunked body");
    if (size === 0) break;
    const start = lineEnd + 2;
    if (start + size + 2 > data.length) return null;
    parts.push(data.subarray(start, start + size));
    at = start + size + 2;
  }
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    body.set(part, offset);
    offset += part.length;
  }
  return body;
}

/**
 * Parses an HTTP/1.1 response from what has been read so far: `null` while
 * it is incomplete, unless the connection has `ended` (then it is an error).
 */
function parseResponse(data: Uint8Array, ended: boolean): HttpAnswer | null {
  const incomplete = (what: string) => {
    if (ended) throw new Error(`the connection closed before the response ${what} ended`);
    return null;
  };
  const headEnd = indexOf(data, CRLF2);
  if (headEnd === -1) return incomplete("headers");
  const [statusLine, ...lines] = new TextDecoder().decode(data.subarray(0, headEnd)).split("\r\n");
  const match = statusLine.match(/^HTTP\/1\.[01] (\d{3})/);
  if (!match) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine.slice(0, 40))}`);
  // A plain record, not Headers: that class is loaded on first use, for a CLI call to pay.
  const headers: Record<string, string> = Object.create(null);
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  let body: Uint8Array | null = data.subarray(headEnd + 4);
  if (/\bchunked\b/i.test(headers["transfer-encoding"] ?? "")) {
    // Decoded once its last chunk (no trailers) has come: not again after every read.
    const tail = new TextDecoder().decode(body.subarray(Math.max(0, body.length - 5)));
    if (!ended && tail !== "0\r\n\r\n") return null;
    body = dechunk(body);
    if (body === null) return incomplete("body");
  } else if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    if (!Number.isInteger(length) || length < 0) throw new Error("bad Content-Length");
    if (length > body.length) return incomplete("body");
    body = body.subarray(0, length);
  } else if (!ended) {
    return null; // the body ends with the connection
  }
  return { status: Number(match[1]), headers, body: new TextDecoder().decode(body) };
}

/**
 * `GET url` over HTTP/1.1 on a plain TCP connection (`Connection: close`),
 * for asking a local daemon, as `status` asks `/health`: the first `fetch`
 * loads its client (and Node's timers, for its deadline), which costs a
 * short-lived CLI process 10 to 20 ms; this costs a connection. `http:`
 * URLs only.
 *
 * @example
 * ```ts
 * const answer = await httpGet("http://127.0.0.1:8644/health", { timeoutMs: 1000 });
 * if (answer.status === 200) console.log(JSON.parse(answer.body));
 * ```
 *
 * @throws {Error} when the URL is not `http:`, the connection fails, the
 * answer is not HTTP, or the time runs out.
 */
export async function httpGet(
  url: string | URL,
  options: HttpGetOptions = {},
): Promise<HttpAnswer> {
  const target = new URL(url);
  if (target.protocol !== "http:") {
    throw new Error(`httpGet speaks http: only, not ${target.protocol}`);
  }
  const timeoutMs = options.timeoutMs ?? 2000;
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  // At the deadline: abort a connect under way, or close the connection, which ends a write
  // or read under way. (AbortSignal.timeout, not setTimeout: in Deno 2 the first setTimeout
  // loads Node's timers, some 40 modules, which a CLI call like `status` must not pay.)
  const signal = AbortSignal.timeout(timeoutMs);
  let conn: Deno.TcpConn | null = null;
  const onDeadline = () => {
    try {
      conn?.close();
    } catch {
      // already closed
    }
  };
  signal.addEventListener("abort", onDeadline, { once: true });
  try {
    conn = await Deno.connect({
      hostname: target.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: Number(target.port || 80),
      signal,
    });
    const head = [
      `GET ${target.pathname}${target.search} HTTP/1.1`,
      `Host: ${target.host}`,
      "Connection: close",
      "Accept: application/json",
      ...Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
      "",
      "",
    ].join("\r\n");
    const request = new TextEncoder().encode(head);
    for (let written = 0; written < request.length;) {
      written += await conn.write(request.subarray(written));
    }
    // Read until the answer is complete (by its length or last chunk), or the server closes.
    let store = new Uint8Array(16 * 1024);
    let length = 0;
    while (true) {
      if (length === store.length) { // full: double it (an answer is usually one read)
        const grown = new Uint8Array(store.length * 2);
        grown.set(store);
        store = grown;
      }
      const n = await conn.read(store.subarray(length));
      if (n !== null) {
        length += n;
        if (length > maxBytes) throw new Error(`the answer is larger than ${maxBytes} bytes`);
      }
      const answer = parseResponse(store.subarray(0, length), n === null);
      if (answer) return answer;
    }
  } catch (error) {
    if (signal.aborted) throw new Error(`no answer within ${timeoutMs} ms`);
    throw error;
  } finally {
    signal.removeEventListener("abort", onDeadline);
    if (!signal.aborted) conn?.close();
  }
}
