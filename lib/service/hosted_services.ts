import { jsonResponse, type RequestContext } from "../http/mod.ts";
import type { DaemonExtension, ExtensionContext } from "./extension.ts";

/** Where a hosted service stands: `starting` until its `start` settles. */
export type HostedServiceState = "waiting" | "starting" | "running" | "failed";

/** Options of {@link HostedServices}. */
export interface HostedServicesOptions {
  /** How long a request for a service that is still starting waits for it (default 5000 ms). */
  startWaitMs?: number;
  /** The `Retry-After` (seconds) of the 503 a request gets when it waited in vain (default 1). */
  retryAfterS?: number;
}

/** The routes the daemon answers itself: they never wait for a service. */
const DAEMON_ROUTES = new Set(["/health", "/api/v1/status"]);

interface Entry {
  extension: DaemonExtension;
  state: HostedServiceState;
  error?: string;
  /** Settles (never rejects) once `start` has. */
  settled: Promise<void>;
  markSettled: () => void;
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * The services a daemon hosts ({@link DaemonExtension}s), run in the order
 * the daemon needs to signal ready early: {@link prepare} before it binds
 * (cheap checks, a failure refuses the start), {@link start} after it is
 * ready (in the background, one service after the other). It is itself a
 * `DaemonExtension` for the daemon's request handler: a request for a
 * service that is still starting waits for it, at most `startWaitMs`, then
 * gets 503 with `Retry-After`; a request for a service whose start failed
 * gets 503 naming the error; `/health` gets each service's state under
 * `services`.
 *
 * @example
 * ```ts
 * const services = new HostedServices([mail], { layout, log, options: {} });
 * await services.prepare(); // before binding: a bad config.json throws here
 * // …bind, write the state file, signal ready…
 * services.start(); // not awaited: requests wait for what they need
 * ```
 */
export class HostedServices implements DaemonExtension {
  /** The name in logs. */
  readonly name = "services";
  readonly #entries: Entry[];
  readonly #context: ExtensionContext;
  readonly #startWaitMs: number;
  readonly #retryAfterS: number;
  #starting: Promise<void> | null = null;
  #stopping = false;

