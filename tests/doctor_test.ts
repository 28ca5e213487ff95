import assert from "node:assert/strict";
import type { Diagnosis } from "../lib/doctor/mod.ts";
import { homeLayout } from "../lib/home/mod.ts";
import { courier, json, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

function finding(d: Diagnosis, check: string) {
  return d.findings.filter((f) => f.check === check);
}

Deno.test("doctor on a healthy home: every local check is ok and the exit code follows the findings", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    assert.equal((await h.run(["start", "--port", String(port)])).code, 0);
    const result = await h.run(["doctor", "--port", String(port), "--json"]);
    const d = json<Diagnosis>(result);
    for (const check of ["home", "state", "registry", "port"]) {
      assert.ok(
        finding(d, check).every((f) => f.level === "ok"),
        JSON.stringify(finding(d, check)),
      );
    }
    assert.match(finding(d, "port")[0].message, /served by this Courier/);
    assert.equal(finding(d, "tools").length, 3);
    // Other users of this machine may have orphans of their own: the exit code must agree with them.
    assert.equal(result.code, d.ok ? 0 : 1);
    assert.equal(d.ok, d.findings.every((f) => f.level !== "problem"));
    assert.equal((await h.run(["stop"])).code, 0);
  });
});

Deno.test("doctor finds stale files, corrupt registries, a busy port and orphans, with fixes", async () => {
  await withHome(async (h) => {
    const layout = homeLayout(h.home);
    const orphanHome = homeLayout(h.sibling("orphan"));
    const started = json<{ pid: number }>(
      await courier([
        "start",
        "--home",
        orphanHome.root,
        "--port",
        String(await leaseTestPort()),
        "--json",
      ]),
    );
    // Make it an orphan: no state file names it any more.
    await Deno.remove(orphanHome.pidFile);
    await Deno.remove(orphanHome.stateFile);
    // In the home examined: a stale PID file and a corrupt port registry.
    await Deno.mkdir(layout.runDir, { recursive: true });
    await Deno.writeTextFile(layout.pidFile, "999999\n");
    await Deno.mkdir(h.leaseDir, { recursive: true });
    await Deno.writeTextFile(`${h.leaseDir}/ports.json`, "{not json");
    const busy = Deno.listen({ hostname: "127.0.0.1", port: await leaseTestPort() });
    try {
      const port = (busy.addr as Deno.NetAddr).port;
      const result = await h.run(["doctor", "--port", String(port), "--json"]);
      assert.equal(result.code, 1);
      const d = json<Diagnosis>(result);
      assert.equal(d.ok, false);
      const state = finding(d, "state")[0];
      assert.equal(state.level, "problem");
      assert.match(state.message, /stale/);
      assert.match(state.fix!, /courier stop/);
      const registry = finding(d, "registry").find((f) => /ports\.json/.test(f.message))!;
      assert.equal(registry.level, "problem");
      assert.match(registry.fix!, /courier port gc/);
      const portFinding = finding(d, "port")[0];
      assert.equal(portFinding.level, "problem");
      assert.match(
        portFinding.message,
        new RegExp(`port ${port} is already in use by PID ${Deno.pid}`),
      );
      // Its home's status and doctor say the same: it runs, its state file is gone.
      const orphan = finding(d, "daemons").find((f) => f.message.includes(`PID ${started.pid}`))!;
      assert.equal(orphan.level, "problem");
      assert.match(orphan.message, /is unhealthy: .*state file .* is gone/);
      assert.equal(orphan.fix, `courier --home ${orphanHome.root} restart`);

      const text = await h.run(["doctor", "--port", String(port)]);
      assert.equal(text.code, 1);
      assert.match(text.stdout, /^PROBLEM +state +stale/m);
      assert.match(text.stdout, /fix: courier stop/);
      assert.match(text.stdout, /Problems found/);
    } finally {
      busy.close();
    }
    const stopped = await h.run(["stop", "--all", "--within", orphanHome.root]);
    assert.equal(stopped.code, 0, stopped.stderr);
  });
});

Deno.test("doctor checks the port the daemon runs on, or the one start would use", async () => {
  await withHome(async (h) => {
    const port = await leaseTestPort();
    assert.equal((await h.run(["start", "--port", String(port)])).code, 0);
    const running = json<Diagnosis>(await h.run(["doctor", "--json"]));
    assert.match(
      finding(running, "port")[0].message,
      new RegExp(`port ${port} is served by this Courier`),
    );
    assert.equal((await h.run(["stop"])).code, 0);

    const busy = Deno.listen({ hostname: "127.0.0.1", port: await leaseTestPort() });
    try {
      const busyPort = (busy.addr as Deno.NetAddr).port;
      const stopped = json<Diagnosis>(
        await h.run(["doctor", "--json"], { env: { COURIER_PORT: String(busyPort) } }),
      );
      const found = finding(stopped, "port")[0];
      assert.equal(found.level, "problem");
      assert.match(
        found.message,
        new RegExp(`port ${busyPort} is already in use by PID ${Deno.pid}`),
      );
      const auto = json<Diagnosis>(
        await h.run(["doctor", "--json"], { env: { COURIER_PORT: "auto" } }),
      );
      assert.match(finding(auto, "port")[0].message, /--port auto/);
      assert.equal(finding(auto, "port")[0].level, "ok");
    } finally {
      busy.close();
    }
  });
});
