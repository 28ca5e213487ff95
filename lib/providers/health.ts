/**
 * A provider's live state, as `courier provider list`, `status` and
 * `/health` show it: connected or not, the last error, and how many
 * messages the `allow_from`/`require_mention` filters dropped.
 *
 * @module
 */
import type { Logger } from "../log/mod.ts";
import { admitMessage, type CommonProviderConfig } from "./common.ts";
import type { ChatMessage, ProviderStatus } from "./provider.ts";

/** Keeps a provider's {@link ProviderStatus}. */
export class ProviderHealth {
  /** Connected over the long connection; `null` for a provider without one. */
  connected: boolean | null;
  #config: CommonProviderConfig;
  #now: () => number;
  #log?: Logger;
  #lastError: { message: string; at: string } | undefined;
  #dropped = 0;

  /**
   * Creates a `ProviderHealth`.
   *
   * @param config The provider's entry (its name and filters).
   * @param options Whether it has a long connection, the clock, the log.
   */
  constructor(
    config: CommonProviderConfig,
    options: { longConnection: boolean; now?: () => number; log?: Logger },
  ) {
    this.#config = config;
    this.connected = options.longConnection ? false : null;
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
  }

  /** Records an error (never give it a secret). */
  error(message: string): void {
    this.#lastError = { message, at: new Date(this.#now()).toISOString() };
  }

  /**
   * Whether `message` passes `allow_from` and `require_mention`; one that
   * does not is counted and logged (its id and why, never its text).
   */
  admit(message: ChatMessage): { ok: true } | { ok: false; reason: string } {
    const admitted = admitMessage(this.#config, message);
    if (admitted.ok) return admitted;
    this.#dropped++;
    this.#log?.info(
      `${this.#config.name}: dropped message ${message.message_id}: ${admitted.reason}`,
    );
    return admitted;
  }

  /** The state now. */
  status(): ProviderStatus {
    return {
      connected: this.connected,
      ...(this.#lastError
        ? { last_error: this.#lastError.message, last_error_at: this.#lastError.at }
        : {}),
      dropped: this.#dropped,
    };
  }
}
