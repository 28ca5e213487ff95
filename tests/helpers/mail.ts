/**
 * The mail service in-process for tests: a temporary home, a service
 * started on it, requests driven through `handle()` (no port, no daemon),
 * an optional fake clock, and readers for the mail files on disk.
 */
import { join } from "node:path";
import { homeLayout } from "../../lib/home/mod.ts";
import { nullLogger } from "../../lib/log/mod.ts";
import {
  handleMailRequest,
  mailboxLayout,
  type MailDocument,
  type MailLocation,
  MailService,
  type MailServiceOptions,
  type MailSettings,
  parseMail,
} from "../../lib/mail/mod.ts";

/** A clock tests move by hand. Starts at the real time so timestamps look real. */
export class FakeClock {
  #now = Date.now();

  /** The current fake time in ms. */
  now = (): number => this.#now;

  /** Moves the clock forward. */
  advance(ms: number): void {
    this.#now += ms;
  }
}

/** A JSON response as tests see it. */
export interface Reply {
  /** HTTP status. */
  status: number;
  /** Parsed JSON body (`{}` for an empty one). */
  body: Record<string, unknown>;
  /** The response headers. */
  headers: Headers;
}

/** Options of {@link withMail}. */
export interface MailHarnessOptions {
  /** Use this home instead of a new temporary one. */
  home?: string;
  /** Settings overrides (short windows, fast backoff). */
  settings?: Partial<MailSettings>;
  /** Use a {@link FakeClock}. */
  fakeClock?: boolean;
  /** Written to `<home>/config.json` before start. */
  config?: Record<string, unknown>;
  /** Passed through to the service. */
  service?: Omit<MailServiceOptions, "settings" | "now">;
  /** `start` options (as the daemon passes them). */
  startOptions?: Record<string, string | number | boolean | undefined>;
  /** Do not wait for the mailbox to be indexed after each start. */
  noIndexWait?: boolean;
  /** Receives the service's log lines (`level message`). */
  log?: string[];
}

/** A started mail service on a temporary home. */
export class MailHarness {
  /** The temporary home. */
  readonly home: string;
  /** The fake clock, when asked for. */
  readonly clock: FakeClock | null;
  /** The running service. */
  service: MailService;
  readonly #options: MailHarnessOptions;

  private constructor(home: string, options: MailHarnessOptions, service: MailService) {
    this.home = home;
    this.clock = options.fakeClock ? new FakeClock() : null;
    this.#options = options;
    this.service = service;
  }

  /** Creates a home and starts a service on it. */
  static async create(options: MailHarnessOptions = {}): Promise<MailHarness> {
    const home = options.home ?? await Deno.makeTempDir({ prefix: "courier-mail-test-" });
    if (options.config) {
      await Deno.writeTextFile(join(home, "config.json"), JSON.stringify(options.config));
    }
    const harness = new MailHarness(home, options, new MailService());
    harness.service = await harness.#start();
    return harness;
  }

  async #start(): Promise<MailService> {
    const service = new MailService({
      ...this.#options.service,
      settings: this.#options.settings,
      now: this.clock?.now,
    });
    const lines = this.#options.log;
    await service.start({
      layout: homeLayout(this.home),
      log: lines
        ? {
          info: (m) => lines.push(`info ${m}`),
          warn: (m) => lines.push(`warn ${m}`),
          error: (m) => lines.push(`error ${m}`),
          close() {},
        }
        : nullLogger(),
      options: this.#options.startOptions ?? {},
    });
    if (!this.#options.noIndexWait) await service.indexed();
    return service;
  }

  /**
   * Stops the service and starts a fresh one on the same home (a clean
   * restart); `between` runs while it is stopped (to damage files).
   */
  async restart(between?: () => Promise<void>): Promise<void> {
    await this.service.stop();
    await between?.();
    this.service = await this.#start();
  }

