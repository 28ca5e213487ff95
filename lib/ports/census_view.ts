/**
 * The kernel's socket census as one registry transaction sees it.
 *
 * @module
 */
import type { PortRange } from "./range.ts";
import type { RegistryData } from "./registry.ts";
import {
  censusCovers,
  readTcpCounters,
  type SocketCensus,
  takeSocketCensus,
  type TcpCounters,
} from "./socket_census.ts";

/**
 * The kernel's socket census as one registry transaction sees it: the census
 * shared in the registry while it covers the candidates of each request
 * (see `censusCovers`), else read afresh, at most once per transaction, and
 * shared through the registry.
 */
export class CensusView {
  readonly #data: RegistryData;
  readonly #state: { dirty: boolean };
  #counters: TcpCounters | null | undefined;
  /** The census's ports, and those without the TIME_WAIT-only ones. */
  #ports: Set<number> | undefined;
  #reusable: Set<number> | undefined;
  /** The census read during this transaction, if one was. */
  #census: SocketCensus | null = null;
  #fresh = false;

  /**
   * Creates the view of one transaction.
   *
   * @param data The registry as the transaction read it (its shared census).
   * @param state The transaction's state: marked dirty when a census is shared.
   */
  constructor(data: RegistryData, state: { dirty: boolean }) {
    this.#data = data;
    this.#state = state;
  }

  /** Whether the census was read during this transaction. */
  get fresh(): boolean {
    return this.#fresh;
  }

  /**
   * The ports held by other programs, `null` where the tables cannot be
   * read; with `reuseAddress`, not those whose only sockets are in TIME_WAIT.
   */
  async busy(
    candidates: PortRange[],
    options: { reuseAddress?: boolean } = {},
  ): Promise<Set<number> | null> {
    if (!this.#fresh) {
      this.#counters ??= readTcpCounters();
      if (!censusCovers(this.#data.sockets, this.#counters, { now: Date.now(), candidates })) {
        return await this.refresh(options);
      }
    }
    return this.#view(options);
  }

  /** Reads the socket tables now (once per transaction) and shares the result. */
  async refresh(options: { reuseAddress?: boolean } = {}): Promise<Set<number> | null> {
    if (!this.#fresh) {
      // The counters are read before the tables, so a socket the tables miss moves them.
      this.#counters = readTcpCounters();
      const census = await takeSocketCensus(this.#counters, { now: Date.now() });
      // Shared only when later readers can tell whether it still holds.
      this.#data.sockets = this.#counters ? census : null;
      this.#state.dirty = true;
      this.#fresh = true;
      this.#census = census;
      this.#ports = this.#reusable = undefined;
    }
    return this.#view(options);
  }

  #view(options: { reuseAddress?: boolean }): Set<number> | null {
    const census = this.#fresh ? this.#census : this.#data.sockets;
    if (!census) return null;
    this.#ports ??= new Set(census.ports);
    if (!options.reuseAddress || !census.time_wait?.length) return this.#ports;
    if (!this.#reusable) {
      const timeWait = new Set(census.time_wait);
      this.#reusable = new Set(census.ports.filter((port) => !timeWait.has(port)));
    }
    return this.#reusable;
  }
}
