/**
 * Connection exhaustion, before and after connection limits: a daemon under
 * a low open-file limit (`prlimit --nofile`) is flooded with idle TCP
 * connections, then asked `GET /health`; and its `/health` throughput is
 * measured without the flood. Both are run twice in the same run: with the
 * runtime's own server (`"max_connections": 0` in config.json: no limit,
 * as courier served before it had limits) and with the default limits.
 * Prints one JSON document.
 *
 *   deno task bench:connections [--idle 700] [--nofile 512] [--seconds 5] [--senders 16]
 *
 * Needs `prlimit` (util-linux).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { allocatePort } from "../lib/ports/mod.ts";
import { readProcessIdentity } from "../lib/proc/mod.ts";
import { runCourier } from "./courier_cli.ts";

const LEASE_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/courier-bench-port-leases`;

interface Settings {
  idle: number;
  nofile: number;
  seconds: number;
  senders: number;
}

interface ModeResult {
  /** `/health` answered per second, 16 senders, no flood. */
  health_per_second: number;
  /** Idle connections the flood managed to open. */
  idle_connected: number;
  /** What each `/health` during the flood got: a status, or the error. */
  health_during_flood: string[];
  /** Latency of the answered ones, ms. */
  health_latency_ms: number[];
  /** Whether the daemon was still running after the flood. */
  survived: boolean;
  /** Log lines about connections and accept errors, or a crash. */
  log: string[];
}

async function healthRate(url: string, settings: Settings): Promise<number> {
  const end = performance.now() + settings.seconds * 1000;
  let ok = 0;
  await Promise.all(Array.from({ length: settings.senders }, async () => {
    while (performance.now() < end) {
      try {
        const response = await fetch(`${url}/health`);
        await response.body?.cancel();
        if (response.status === 200) ok++;
      } catch {
        // counted as not answered
      }
    }
  }));
  return Math.round(ok / settings.seconds);
}

async function flood(
  port: number,
  settings: Settings,
): Promise<Pick<ModeResult, "idle_connected" | "health_during_flood" | "health_latency_ms">> {
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < settings.idle; i++) {
      try {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch {
        break; // refused: nothing listens any more
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const results: string[] = [];
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      // A new connection each time, as a new client makes (none left over from before).
      const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
      try {
        const response = await fetch(`http://127.0.0.1:${port}/health`, {
          client,
          signal: AbortSignal.timeout(10_000),
        });
        await response.body?.cancel();
        results.push(String(response.status));
        latencies.push(Math.round((performance.now() - t0) * 10) / 10);
      } catch (error) {
        results.push(error instanceof Error ? error.name : String(error));
      } finally {
        client.close();
      }
    }
    return {
      idle_connected: conns.length,
      health_during_flood: results,
      health_latency_ms: latencies,
    };
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // closed by the server
      }
    }
  }
}

async function runMode(unlimited: boolean, settings: Settings): Promise<ModeResult> {
  const home = await Deno.makeTempDir({ prefix: "courier-bench-conn-" });
  try {
    if (unlimited) {
      await Deno.writeTextFile(`${home}/config.json`, JSON.stringify({ max_connections: 0 }));
    }
    const port = await allocatePort({ dir: LEASE_DIR, label: "bench:connections" });
    const started = await runCourier(
      ["start", "--home", home, "--port", String(port), "--json"],
      ["prlimit", `--nofile=${settings.nofile}:${settings.nofile}`],
    );
    if (started.code !== 0) throw new Error(`courier start failed: ${started.stderr}`);
    const pid = JSON.parse(started.stdout).pid as number;
    const identity = await readProcessIdentity(pid);
    const rate = await healthRate(`http://127.0.0.1:${port}`, settings);
    const flooded = await flood(port, settings);
    const survived = identity !== null && (await readProcessIdentity(pid))?.startTime ===
        identity.startTime;
    if (survived) await runCourier(["stop", "--home", home]);
    const log = (await Deno.readTextFile(`${home}/log/courier.log`)).split("\n")
      .filter((line) => /http:|connection|crashed|Too many/.test(line))
      .map((line) => line.replace(/^\S+ +\S+ +pid=\d+ /, ""))
      .slice(0, 6);
    return { health_per_second: rate, ...flooded, survived, log };
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      idle: { type: "string", default: "700" },
      nofile: { type: "string", default: "512" },
      seconds: { type: "string", default: "5" },
      senders: { type: "string", default: "16" },
    },
  });
  const settings: Settings = {
    idle: Number(values.idle),
    nofile: Number(values.nofile),
    seconds: Number(values.seconds),
    senders: Number(values.senders),
  };
  try {
    await new Deno.Command("prlimit", { args: ["--version"], stdout: "null" }).output();
  } catch {
    console.error("bench:connections needs prlimit (util-linux): install it and run again");
    return 1;
  }
  const before = await runMode(true, settings);
  const after = await runMode(false, settings);
  console.log(JSON.stringify(
    {
      machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno },
      config: settings,
      before_runtime_server: before,
      after_connection_limits: after,
      health_throughput_ratio: Math.round(
        (after.health_per_second / Math.max(1, before.health_per_second)) * 100,
      ) / 100,
    },
    null,
    2,
  ));
  return after.survived && after.health_during_flood.every((s) => s === "200") ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
