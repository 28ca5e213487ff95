/**
 * The locked door against real daemons: the token file, every status code
 * of the guard chain with curl-like requests (a raw socket where `fetch`
 * would fix the `Host`), rotation without restart, the CLI reading the token
 * itself, binds beyond loopback, doctor's permission checks, and logs that
 * keep no secret.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Diagnosis } from "../lib/doctor/mod.ts";
import { homeLayout } from "../lib/home/mod.ts";
import { json, type TestHome, withHome } from "./helpers/courier.ts";
import { eventually, inbound, sleep } from "./helpers/mail.ts";
import { leaseTestPort } from "./helpers/ports.ts";
import { preflightInit, rawHttp } from "./helpers/http.ts";

async function startWith(
  h: TestHome,
  config: Record<string, unknown> = {},
  options: { args?: string[]; env?: Record<string, string> } = {},
): Promise<{ port: number; url: string; pid: number; stdout: string; stderr: string }> {
  await Deno.mkdir(h.home, { recursive: true });
  await Deno.writeTextFile(join(h.home, "config.json"), JSON.stringify(config), { mode: 0o600 });
  const port = await leaseTestPort();
  const started = await h.run(
    ["start", "--port", String(port), "--debounce-window", "50", "--json", ...options.args ?? []],
    { env: options.env },
  );
  assert.equal(started.code, 0, started.stderr);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: json<{ pid: number }>(started).pid,
    ...started,
  };
}

const JSON_TYPE = { "content-type": "application/json" };

Deno.test("token: the first start creates it (0600, one line, 256 bits); courier token prints it alone", async () => {
  await withHome(async (h) => {
    const layout = homeLayout(h.home);
    await startWith(h);
    const info = await Deno.stat(layout.tokenFile);
    assert.equal(info.mode! & 0o777, 0o600);
    const text = await Deno.readTextFile(layout.tokenFile);
    assert.match(text, /^[A-Za-z0-9_-]{43}\n$/);
    const printed = await h.run(["token"]);
    assert.equal(printed.code, 0);
    assert.equal(printed.stdout, text, "the token alone, like `gh auth token`");
    assert.equal(printed.stderr, "");
    assert.deepEqual(json(await h.run(["token", "--json"])), {
      token: text.trim(),
      path: layout.tokenFile,
      created: false,
    });
    assert.equal((await h.run(["restart", "--port", String(await leaseTestPort())])).code, 0);
    assert.equal(await Deno.readTextFile(layout.tokenFile), text, "kept across restarts");
    assert.equal((await h.run(["stop"])).code, 0);
    const usage = await h.run(["token", "show"]);
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /unexpected argument "show"/);
  });
});

Deno.test("token: courier token before the first start creates it, and the daemon uses it", async () => {
  await withHome(async (h) => {
    const created = await h.run(["token"]);
    assert.equal(created.code, 0);
    assert.match(created.stderr, /created a new API token in .*api\.token/);
    const token = created.stdout.trim();
    assert.equal((await Deno.stat(homeLayout(h.home).tokenFile)).mode! & 0o777, 0o600);
    const { url } = await startWith(h);
    // The mail service starts after the daemon is ready: its fields come once it runs.
    const health = async () =>
      await (await fetch(`${url}/health`, { headers: { authorization: `Bearer ${token}` } }))
        .json();
    await eventually(async () => (await health()).services?.mail?.state === "running", {
      what: "the mail service to run",
    });
    assert.ok("metrics" in await health());
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("start refuses a token file without a token, and bad allowed_hosts/allowed_origins", async () => {
  await withHome(async (h) => {
    const layout = homeLayout(h.home);
    await Deno.mkdir(layout.runDir, { recursive: true });
    await Deno.writeTextFile(layout.tokenFile, "not a token\n", { mode: 0o600 });
    const port = String(await leaseTestPort());
    const refused = await h.run(["start", "--port", port]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.ok(refused.stderr.includes(`${layout.tokenFile} does not hold an API token`));
    assert.match(refused.stderr, /courier token rotate/);
    assert.equal(await Deno.readTextFile(layout.tokenFile), "not a token\n", "left as it was");
    await Deno.remove(layout.tokenFile);
    for (
      const [config, message] of [
        [{ allowed_origins: ["*"] }, /allowed_origins\[0\]: "\*" is not an origin/],
        [{ allowed_hosts: [42] }, /allowed_hosts: must be a list of strings/],
      ] as const
    ) {
      await Deno.writeTextFile(layout.configFile, JSON.stringify(config), { mode: 0o600 });
      const bad = await h.run(["start", "--port", port]);
      assert.equal(bad.code, 1, bad.stderr);
      assert.match(bad.stderr, message);
    }
  });
});

Deno.test("every guard against a real daemon: 421, 403, 401, 415, 429, and what passes", async () => {
  await withHome(async (h) => {
    const { port, url } = await startWith(h, {
      allowed_hosts: ["courier.example.test"],
      allowed_origins: ["http://app.example.test:4000"],
    });
    const token = await h.token();
    const auth = { authorization: `Bearer ${token}` };
    const tokenFile = homeLayout(h.home).tokenFile;

    // 421: a Host the daemon does not answer to, before anything else runs.
    for (
      const request of [
        { target: "/health", headers: { host: `evil.example:${port}` } },
        { target: "/health", headers: { host: `localhost.:${port}` } },
        { target: "/health", headers: { host: `127.0.0.1.nip.example:${port}` } },
        { target: "/api/v1/messages", headers: { host: `evil.example:${port}`, ...auth } },
        { target: "http://evil.example/api/v1/messages", headers: auth }, // absolute URI
        { target: "/health", headers: { host: null }, version: "HTTP/1.0" },
        {
          method: "POST",
          target: "/api/v1/inbound/lark",
          headers: { host: `evil.example:${port}`, ...auth, ...JSON_TYPE },
          body: JSON.stringify(inbound()),
        },
      ]
    ) {
      const answer = await rawHttp(port, request);
      assert.equal(answer.status, 421, JSON.stringify(request));
      assert.match(JSON.parse(answer.body).error, /not a name this courier answers to/);
    }
    for (const host of [`localhost:${port}`, `[::1]:${port}`, `courier.example.test:${port}`]) {
      assert.equal((await rawHttp(port, { target: "/health", headers: { host } })).status, 200);
    }
    const proxied = await rawHttp(port, {
      target: "/api/v1/messages",
      headers: { host: "courier.example.test", ...auth },
    });
    assert.equal(proxied.status, 200, "a name in allowed_hosts (a tunnel's public name) passes");

    // 403: requests from other web origins; preflights from them fail.
    const fromPage = await fetch(`${url}/api/v1/inbound/lark`, {
      method: "POST",
      headers: { ...auth, ...JSON_TYPE, origin: "http://127.0.0.1:3000" },
      body: JSON.stringify(inbound()),
    });
    assert.equal(fromPage.status, 403);
    assert.equal(fromPage.headers.get("access-control-allow-origin"), null);
    await fromPage.body?.cancel();
    const crossSite = await fetch(`${url}/api/v1/messages`, {
      headers: { ...auth, "sec-fetch-site": "cross-site" },
    });
    assert.equal(crossSite.status, 403);
    await crossSite.body?.cancel();
    const preflight = (origin: string) => fetch(`${url}/api/v1/messages`, preflightInit(origin));
    const foreign = await preflight("http://127.0.0.1:3000");
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers.get("access-control-allow-origin"), null);
    await foreign.body?.cancel();
    const allowed = await preflight("http://app.example.test:4000");
    assert.equal(allowed.status, 204);
    assert.equal(
      allowed.headers.get("access-control-allow-origin"),
      "http://app.example.test:4000",
    );
    const fromApp = await fetch(`${url}/api/v1/messages`, {
      headers: { ...auth, origin: "http://app.example.test:4000" },
    });
    assert.equal(fromApp.status, 200);
    assert.equal(
      fromApp.headers.get("access-control-allow-origin"),
      "http://app.example.test:4000",
    );
    await fromApp.body?.cancel();
    const plain = await fetch(`${url}/api/v1/messages`, { headers: auth });
    assert.equal(plain.headers.get("access-control-allow-origin"), null, "no CORS unless allowed");
    await plain.body?.cancel();

    // 401: no token, a wrong one, one in the query string; /api/v1/status too.
    for (
      const [path, headers] of [
        ["/api/v1/messages", {}],
        ["/api/v1/status", {}],
        [`/api/v1/messages?token=${token}`, {}],
        [`/api/v1/messages?access_token=${token}`, {}],
        ["/api/v1/messages", { authorization: `Bearer ${token.slice(0, -1)}` }],
        ["/api/v1/no/such/route", {}],
      ] as const
    ) {
      const answer = await fetch(url + path, { headers });
      assert.equal(answer.status, 401, path);
      assert.match(answer.headers.get("www-authenticate")!, /^Bearer/);
      const body = await answer.json();
      assert.ok(body.error.includes(tokenFile), body.error);
      assert.match(body.error, /courier token/);
    }

    // /health: without the token only status, version, pid, uptime_s; with it everything.
    const open = await (await fetch(`${url}/health`)).json();
    assert.deepEqual(Object.keys(open).sort(), ["pid", "status", "uptime_s", "version"]);
    const full = await (await fetch(`${url}/health`, { headers: auth })).json();
    assert.ok("metrics" in full && "mailbox" in full);
    const status = await (await fetch(`${url}/api/v1/status`, { headers: auth })).json();
    assert.equal(status.home, homeLayout(h.home).root);

    // 415: a POST that is not JSON never reaches the mail service.
    for (
      const type of [
        "application/x-www-form-urlencoded",
        "text/plain;charset=UTF-8",
        "multipart/form-data; boundary=x",
        null,
      ]
    ) {
      const answer = await rawHttp(port, {
        method: "POST",
        target: "/api/v1/inbound/lark",
        headers: { ...auth, "content-type": type },
        body: JSON.stringify(inbound({ text: "smuggled" })),
      });
      assert.equal(answer.status, 415, String(type));
    }
    const accepted = await fetch(`${url}/api/v1/inbound/lark`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify(inbound({ text: "welcome" })),
    });
    assert.equal(accepted.status, 202);
    await accepted.body?.cancel();
    const metrics = (await (await fetch(`${url}/health`, { headers: auth })).json()).metrics;
    assert.equal(metrics.received, 1, "only the JSON request was received");

    // 429: more than 10 wrong tokens from this peer (loopback is not exempt). One was sent
    // above; nine more make ten, and the eleventh attempt is refused.
    const wrong = { authorization: `Bearer ${"w".repeat(43)}` };
    for (let i = 2; i <= 10; i++) {
      const answer = await fetch(`${url}/api/v1/messages`, { headers: wrong });
      assert.equal(answer.status, 401, `wrong token ${i}`);
      await answer.body?.cancel();
    }
    const locked = await fetch(`${url}/api/v1/messages`, { headers: wrong });
    assert.equal(locked.status, 429);
    const retryAfter = Number(locked.headers.get("retry-after"));
    assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
    assert.match((await locked.json()).error, /too many wrong API tokens/);
    const right = await fetch(`${url}/api/v1/messages`, { headers: auth });
    assert.equal(right.status, 429, "while locked out, no token is looked at");
    await right.body?.cancel();
    const publicHealth = await fetch(`${url}/health`);
    assert.equal(publicHealth.status, 200, "the public /health stays open");
    await publicHealth.body?.cancel();
    const log = await Deno.readTextFile(homeLayout(h.home).logFile);
    assert.match(log, /127\.0\.0\.1 sent too many wrong API tokens: refusing it for \d+ s/);
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("rotation: courier token rotate; the running daemon takes only the new token within a second", async () => {
  await withHome(async (h) => {
    const { url, pid } = await startWith(h);
    const old = await h.token();
    const get = (token: string) =>
      fetch(`${url}/api/v1/messages`, { headers: { authorization: `Bearer ${token}` } })
        .then(async (r) => (await r.body?.cancel(), r.status));
    assert.equal(await get(old), 200);
    const rotated = await h.run(["token", "rotate"]);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, /new API token/);
    assert.ok(!rotated.stdout.includes(await h.token()), "rotate does not print the token");
    assert.deepEqual(json(await h.run(["token", "rotate", "--json"])), {
      rotated: true,
      path: homeLayout(h.home).tokenFile,
    });
    const fresh = await h.token();
    assert.notEqual(fresh, old);
    await sleep(1000); // the contract: within a second
    assert.equal(await get(old), 401);
    assert.equal(await get(fresh), 200);
    const status = json<{ pid: number; state: string }>(await h.run(["status", "--json"]));
    assert.deepEqual([status.state, status.pid], ["running", pid], "no restart");
    assert.equal((await h.run(["mail", "list"])).code, 0, "the CLI reads the new token");
    assert.match(
      await Deno.readTextFile(homeLayout(h.home).logFile),
      /API token replaced .*; the old one is refused/,
    );
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("the CLI reads the token itself; missing or unreadable: exit 3 naming the path", async () => {
  await withHome(async (h) => {
    const { url } = await startWith(h);
    const layout = homeLayout(h.home);
    const old = await h.token();
    assert.equal((await h.run(["mail", "list"])).code, 0);
    assert.equal((await h.run(["status"])).code, 0);

    await Deno.remove(layout.tokenFile);
    for (const args of [["mail", "list"], ["mail", "show", "lark_x"], ["status"]]) {
      const result = await h.run(args);
      assert.equal(result.code, 3, `${args.join(" ")}: ${result.stderr}`);
      assert.ok(result.stderr.includes(`No API token at ${layout.tokenFile}`), result.stderr);
    }
    const asJson = await h.run(["mail", "list", "--json"]);
    assert.equal(json<{ error: { exit_code: number } }>(asJson).error.exit_code, 3);
    const doctor = json<Diagnosis>(await h.run(["doctor", "--json"]));
    const state = doctor.findings.find((f) => f.check === "state")!;
    assert.equal(state.level, "problem");
    assert.match(state.message, /No API token/);
    await sleep(250); // past the daemon's recheck interval (200 ms)
    const closed = await fetch(`${url}/api/v1/messages`, {
      headers: { authorization: `Bearer ${old}` },
    });
    assert.equal(closed.status, 401, "no token file: the daemon fails closed");
    await closed.body?.cancel();

    const recreated = await h.run(["token"]);
    assert.equal(recreated.code, 0);
    assert.match(recreated.stderr, /created a new API token/);
    await sleep(250);
    assert.equal((await h.run(["mail", "list"])).code, 0, "the daemon took the new token");

    await Deno.remove(layout.tokenFile);
    await Deno.mkdir(layout.tokenFile); // unreadable, whoever we are
    const unreadable = await h.run(["mail", "list"]);
    assert.equal(unreadable.code, 3);
    assert.ok(unreadable.stderr.includes(`Cannot read the API token ${layout.tokenFile}`));
    await Deno.remove(layout.tokenFile);
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("binding beyond loopback: a warning on start and in doctor; the token is still required", async () => {
  await withHome(async (h) => {
    const { port, url, stderr, stdout } = await startWith(h, {}, { args: ["--host", "0.0.0.0"] });
    assert.match(stderr, /warning: Courier listens on 0\.0\.0\.0:\d+, beyond loopback/);
    assert.match(JSON.parse(stdout).warning, /beyond loopback/, "the --json twin says it too");
    const log = await Deno.readTextFile(homeLayout(h.home).logFile);
    assert.match(log, /WARN .*Courier listens on 0\.0\.0\.0:\d+, beyond loopback/);
    const doctor = json<Diagnosis>(await h.run(["doctor", "--port", String(port), "--json"]));
    const exposure = doctor.findings.find((f) => f.check === "exposure");
    assert.equal(exposure?.level, "warn");
    assert.match(exposure!.message, /beyond loopback/);
    const text = await h.run(["doctor", "--port", String(port)]);
    assert.match(text.stdout, /^warn +exposure +Courier listens on 0\.0\.0\.0/m);
    const open = await fetch(`${url}/api/v1/messages`);
    assert.equal(open.status, 401);
    await open.body?.cancel();
    // The machine's own addresses are the bound host's names; others still are not.
    const lan = Deno.networkInterfaces().find((i) =>
      i.family === "IPv4" && !/^127\./.test(i.address)
    );
    if (lan) {
      const own = await rawHttp(port, {
        target: "/health",
        headers: { host: `${lan.address}:${port}` },
      });
      assert.equal(own.status, 200);
    }
    const evil = await rawHttp(port, {
      target: "/health",
      headers: { host: `evil.example:${port}` },
    });
    assert.equal(evil.status, 421);
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("doctor flags config.json and the token readable by others, with the chmod that fixes it", async () => {
  await withHome(async (h) => {
    const layout = homeLayout(h.home);
    assert.equal((await h.run(["token"])).code, 0);
    await Deno.writeTextFile(layout.configFile, "{}\n");
    await Deno.chmod(layout.configFile, 0o644);
    await Deno.chmod(layout.tokenFile, 0o640);
    const result = await h.run(["doctor", "--json"]);
    assert.equal(result.code, 1);
    const secrets = json<Diagnosis>(result).findings.filter((f) => f.check === "secrets");
    assert.deepEqual(
      secrets.map((f) => [f.level, f.fix]),
      [["problem", `chmod 600 ${layout.configFile}`], ["problem", `chmod 600 ${layout.tokenFile}`]],
    );
    assert.match(secrets[0].message, /readable or writable by other users \(mode 644\)/);
    const text = await h.run(["doctor"]);
    assert.ok(text.stdout.includes(`fix: chmod 600 ${layout.tokenFile}`));
    await Deno.chmod(layout.configFile, 0o600);
    await Deno.chmod(layout.tokenFile, 0o600);
    const fixed = json<Diagnosis>(await h.run(["doctor", "--json"]));
    assert.deepEqual(fixed.findings.filter((f) => f.check === "secrets").map((f) => f.level), [
      "ok",
    ]);
    await Deno.writeTextFile(layout.tokenFile, "oops\n");
    const broken = json<Diagnosis>(await h.run(["doctor", "--json"]));
    const bad = broken.findings.find((f) => f.check === "secrets" && f.level === "problem")!;
    assert.equal(bad.fix, "courier token rotate");
  });
});

Deno.test("logs keep no token, no secret from config.json, no message text; env:NAME secrets work", async () => {
  const calls: { authorization: string | null; url: string }[] = [];
  let failFirst = true;
  const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (r) => {
    const body = await r.text();
    calls.push({ authorization: r.headers.get("authorization"), url: r.url });
    if (failFirst) {
      failFirst = false;
      return new Response(`rejected: ${body}`, { status: 500 }); // echoes the mail
    }
    return new Response("ok");
  });
  const hookSecret = `hook-secret-${crypto.randomUUID()}`;
  const authSecret = `auth-secret-${crypto.randomUUID()}`;
  const inboundText = `inbound-text-${crypto.randomUUID()}`;
  const outboundText = `outbound-text-${crypto.randomUUID()}`;
  try {
    await withHome(async (h) => {
      const { url } = await startWith(h, {
        retry_backoff_ms: 50,
        outbound: {
          lark: {
            url: "env:COURIER_TEST_HOOK_URL",
            headers: { authorization: "env:COURIER_TEST_AUTH" },
          },
        },
      }, {
        env: {
          COURIER_TEST_HOOK_URL: `http://127.0.0.1:${receiver.addr.port}/hook?key=${hookSecret}`,
          COURIER_TEST_AUTH: `Bearer ${authSecret}`,
        },
      });
      const tokens = [await h.token()];
      const auth = () => ({ authorization: `Bearer ${tokens.at(-1)}`, ...JSON_TYPE });
      const posted = await fetch(`${url}/api/v1/inbound/lark`, {
        method: "POST",
        headers: auth(),
        body: JSON.stringify(inbound({ text: inboundText })),
      });
      assert.equal(posted.status, 202);
      await posted.body?.cancel();
      assert.equal(
        (await h.run(["mail", "send", "lark", "--to", "oc_1", "--text", outboundText])).code,
        0,
      );
      await eventually(() => calls.length === 2, { what: "delivery after one retry" });
      assert.deepEqual(calls.map((c) => c.authorization), [
        `Bearer ${authSecret}`,
        `Bearer ${authSecret}`,
      ]);
      assert.ok(calls[0].url.includes(hookSecret), "env:NAME resolved the URL");
      let ids: string[] = [];
      await eventually(async () => {
        ids = json<{ messages: { id: string }[] }>(
          await h.run(["mail", "list", "--direction", "inbound", "--json"]),
        ).messages.map((m) => m.id);
        return ids.length === 1;
      }, { what: "the inbound mail" });
      assert.equal((await h.run(["mail", "show", ids[0]])).code, 0);
      for (let i = 0; i < 11; i++) {
        const wrong = await fetch(`${url}/api/v1/messages`, {
          headers: { authorization: `Bearer wrong-${tokens[0].slice(4)}` },
        });
        await wrong.body?.cancel();
      }
      assert.equal((await h.run(["token", "rotate"])).code, 0);
      tokens.push(await h.token());
      await sleep(250);
      const after = await fetch(`${url}/health`, { headers: auth() });
      await after.body?.cancel();
      assert.equal((await h.run(["stop"])).code, 0);
      const log = await Deno.readTextFile(homeLayout(h.home).logFile);
      assert.match(
        log,
        /delivering \S+ failed \(attempt \d+ of \d+: HTTP 500\)/,
        "the failure is logged…",
      );
      assert.match(log, /delivered \S+ via webhook \(provider \S+\)\n/, "…and the delivery");
      assert.match(log, /sent too many wrong API tokens/);
      for (
        const secret of [
          ...tokens,
          tokens[0].slice(4),
          hookSecret,
          authSecret,
          inboundText,
          outboundText,
          "/hook",
        ]
      ) {
        assert.ok(!log.includes(secret), `the log holds ${secret}:\n${log}`);
      }
    });
  } finally {
    await receiver.shutdown();
  }
});

const hasSetpriv = await new Deno.Command("setpriv", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);
const secondUser = Deno.uid() === 0 && hasSetpriv;
if (!secondUser) {
  console.log(
    `skipping "another Unix user cannot read the token": needs root and setpriv ` +
      `(uid ${Deno.uid()}, setpriv ${hasSetpriv ? "found" : "missing"})`,
  );
}

Deno.test({
  name: "another Unix user cannot read the token",
  ignore: !secondUser,
}, async () => {
  await withHome(async (h) => {
    const layout = homeLayout(h.home);
    assert.equal((await h.run(["token"])).code, 0);
    const asNobody = (path: string) =>
      new Deno.Command("setpriv", {
        args: ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", path],
        stdout: "piped",
        stderr: "piped",
      }).output();
    // Even with every folder on the way open to others, the file itself is 0600.
    for (const dir of [h.root, layout.root, layout.runDir]) await Deno.chmod(dir, 0o755);
    const denied = await asNobody(layout.tokenFile);
    assert.equal(denied.success, false);
    assert.equal(denied.stdout.length, 0);
    assert.match(new TextDecoder().decode(denied.stderr), /Permission denied/);
    // The control: a file that others may read is read by nobody, so the refusal above is real.
    const control = join(layout.runDir, "control");
    await Deno.writeTextFile(control, "readable\n", { mode: 0o644 });
    await Deno.chmod(control, 0o644);
    const read = await asNobody(control);
    assert.equal(new TextDecoder().decode(read.stdout), "readable\n");
    // And with the default home mode (0700), nobody cannot even reach it.
    await Deno.chmod(layout.root, 0o700);
    assert.equal((await asNobody(control)).success, false);
  });
});
