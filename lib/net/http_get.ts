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

/** Decodes a `Transfer-Encoding: chunked` body. */
function dechunk(data: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  while (at < data.length) {
    const lineEnd = indexOf(data, CRLF2.subarray(0, 2), at);
    if (lineEnd === -1) throw new Error("truncated chunked body");
    const size = parseInt(new TextDecoder().decode(data.subarray(at, lineEnd)).split(";")[0], 16);
    if (!Number.isFinite(size)) throw new Error("bad chunk size in chunked body");
    if (size === 0) break;
    const start = lineEnd + 2;
    if (start + size > data.length) throw new Error("truncated chunked body");
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

/** Parses one HTTP/1.1 response read to its end. */
function parseResponse(data: Uint8Array): HttpAnswer {
  const headEnd = indexOf(data, CRLF2);
  if (headEnd === -1) throw new Error("the connection closed before the response headers ended");
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
  let body = data.subarray(headEnd + 4);
  if (/\bchunked\b/i.test(headers["transfer-encoding"] ?? "")) {
    body = dechunk(body);
  } else if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    if (!Number.isInteger(length) || length > body.length) {
      throw new Error("the connection closed before the response body ended");
    }
    body = body.subarray(0, length);
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
    const chunks: Uint8Array[] = [];
    let total = 0;
    const buffer = new Uint8Array(16 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      total += n;
      if (total > maxBytes) throw new Error(`the answer is larger than ${maxBytes} bytes`);
      chunks.push(buffer.slice(0, n));
    }
    const data = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      data.set(chunk, offset);
      offset += chunk.length;
    }
    return parseResponse(data);
  } catch (error) {
    if (signal.aborted) throw new Error(`no answer within ${timeoutMs} ms`);
    throw error;
  } finally {
    signal.removeEventListener("abort", onDeadline);
    if (!signal.aborted) conn?.close();
  }
}