  /**
   * Creates the set of hosted services (none started yet).
   *
   * @param extensions The services, in start order.
   * @param context What each service is handed (home, log, start options).
   * @param options How long requests wait for a starting service.
   */
  constructor(
    extensions: readonly DaemonExtension[],
    context: ExtensionContext,
    options: HostedServicesOptions = {},
  ) {
    this.#context = context;
    this.#startWaitMs = options.startWaitMs ?? 5000;
    this.#retryAfterS = options.retryAfterS ?? 1;
    this.#entries = extensions.map((extension) => {
      let markSettled = () => {};
      const settled = new Promise<void>((resolve) => (markSettled = resolve));
      return { extension, state: "waiting", settled, markSettled };
    });
  }

  /** Each service's state, by name. */
  get states(): Record<string, HostedServiceState> {
    return Object.fromEntries(this.#entries.map((e) => [e.extension.name, e.state]));
  }

  /**
   * Runs every service's `prepare`, in order. Call it before binding.
   *
   * @throws whatever a `prepare` throws (the daemon refuses to start).
   */
  async prepare(): Promise<void> {
    for (const { extension } of this.#entries) await extension.prepare?.(this.#context);
  }

  /**
   * Starts the services one after the other, once; resolves when every
   * `start` has settled (it never rejects: a failure is logged and kept).
   */
  start(): Promise<void> {
    this.#starting ??= (async () => {
      for (const entry of this.#entries) {
        const { extension } = entry;
        if (this.#stopping) { // shutdown began: the rest are not started at all
          entry.markSettled();
          continue;
        }
        entry.state = "starting";
        const began = performance.now();
        try {
          await extension.start(this.#context);
          entry.state = "running";
          this.#context.log.info(
            `${extension.name}: started in ${Math.round(performance.now() - began)} ms`,
          );
        } catch (error) {
          entry.state = "failed";
          entry.error = errorText(error);
          this.#context.log.error(
            `${extension.name}: start failed: ${entry.error}; its routes answer 503 until a restart`,
          );
        } finally {
          entry.markSettled();
        }
      }
    })();
    return this.#starting;
  }

  /** Offers the request to each running service; waits for one still starting that owns it. */
  async handle(request: Request, url: URL, context: RequestContext): Promise<Response | null> {
    for (const entry of this.#entries) {
      const { extension } = entry;
      if (entry.state !== "running") {
        const owns = extension.owns?.(url) ?? !DAEMON_ROUTES.has(url.pathname);
        if (!owns) continue;
        if (await this.#waitFor(entry) !== "running") {
          return await this.#unavailable(request, entry);
        }
      }
      const response = await extension.handle(request, url, context);
      if (response) return response;
    }
    return null;
  }

  /** Whether a service verifies `request` itself (asked of every service, started or not). */
  verifiesRequest(request: Request, url: URL): boolean {
    return this.#entries.some((e) => e.extension.verifiesRequest?.(request, url) ?? false);
  }

  /** Waits for `entry`'s start to settle, at most `startWaitMs`; returns its state then. */
  async #waitFor(entry: Entry): Promise<HostedServiceState> {
    if (entry.state !== "failed") {
      // AbortSignal.timeout, not setTimeout (the first setTimeout loads Node's timers); its
      // listener is removed afterwards, so a pending deadline never holds the process open.
      const deadline = AbortSignal.timeout(this.#startWaitMs);
      let onDeadline = () => {};
      const timedOut = new Promise<void>((resolve) => (onDeadline = resolve));
      deadline.addEventListener("abort", onDeadline, { once: true });
      try {
        await Promise.race([entry.settled, timedOut]);
      } finally {
        deadline.removeEventListener("abort", onDeadline);
      }
    }
    return entry.state;
  }

  async #unavailable(request: Request, entry: Entry): Promise<Response> {
    await request.body?.cancel().catch(() => {});
    const name = entry.extension.name;
    if (entry.state === "failed") {
      return jsonResponse(
        { error: `the ${name} service failed to start (${entry.error}); see the daemon's log` },
        503,
      );
    }
    return jsonResponse(
      { error: `the ${name} service is still starting; retry in ${this.#retryAfterS} s` },
      503,
      { "retry-after": String(this.#retryAfterS) },
    );
  }

  /** The running services' `/health` fields, and every service's state under `services`. */
  health(): Record<string, unknown> {
    const fields: Record<string, unknown> = {};
    const services: Record<string, { state: HostedServiceState; error?: string }> = {};
    for (const entry of this.#entries) {
      if (entry.state === "running") Object.assign(fields, entry.extension.health());
      services[entry.extension.name] = entry.error
        ? { state: entry.state, error: entry.error }
        : { state: entry.state };
    }
    return { ...fields, services };
  }

  /** Tells the running services that shutdown began. */
  draining(): void {
    for (const entry of this.#entries) {
      if (entry.state !== "running") continue;
      try {
        entry.extension.draining?.();
      } catch (error) {
        this.#context.log.error(`${entry.extension.name}: draining failed: ${errorText(error)}`);
      }
    }
  }

  /**
   * Waits for a start under way to settle (the services after it are not
   * started), then stops the running services in reverse order. Each
   * failure is logged.
   *
   * @throws {Error} after stopping them all, when any `stop` failed.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#starting) await this.#starting;
    const failed: string[] = [];
    for (const entry of [...this.#entries].reverse()) {
      if (entry.state !== "running") continue;
      try {
        await entry.extension.stop();
      } catch (error) {
        failed.push(entry.extension.name);
        this.#context.log.error(`${entry.extension.name}: stop failed: ${errorText(error)}`);
      }
    }
    if (failed.length > 0) throw new Error(`stop failed: ${failed.join(", ")}`);
  }
}
