/**
 * A fake Telegram Bot API on loopback: `/bot<token>/<method>` with JSON
 * bodies, `{ok, result}` / `{ok: false, error_code, description,
 * parameters}` answers, `getMe`, `getWebhookInfo`, `sendMessage`, and
 * `getUpdates` long polling that forgets updates below the `offset` it is
 * given (as Telegram confirms them) and answers 409 while a webhook is set.
 */
import { eventually } from "../helpers/mail.ts";
import { leaseTestPort } from "../helpers/ports.ts";
import { Injections } from "./injections.ts";

type Json = Record<string, unknown>;

/** The bot the fake Telegram knows. */
export const FAKE_TELEGRAM = {
  token: "123456789:AAFakeTokenForTestsOnly_abcdefghij",
  botId: 123456789,
  username: "courier_test_bot",
} as const;

/** An answer to inject for the next call of a method. */
export interface TelegramInjected {
  /** HTTP status (default: the body's `error_code`, else 200). */
  status?: number;
  /** The JSON body. */
  body: Json;
}

/** A running fake Telegram. */
export class FakeTelegram {
  /** The Bot API base (`api_base` of the provider). */
  readonly apiBase: string;
  /** Every call: method, parameters and when it arrived (ms), in order. */
  readonly calls: { method: string; params: Json; at: number }[] = [];
  /** The webhook set on the bot (`""`: none); while set, getUpdates answers 409. */
  webhookUrl = "";
  /** How long an empty `getUpdates` holds at most (ms), whatever its `timeout`. */
  holdMs = 30_000;
  readonly #server: Deno.HttpServer;
  readonly #injected = new Injections<TelegramInjected>();
  #updates: Json[] = [];
  #nextUpdateId = 1000;
  #nextMessageId = 1;
  /** Long polls waiting for an update (released by a push, or by close). */
  readonly #waiting = new Set<() => void>();

  private constructor(server: Deno.HttpServer, port: number) {
    this.#server = server;
    this.apiBase = `http://127.0.0.1:${port}`;
  }

