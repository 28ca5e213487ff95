/**
 * Talking to a test daemon's HTTP API: every request of a test goes through
 * {@link apiFetch}, the one place that adds what the API requires (the
 * daemon's token, read from the home, once the API has one).
 */
import { apiToken, json, type TestHome } from "./courier.ts";
import { eventually, inbound } from "./mail.ts";
import { leaseTestPort } from "./ports.ts";

/** A daemon started by a test: its home, port and base URL. */
export interface TestDaemon {
  /** The home it runs in. */
  home: TestHome;
  /** Its port. */
  port: number;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Its PID. */
  pid: number;
}

/**
 * One request to the daemon of `home` (`path` is relative to its URL, or
 * absolute), with the home's API token (unless the request sets its own
 * `authorization`).
 */
export async function apiFetch(
  daemon: TestDaemon,
  path: string,
  init: RequestInit = {},
): Promise<Response> {
  const url = path.startsWith("http") ? path : `${daemon.url}${path}`;
  const headers = new Headers(init.headers);
  if (!headers.has("authorization")) {
    headers.set("authorization", `Bearer ${await apiToken(daemon.home.home)}`);
  }
  return await fetch(url, { ...init, headers });
}

/** POSTs JSON and returns the status and the JSON body (`{}` when empty). */
export async function apiPost(
  daemon: TestDaemon,
  path: string,
  body: unknown,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await apiFetch(daemon, path, {
    ...init,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {}, headers: response.headers };
}

/** GETs JSON. */
export async function apiGet(
  daemon: TestDaemon,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await apiFetch(daemon, path);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {} };
}

/** Writes `<home>/config.json` (before the daemon starts). */
export async function writeHomeConfig(
  home: TestHome,
  config: Record<string, unknown>,
): Promise<void> {
  await Deno.mkdir(home.home, { recursive: true });
  await Deno.writeTextFile(`${home.home}/config.json`, JSON.stringify(config));
}

/**
 * Starts a daemon in `home` on a leased port (extra `start` arguments
 * allowed; `env`: variables the daemon inherits, such as `env:` secrets).
 */
export async function startDaemon(
  home: TestHome,
  args: string[] = [],
  options: { env?: Record<string, string> } = {},
): Promise<TestDaemon> {
  const port = await leaseTestPort();
  const started = await home.run(["start", "--port", String(port), "--json", ...args], options);
  if (started.code !== 0) throw new Error(`courier start failed: ${started.stderr}`);
  const daemon = {
    home,
    port,
    url: `http://127.0.0.1:${port}`,
    pid: json<{ pid: number }>(started).pid,
  };
  await mailRunning(daemon);
  return daemon;
}

/**
 * Waits until the daemon's mail service runs (it starts after the daemon
 * is ready): from then on `/health` has the mail metrics tests read.
 */
export async function mailRunning(daemon: TestDaemon): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const health = await (await apiFetch(daemon, "/health")).json();
    const state = health.services?.mail?.state;
    if (state === "running") return;
    if (state === "failed") {
      throw new Error(`the mail service failed: ${health.services.mail.error}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("the mail service did not start within 10 s");
}

/** Stops the daemon of `home` (asserting a clean stop). */
export async function stopDaemon(daemon: TestDaemon): Promise<void> {
  const stopped = await daemon.home.run(["stop"]);
  if (stopped.code !== 0) throw new Error(`courier stop failed: ${stopped.stderr}`);
}

/**
 * Posts one message (provider `lark`) in conversation `session` and returns
 * the id of its mail once it is folded (start the daemon with a short
 * debounce window).
 */
export async function postMail(
  daemon: TestDaemon,
  session: string,
  text = `secret body of ${session}`,
): Promise<string> {
  const posted = await apiPost(
    daemon,
    "/api/v1/inbound/lark",
    inbound({ session_id: session, text }),
  );
  if (posted.status !== 202) throw new Error(`inbound answered ${posted.status}`);
  let id = "";
  await eventually(async () => {
    const listed = await apiGet(daemon, `/api/v1/messages?session_id=${session}`);
    id = (listed.body.messages as { id: string }[])[0]?.id ?? "";
    return id !== "";
  }, { what: `the mail of ${session}` });
  return id;
}