  /** Sends a request through the mail HTTP API (as the daemon would). */
  async request(method: string, path: string, body?: unknown): Promise<Reply> {
    const url = new URL(path, "http://127.0.0.1");
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      init.headers = { "content-type": "application/json" };
    }
    const response = await handleMailRequest(this.service, new Request(url, init), url);
    if (!response) return { status: 0, body: {}, headers: new Headers() };
    const text = await response.text();
    return {
      status: response.status,
      body: text === "" ? {} : JSON.parse(text),
      headers: response.headers,
    };
  }

  /** POSTs `body` to `path`. */
  post(path: string, body: unknown): Promise<Reply> {
    return this.request("POST", path, body);
  }

  /** GETs `path`. */
  get(path: string): Promise<Reply> {
    return this.request("GET", path);
  }

  /**
   * Posts one message in a conversation of its own, folds it into a mail
   * and returns the new mail's id.
   */
  async newMail(text: string, extra: Record<string, unknown> = {}): Promise<string> {
    await this.post(
      "/api/v1/inbound/lark",
      inbound({ text, session_id: crypto.randomUUID(), ...extra }),
    );
    await this.service.flushPending();
    const list = await this.get("/api/v1/messages?status=new");
    return (list.body.messages as { id: string; preview: string }[])
      .find((m) => m.preview === text)!.id;
  }

  /** The mails in `location` (every provider), oldest file first. */
  mails(location: MailLocation = "inbound"): Promise<MailDocument[]> {
    return readMails(this.home, location);
  }

  /** Stops the service and removes the home. */
  async cleanup(): Promise<void> {
    await this.service.stop().catch(() => {});
    await Deno.remove(this.home, { recursive: true }).catch(() => {});
  }
}

/** Runs `fn` with a started {@link MailHarness}, always cleaning up. */
export async function withMail(
  options: MailHarnessOptions,
  fn: (h: MailHarness) => Promise<void>,
): Promise<void> {
  const harness = await MailHarness.create(options);
  try {
    await fn(harness);
  } finally {
    await harness.cleanup();
  }
}

/** Every mail file in `location` of the home's mailbox, oldest file name first. */
export async function readMails(home: string, location: MailLocation): Promise<MailDocument[]> {
  const layout = mailboxLayout(home);
  const root = {
    inbound: layout.inboundDir,
    outbound: layout.outboundDir,
    archive: layout.archiveDir,
    deadletter: layout.deadletterDir,
  }[location];
  const paths: string[] = [];
  try {
    for await (const provider of Deno.readDir(root)) {
      if (!provider.isDirectory) continue;
      for await (const file of Deno.readDir(join(root, provider.name))) {
        if (file.isFile && file.name.endsWith(".md") && !file.name.startsWith(".")) {
          paths.push(join(root, provider.name, file.name));
        }
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  paths.sort((a, b) => a.split("/").at(-1)!.localeCompare(b.split("/").at(-1)!));
  return await Promise.all(paths.map(async (p) => parseMail(await Deno.readTextFile(p))));
}

/** An inbound webhook body with sensible defaults. */
export function inbound(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    session_id: "chat-1",
    sender: { id: "u-alice", name: "Alice" },
    text: "hello",
    ...overrides,
  };
}

/** Resolves after `ms` milliseconds (to let a real debounce window pass). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 10 ms until it returns true (or throws after `timeoutMs`). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what ?? "it"}`);
    await sleep(10);
  }
}

/** A local webhook receiver (see {@link webhookReceiver}). */
export interface Receiver {
  /** Where to POST. */
  url: string;
  /** What was POSTed, in order. */
  posts: { headers: Headers; body: Record<string, unknown> }[];
  /** Stops it. */
  close(): Promise<void>;
}

/**
 * A local webhook receiver answering with `statuses` in turn (the last one
 * repeats); a status of 0 never answers (until the receiver closes).
 */
export function webhookReceiver(statuses: number[]): Receiver {
  const posts: Receiver["posts"] = [];
  const { promise: closing, resolve: release } = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      posts.push({ headers: request.headers, body: await request.json() });
      const status = statuses[Math.min(posts.length - 1, statuses.length - 1)];
      if (status === 0) {
        await closing;
        return new Response("gone", { status: 503 });
      }
      return new Response(status >= 400 ? "receiver says no" : "ok", { status });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    posts,
    close: () => {
      release();
      return server.shutdown();
    },
  };
}

/** A deterministic pseudo-random source in [0, 1) (so a failure can be replayed). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
