/**
 * A loopback TCP relay in front of a fake server, so a test can cut live
 * connections the way a network does: no WebSocket close frame, no HTTP
 * answer, just gone.
 */
import { leaseTestPort } from "../helpers/ports.ts";

/** A running relay. */
export class TcpRelay {
  /** The port clients connect to. */
  readonly port: number;
  readonly #listener: Deno.Listener;
  readonly #target: number;
  readonly #pairs = new Set<[Deno.Conn, Deno.Conn]>();

  private constructor(listener: Deno.Listener, target: number) {
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#target = target;
    this.#accept();
  }

  /** Starts a relay on a leased loopback port that forwards to `targetPort`. */
  static async start(targetPort: number): Promise<TcpRelay> {
    const port = await leaseTestPort();
    return new TcpRelay(Deno.listen({ hostname: "127.0.0.1", port }), targetPort);
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      let server: Deno.Conn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
      } catch {
        client.close();
        continue;
      }
      const pair: [Deno.Conn, Deno.Conn] = [client, server];
      this.#pairs.add(pair);
      const end = () => this.#closePair(pair);
      client.readable.pipeTo(server.writable).catch(() => {}).finally(end);
      server.readable.pipeTo(client.writable).catch(() => {}).finally(end);
    }
  }

  #closePair(pair: [Deno.Conn, Deno.Conn]): void {
    if (!this.#pairs.delete(pair)) return;
    for (const conn of pair) {
      try {
        conn.close();
      } catch {
        // already closed by its pipe
      }
    }
  }

  /** How many connections are open through the relay. */
  get open(): number {
    return this.#pairs.size;
  }

  /** Cuts every open connection (both sides closed at once, mid-stream). */
  cut(): void {
    for (const pair of [...this.#pairs]) this.#closePair(pair);
  }

  /** Cuts every connection and stops listening. */
  close(): void {
    this.cut();
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
  }
}
