/**
 * Connection exhaustion, before and after connection limits: a daemon under
 * a low open-file limit (`prlimit --nofile`) is flooded with idle TCP
 * connections, then asked `GET /health` on new connections; before that,
 * its throughput (and its CPU time per request) is measured without the
 * flood, for `GET /health` and for `POST /api/v1/inbound` (what
 * `bench:mail` measures). Two daemons run side by side in the same run:
 * one with the runtime's own server (`"max_connections": 0` in config.json:
 * no limit, as courier served before it had limits) and one with the
 * default limits (both with a 200 ms debounce, so that each writes its mails
 * during its own measurement); throughput is measured in alternating rounds,
 * the order alternating too, and the medians are reported. Prints one JSON
 * document.
 *
 *   deno task bench:connections [--idle 700] [--nofile 512] [--rounds 5] [--seconds 2]
 *                               [--senders 16]
 *
 * Needs `prlimit` (util-linux).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { allocatePort } from "../lib/ports/mod.ts";
import { readProcessIdentity } from "../lib/proc/mod.ts";
import { runCourier, THIS_MAIN } from "./run_courier.ts";

const LEASE_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/courier-bench-port-leases`;

interface Settings {
  idle: number;
  nofile: number;
  seconds: number;
  rounds: number;
  senders: number;
}

/** Throughput of one kind of request, the median over the rounds. */
interface Throughput {
  /** Answered as expected per second (16 senders, no flood). */
  per_second: number;
  /**
   * The daemon's CPU time per 10,000 answers, ms (`/proc/<pid>/stat`):
   * steadier than a rate on a shared machine; `null` off Linux.
   */
  cpu_ms_per_10k: number | null;
}

interface ModeResult {
  /** `GET /health` (the HTTP path alone). */
  health: Throughput;
  /** `POST /api/v1/inbound/bench` (the mail service's acknowledged writes). */
  inbound: Throughput;
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

/** CPU time (user + system) process `pid` has used, ms; `null` where `/proc` cannot tell. */
function cpuMs(pid: number): number | null {
  try {
    const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime: 100 ticks a second
  } catch {
    return null;
  }
}

/** Runs `send` from `senders` loops for `seconds`; counts the `true` answers. */
async function rate(
  pid: number,
  settings: Settings,
  send: (sender: number, n: number) => Promise<boolean>,
): Promise<{ perSecond: number; cpuPer10k: number | null }> {
  const cpuBefore = cpuMs(pid);
  const end = performance.now() + settings.seconds * 1000;
  let ok = 0;
  await Promise.all(Array.from({ length: settings.senders }, async (_, sender) => {
    for (let n = 0; performance.now() < end; n++) {
      if (await send(sender, n).catch(() => false)) ok++;
    }
  }));
  const cpuAfter = cpuMs(pid);
  return {
    perSecond: Math.round(ok / settings.seconds),
    cpuPer10k: cpuBefore === null || cpuAfter === null || ok === 0
      ? null
      : Math.round(((cpuAfter - cpuBefore) / ok) * 10_000),
  };
}

const SENDS: Record<
  "health" | "inbound",
  (url: string, round: number) => Parameters<typeof rate>[2]
> = {
  health: (url) => async () => {
    const response = await fetch(`${url}/health`);
    await response.body?.cancel();
    return response.status === 200;
  },
  inbound: (url, round) => async (sender, n) => {
    const response = await fetch(`${url}/api/v1/inbound/bench`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        session_id: `session-${(sender * 7919 + n) % 64}`,
        sender: { id: `user-${sender}` },
        text: `benchmark message ${n}: the quick brown fox`,
        message_id: `r${round}-s${sender}-${n}`,
      }),
    });
    await response.body?.cancel();
    return response.status === 202;
  },
};

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

/** A daemon of this benchmark, in a temporary home, under the open-file limit. */
interface Daemon {
  home: string;
  port: number;
  pid: number;
  identity: Awaited<ReturnType<typeof readProcessIdentity>>;
}

