/**
 * The runtime's HTTP server for one accepted connection (what `Deno.serve`
 * runs per connection, reached through `Deno[Deno.internal]`: not part of
 * Deno's public API), and how to close such a connection safely. The one
 * place the daemon's HTTP server depends on the runtime's internals.
 *
 * @module
 */

/** The runtime's server for one accepted connection (not part of Deno's public API). */
export type ServeOnConnection = (
  connection: Deno.Conn,
  signal: AbortSignal,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: () => void,
) => Deno.HttpServer<Deno.NetAddr>;

/**
 * The runtime's per-connection server, or `null` where this Deno does not
 * have it. It is what `Deno.serve` runs for each connection it accepts
 * (same HTTP/1.1 and HTTP/2 implementation, same request path), reached
 * through `Deno[Deno.internal]`; the HTTP server's tests run against it.
 */
export function runtimeServeOnConnection(): ServeOnConnection | null {
  const deno = Deno as unknown as Record<PropertyKey, unknown>;
  const internal = deno[deno.internal as PropertyKey] as Record<string, unknown> | undefined;
  const serve = internal?.serveHttpOnConnection;
  return typeof serve === "function" ? serve as ServeOnConnection : null;
}

/** Set while {@link closeConnection} aborts a connection's signal. */
let closing = false;

// Aborting a connection's signal makes the runtime cancel that connection's
// server. One that ended by itself an instant earlier is already gone, and
// the runtime's abort listener then throws BadResource from within the
// abort: an uncaught error, which would end the daemon, for a connection
// that is closed either way. This listener swallows exactly that error,
// raised synchronously inside our own abort(). It is added when the module
// loads so that it runs before listeners added later (such as a daemon's
// crash logger).
globalThis.addEventListener("error", (event) => {
  if (closing && event.error instanceof Deno.errors.BadResource) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
});

/** Closes a connection at once, whatever it is doing. */
export function closeConnection(connection: { readonly abort: AbortController }): void {
  if (connection.abort.signal.aborted) return;
  closing = true;
  try {
    connection.abort.abort();
  } finally {
    closing = false;
  }
}