  /** Starts the fake on a leased loopback port. */
  static async start(): Promise<FakeTelegram> {
    const port = await leaseTestPort();
    let fake: FakeTelegram | null = null;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port, onListen() {} },
      (request) => fake!.#handle(request),
    );
    fake = new FakeTelegram(server, port);
    return fake;
  }

  /** A `providers.<name>` entry of `type: "telegram"` that talks to this fake. */
  config(extra: Json = {}): Json {
    return { type: "telegram", bot_token: FAKE_TELEGRAM.token, api_base: this.apiBase, ...extra };
  }

  /** The parameters of each `getUpdates` call. */
  get polls(): Json[] {
    return this.calls.filter((c) => c.method === "getUpdates").map((c) => c.params);
  }

  /** The parameters of each `sendMessage` call. */
  get sent(): Json[] {
    return this.calls.filter((c) => c.method === "sendMessage").map((c) => c.params);
  }

  /** Queues an update (its `update_id` is assigned) and returns it. */
  push(update: Json): Json {
    const full = { update_id: this.#nextUpdateId++, ...update };
    this.#updates.push(full);
    this.#release();
    return full;
  }

  /** Makes the next call of `method` answer `answer` (queued in order). */
  inject(method: string, answer: TelegramInjected): void {
    this.#injected.add(method, answer);
  }

  /** Waits until `getUpdates` has been called `n` times. */
  async polled(n: number): Promise<void> {
    await eventually(() => this.polls.length >= n, { what: `getUpdates call ${n}` });
  }

  async #handle(request: Request): Promise<Response> {
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(new URL(request.url).pathname);
    if (!match) return this.#error(404, "Not Found");
    const [, token, method] = match;
    let params: Json = {};
    try {
      const text = await request.text();
      params = text ? JSON.parse(text) : {};
    } catch {
      return this.#error(400, "Bad Request: can't parse JSON");
    }
    this.calls.push({ method, params, at: Date.now() });
    if (token !== FAKE_TELEGRAM.token) return this.#error(401, "Unauthorized");
    const injected = this.#injected.take(method);
    if (injected) {
      const code = typeof injected.body.error_code === "number" ? injected.body.error_code : 200;
      return Response.json(injected.body, { status: injected.status ?? code });
    }
    switch (method) {
      case "getMe":
        return this.#ok({
          id: FAKE_TELEGRAM.botId,
          is_bot: true,
          first_name: "Courier",
          username: FAKE_TELEGRAM.username,
        });
      case "getWebhookInfo":
        return this.#ok({ url: this.webhookUrl, pending_update_count: this.#updates.length });
      case "getUpdates":
        return await this.#getUpdates(params);
      case "sendMessage": {
        if (params.chat_id === undefined || params.chat_id === "") {
          return this.#error(400, "Bad Request: chat_id is empty");
        }
        if (typeof params.text !== "string" || params.text === "") {
          return this.#error(400, "Bad Request: message text is empty");
        }
        if (params.text.length > 4096) return this.#error(400, "Bad Request: message is too long");
        return this.#ok({
          message_id: this.#nextMessageId++,
          chat: { id: params.chat_id },
          date: 1700000000,
          text: params.text,
        });
      }
      default:
        return this.#error(404, "Not Found");
    }
  }

  #release(): void {
    for (const release of [...this.#waiting]) release();
  }

  async #getUpdates(params: Json): Promise<Response> {
    if (this.webhookUrl !== "") {
      return this.#error(
        409,
        "Conflict: can't use getUpdates method while webhook is active; " +
          "use deleteWebhook to delete the webhook first",
      );
    }
    const offset = typeof params.offset === "number" ? params.offset : undefined;
    // An offset confirms every update below it: Telegram forgets them.
    if (offset !== undefined) {
      this.#updates = this.#updates.filter((u) => u.update_id as number >= offset);
    }
    const limit = typeof params.limit === "number" ? params.limit : 100;
    const timeoutMs = Math.min(Number(params.timeout ?? 0) * 1000, this.holdMs);
    if (this.#updates.length === 0 && timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiting.delete(done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        this.#waiting.add(done);
      });
    }
    return this.#ok(this.#updates.slice(0, limit));
  }

  #ok(result: unknown): Response {
    return Response.json({ ok: true, result });
  }

  #error(code: number, description: string, parameters?: Json): Response {
    return Response.json(
      { ok: false, error_code: code, description, ...(parameters ? { parameters } : {}) },
      { status: code },
    );
  }

  /** Stops the fake (`await using fake = await Fake….start()` does it at the end of the block). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Stops the fake. */
  async close(): Promise<void> {
    this.#release();
    await this.#server.shutdown();
  }
}

/** Options of {@link telegramUpdate}. */
export interface TelegramUpdateOptions {
  /** The chat (default a private chat with user 42). */
  chat?: Json;
  /** The sender (default user 42, Ann Lee). */
  from?: Json;
  /** The text (default `hello`); `null` for none. */
  text?: string | null;
  /** The message id (default: a counter). */
  message_id?: number;
  /** More fields of the message (`caption`, `entities`, `message_thread_id`…). */
  extra?: Json;
}

let messageCounter = 100;

/** The `message` part of an update, as Telegram sends it. */
export function telegramUpdate(options: TelegramUpdateOptions = {}): Json {
  const from = options.from ?? { id: 42, is_bot: false, first_name: "Ann", last_name: "Lee" };
  const message: Json = {
    message_id: options.message_id ?? ++messageCounter,
    from,
    chat: options.chat ?? { id: 42, type: "private", first_name: "Ann", last_name: "Lee" },
    date: 1700000000,
    ...options.extra,
  };
  if (options.text !== null) message.text = options.text ?? "hello";
  return { message };
}