async function startDaemon(unlimited: boolean, settings: Settings): Promise<Daemon> {
  const home = await Deno.makeTempDir({ prefix: "courier-bench-conn-" });
  // Short debounce: each daemon writes its mails within its own measured phase, not the other's.
  const config = { debounce_window_ms: 200, debounce_max_wait_ms: 1000 };
  await Deno.writeTextFile(
    `${home}/config.json`,
    JSON.stringify(unlimited ? { ...config, max_connections: 0 } : config),
  );
  const port = await allocatePort({ dir: LEASE_DIR, label: "bench:connections" });
  const started = await runCourier(
    THIS_MAIN,
    ["start", "--home", home, "--port", String(port), "--json"],
    { prefix: ["prlimit", `--nofile=${settings.nofile}:${settings.nofile}`] },
  );
  if (started.code !== 0) throw new Error(`courier start failed: ${started.stderr}`);
  const pid = JSON.parse(started.stdout).pid as number;
  return { home, port, pid, identity: await readProcessIdentity(pid) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Floods the daemon, then stops it if it survived, and reads what its log says. */
async function floodAndStop(
  daemon: Daemon,
  settings: Settings,
): Promise<Omit<ModeResult, "health" | "inbound">> {
  try {
    const flooded = await flood(daemon.port, settings);
    const now = await readProcessIdentity(daemon.pid);
    const survived = daemon.identity !== null && now?.startTime === daemon.identity.startTime;
    if (survived) await runCourier(THIS_MAIN, ["stop", "--home", daemon.home]);
    const log = (await Deno.readTextFile(`${daemon.home}/log/courier.log`)).split("\n")
      .filter((line) => /http:|connection|crashed|Too many/.test(line))
      .map((line) => line.replace(/^\S+ +\S+ +pid=\d+ /, ""))
      .slice(0, 6);
    return { ...flooded, survived, log };
  } finally {
    await Deno.remove(daemon.home, { recursive: true }).catch(() => {});
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      idle: { type: "string", default: "700" },
      nofile: { type: "string", default: "512" },
      seconds: { type: "string", default: "2" },
      rounds: { type: "string", default: "6" },
      senders: { type: "string", default: "16" },
    },
  });
  const settings: Settings = {
    idle: Number(values.idle),
    nofile: Number(values.nofile),
    seconds: Number(values.seconds),
    rounds: Number(values.rounds),
    senders: Number(values.senders),
  };
  try {
    await new Deno.Command("prlimit", { args: ["--version"], stdout: "null" }).output();
  } catch {
    console.error("bench:connections needs prlimit (util-linux): install it and run again");
    return 1;
  }
  const daemons = [await startDaemon(true, settings), await startDaemon(false, settings)];
  // Throughput in alternating rounds, so both see the same machine: medians of each. Which
  // goes first alternates too (a daemon's mail flushes land in the phases that follow its own).
  const runs = daemons.map(() => ({ health: [] as Rate[], inbound: [] as Rate[] }));
  for (let round = 0; round < settings.rounds; round++) {
    for (const kind of ["inbound", "health"] as const) {
      for (const i of round % 2 ? [1, 0] : [0, 1]) {
        const daemon = daemons[i];
        const url = `http://127.0.0.1:${daemon.port}`;
        runs[i][kind].push(await rate(daemon.pid, settings, SENDS[kind](url, round)));
        await new Promise((resolve) => setTimeout(resolve, 1200)); // its last mails are written
      }
    }
  }
  const flooded: Omit<ModeResult, "health" | "inbound">[] = [];
  for (const daemon of daemons) flooded.push(await floodAndStop(daemon, settings));
  const modes: ModeResult[] = daemons.map((_, i) => ({
    health: summary(runs[i].health),
    inbound: summary(runs[i].inbound),
    ...flooded[i],
  }));
  const ratio = (a: number | null, b: number | null) =>
    a && b ? Math.round((a / b) * 100) / 100 : null;
  const [before, after] = modes;
  console.log(JSON.stringify(
    {
      machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno },
      config: settings,
      before_runtime_server: before,
      after_connection_limits: after,
      after_vs_before: {
        health_per_second: ratio(after.health.per_second, before.health.per_second),
        health_cpu: ratio(after.health.cpu_ms_per_10k, before.health.cpu_ms_per_10k),
        inbound_per_second: ratio(after.inbound.per_second, before.inbound.per_second),
        inbound_cpu: ratio(after.inbound.cpu_ms_per_10k, before.inbound.cpu_ms_per_10k),
      },
    },
    null,
    2,
  ));
  return after.survived && after.health_during_flood.every((s) => s === "200") ? 0 : 1;
}

type Rate = Awaited<ReturnType<typeof rate>>;

function summary(rates: Rate[]): Throughput {
  const cpu = rates.map((r) => r.cpuPer10k).filter((c): c is number => c !== null);
  return {
    per_second: median(rates.map((r) => r.perSecond)),
    cpu_ms_per_10k: cpu.length ? median(cpu) : null,
  };
}

if (import.meta.main) Deno.exit(await main());
