/**
 * Contention benchmark for port leases, on the workload of the seed's
 * benchmark (`../shared/peers/aidb_bench.py`): P worker processes start
 * together; each leases M ports from [START, START+SIZE) one by one, holding
 * every lease; once all hold theirs, each releases them all. Prints one JSON
 * line with the peer's fields:
 *
 *   {"impl":"courier","procs":P,"per_proc":M,"wall_s":…,"ops_per_s":…,
 *    "alloc_p50_ms":…,"alloc_p99_ms":…,"duplicates":N,"errors":N}
 *
 * `duplicates` counts ports held by two workers at once (must be 0).
 *
 * Two floors run the same workload with no allocation at all, to show what
 * the machine itself charges for P processes each waiting for its turn or
 * its answer (process wake-ups and scheduling on its cores):
 *
 * - `--floor lock` (impl `lock-floor`): each "allocation" is an empty
 *   critical section: take an exclusive `flock` on a file, let go. An
 *   allocator that takes turns under a lock cannot do less.
 * - `--floor echo` (impl `echo-floor`): each "allocation" is one round trip
 *   to a server that answers at once and does nothing else (the benchmark's
 *   own process, over a Unix socket the worker keeps connected). Any design
 *   in which a process waits for its answer, however it is computed, cannot
 *   do less.
 *
 * `--compare` runs both beside the seed and courier.
 * `wall_s` runs from the start barrier to the last release: Deno cannot
 * fork, so worker start-up (~0.1 s per process) is left out, while the
 * peer's forked workers start in a few milliseconds inside its wall time.
 * Latencies are measured around each `allocate()` call, as the peer does.
 *
 * Usage:
 *   deno run -A scripts/bench_ports.ts [--procs 8] [--per-proc 25] [--start 20000] [--size 2000] [--dir DIR]
 *   deno run -A scripts/bench_ports.ts --floor lock   # the same workload with empty critical sections
 *   deno run -A scripts/bench_ports.ts --floor echo   # the same workload with answers that cost nothing
 *   deno run -A scripts/bench_ports.ts --compare      # seed, both floors and courier at 8x25 and 32x10
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeAll } from "../lib/fs/mod.ts";
import { PortAllocator } from "../lib/ports/mod.ts";
import { PERMISSION_FLAGS } from "../lib/proc/mod.ts";

/** One benchmark result, as the peer prints it. */
export interface BenchResult {
  /** `courier` or `aidb-seed`. */
  impl: string;
  /** Worker processes. */
  procs: number;
  /** Leases per worker. */
  per_proc: number;
  /** Seconds from the start barrier to the last release. */
  wall_s: number;
  /** Allocations plus releases per second of wall time. */
  ops_per_s: number;
  /** Median allocation latency. */
  alloc_p50_ms: number;
  /** 99th percentile allocation latency (the peer's index: `int(0.99 * n)`). */
  alloc_p99_ms: number;
  /** Ports held by two workers at once. */
  duplicates: number;
  /** Allocations that failed. */
  errors: number;
}

/** What one benchmark run does. */
export interface BenchConfig {
  /** Worker processes. */
  procs: number;
  /** Leases per worker. */
  perProc: number;
  /** First port of the range. */
  start: number;
  /** Ports in the range. */
  size: number;
  /** Registry directory (a fresh temporary one when absent). */
  dir?: string;
  /** Run a floor instead of courier's allocator (see {@link FloorKind}). */
  floor?: FloorKind;
}

/**
 * The floors: `lock`, an empty critical section under `flock` (impl
 * `lock-floor`); `echo`, a round trip to a server that does nothing (impl
 * `echo-floor`).
 */
export type FloorKind = keyof typeof FLOOR_OPS;

interface WorkerReport {
  ports: number[];
  lat: number[];
  errors: number;
  firstError?: string;
}

const SCRIPT = fileURLToPath(import.meta.url);

/** Reads `\n`-terminated lines from a byte stream. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
    }
  }
  if (buffer) yield buffer;
}

/** A floor's operation, made ready by its worker before the start barrier. */
interface FloorOp {
  /** One timed "allocation". */
  run(): Promise<void>;
  /** Lets go of what the operation holds. */
  close(): void;
}

/**
 * A worker of a floor: sets its operation up and runs it once (as courier's
 * workers prepare), then times `perProc` runs between the start barrier and
 * `held`, as {@link worker} times allocations.
 */
async function floorWorker(config: BenchConfig, op: FloorOp): Promise<void> {
  const input = lines(Deno.stdin.readable);
  const say = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  const report: WorkerReport = { ports: [], lat: [], errors: 0 };
  await op.run();
  say("ready");
  if ((await input.next()).value !== "go") return;
  for (let i = 0; i < config.perProc; i++) {
    const t = performance.now();
    await op.run();
    report.lat.push(performance.now() - t);
  }
  say("held");
  if ((await input.next()).value !== "release") return;
  op.close();
  say(JSON.stringify(report));
}

/**
 * The lock floor's operation: take an exclusive lock on a file (the
 * runtime's blocking `flock`, granted by the kernel the moment it is free)
 * and let go at once.
 */
async function lockFloorOp(dir: string): Promise<FloorOp> {
  const file = await Deno.open(join(dir, "floor.lock"), { read: true, write: true, create: true });
  return {
    run: async () => {
      await file.lock(true);
      await file.unlock();
    },
    close: () => file.close(),
  };
}

/** Where the echo floor's server listens. */
function echoSocketPath(dir: string): string {
  return join(dir, "echo.sock");
}

/** An answer the size of an allocation's (one lease), as the echo server sends it. */
const ECHO_ANSWER = new TextEncoder().encode(
  JSON.stringify({
    lease: {
      port: 20000,
      owner: {
        pid: 123456,
        startTime: "123456789",
        bootId: "00000000-0000-0000-0000-000000000000",
      },
      host: "127.0.0.1",
      label: null,
      created_at: new Date(0).toISOString(),
      expires_at: null,
    },
  }) + "\n",
);

/** The echo floor's operation: send a request line, read the answer line. */
async function echoFloorOp(dir: string): Promise<FloorOp> {
  const conn = await Deno.connect({ transport: "unix", path: echoSocketPath(dir) });
  const request = new TextEncoder().encode("allocate\n");
  const buffer = new Uint8Array(4096);
  return {
    run: async () => {
      await writeAll(conn, request);
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error("the echo server went away");
        if (buffer.subarray(0, n).includes(10)) return;
      }
    },
    close: () => conn.close(),
  };
}

/**
 * The echo floor's server: answers each request line at once with
 * {@link ECHO_ANSWER} and does nothing else.
 */
function serveEcho(dir: string): { close(): Promise<void> } {
  const path = echoSocketPath(dir);
  // A socket left in a --dir by a run that was killed (closing the listener removes it otherwise).
  try {
    Deno.removeSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const listener = Deno.listen({ transport: "unix", path });
  const conns = new Set<Deno.Conn>();
  const handle = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        for (let i = 0; i < n; i++) if (buffer[i] === 10) await writeAll(conn, ECHO_ANSWER);
      }
    } catch {
      // the worker went away, or close() below closed the connection
    } finally {
      if (conns.delete(conn)) conn.close(); // whoever takes it out of `conns` closes it
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        void handle(conn);
      }
    } catch {
      // closed
    }
  })();
  return {
    close: async () => {
      listener.close();
      await accepting;
      for (const conn of conns) {
        conns.delete(conn);
        conn.close();
      }
    },
  };
}

/** Each floor's operation, by kind. */
const FLOOR_OPS = { lock: lockFloorOp, echo: echoFloorOp };

const FLOORS = Object.keys(FLOOR_OPS) as FloorKind[];

async function worker(config: BenchConfig): Promise<void> {
  if (config.floor) return await floorWorker(config, await FLOOR_OPS[config.floor](config.dir!));
  const allocator = new PortAllocator({ dir: config.dir });
  const range = { start: config.start, end: config.start + config.size - 1 };
  const input = lines(Deno.stdin.readable);
  const say = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  const report: WorkerReport = { ports: [], lat: [], errors: 0 };
  // Set-up before the barrier, as the peer's workers build their allocator:
  // PortAllocator.prepare() creates the registry directory, takes the socket
  // census if it is stale, runs the lock/registry code once (V8 compiles
  // lazily; the peer's Python has no such first-call cost), and keeps the
  // lock file and its watch open for the allocations to come.
  await allocator.prepare();
  say("ready");
  if ((await input.next()).value !== "go") return;
  for (let i = 0; i < config.perProc; i++) {
    const t = performance.now();
    try {
      report.ports.push((await allocator.allocate({ range })).port);
    } catch (error) {
      report.errors++;
      report.firstError ??= error instanceof Error ? error.message : String(error);
    }
    report.lat.push(performance.now() - t);
  }
  say("held"); // everyone holds all their leases here
  if ((await input.next()).value !== "release") return;
  for (const port of report.ports) await allocator.release(port);
  await allocator.close();
  say(JSON.stringify(report));
}

function quantile(sorted: number[], f: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] * 100) / 100;
}

/** The flags every worker gets, in the peer's spelling: `--per-proc`, `--start`, `--size`. */
function workloadFlags(config: BenchConfig): string[] {
  return [
    "--per-proc",
    String(config.perProc),
    "--start",
    String(config.start),
    "--size",
    String(config.size),
  ];
}

/** Runs courier's side of the benchmark (or, with `floor`, a floor) and returns its result line. */
export async function runCourierBench(config: BenchConfig): Promise<BenchResult> {
  const dir = config.dir ?? await Deno.makeTempDir({ prefix: "courier-bench-" });
  const echo = config.floor === "echo" ? serveEcho(dir) : null;
  const workers = Array.from({ length: config.procs }, () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        ...PERMISSION_FLAGS,
        SCRIPT,
        "--worker",
        ...(config.floor ? ["--floor", config.floor] : []),
        "--dir",
        dir,
        ...workloadFlags(config),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return { child, out: lines(child.stdout), writer: child.stdin.getWriter() };
  });
  const expect = async (word: string) => {
    for (const w of workers) {
      const line = (await w.out.next()).value;
      if (line !== word) throw new Error(`worker ${w.child.pid} said ${line}, expected ${word}`);
    }
  };
  const send = async (word: string) => {
    await Promise.all(workers.map((w) => w.writer.write(new TextEncoder().encode(word + "\n"))));
  };
  try {
    await expect("ready");
    const t0 = performance.now();
    await send("go");
    await expect("held");
    await send("release");
    const reports: WorkerReport[] = [];
    for (const w of workers) reports.push(JSON.parse((await w.out.next()).value as string));
    const wall = (performance.now() - t0) / 1000;
    const ports = reports.flatMap((r) => r.ports);
    const lat = reports.flatMap((r) => r.lat).sort((a, b) => a - b);
    const firstError = reports.find((r) => r.firstError)?.firstError;
    if (firstError) console.error(`courier bench: first allocation error: ${firstError}`);
    return {
      impl: config.floor ? `${config.floor}-floor` : "courier",
      procs: config.procs,
      per_proc: config.perProc,
      wall_s: Math.round(wall * 1000) / 1000,
      // Allocations and releases: a floor's operations count as allocations only.
      ops_per_s: Math.round(((config.floor ? lat.length : 2 * ports.length) / wall) * 10) / 10,
      alloc_p50_ms: quantile(lat, 0.5),
      alloc_p99_ms: quantile(lat, 0.99),
      duplicates: ports.length - new Set(ports).size,
      errors: reports.reduce((sum, r) => sum + r.errors, 0),
    };
  } finally {
    for (const w of workers) {
      await w.writer.close().catch(() => {});
      await w.child.status;
    }
    await echo?.close();
    if (!config.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Where the seed's benchmark lives: `../shared/peers/aidb_bench.py` beside the repository. */
export function peerBenchPath(): string {
  return join(dirname(dirname(SCRIPT)), "..", "shared", "peers", "aidb_bench.py");
}

/**
 * Runs the seed's benchmark (`python3 aidb_bench.py`) on the same workload,
 * or returns a reason it cannot be run.
 */
export async function runPeerBench(config: BenchConfig): Promise<BenchResult | string> {
  const path = peerBenchPath();
  try {
    await Deno.stat(path);
  } catch {
    return `seed benchmark not found at ${path}`;
  }
  const dir = config.dir ?? await Deno.makeTempDir({ prefix: "aidb-bench-" });
  try {
    const output = await new Deno.Command("python3", {
      args: [path, "--procs", String(config.procs), ...workloadFlags(config), "--dir", dir],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout).trim().split("\n").at(-1) ?? "";
    if (!output.success) {
      const err = new TextDecoder().decode(output.stderr).trim().split("\n").at(-1);
      return `seed benchmark failed (exit ${output.code}): ${err}`;
    }
    return JSON.parse(text) as BenchResult;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return "python3 not found: cannot run the seed benchmark";
    }
    return `seed benchmark failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    if (!config.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(1)}x` : "n/a";
}

async function compare(base: BenchConfig): Promise<number> {
  const workloads = [{ procs: 8, perProc: 25 }, { procs: 32, perProc: 10 }];
  const rows: [string, BenchResult][] = [];
  let peerMissing: string | null = null;
  let ok = true;
  for (const w of workloads) {
    const config = { ...base, ...w };
    if (!peerMissing) {
      const peer = await runPeerBench(config);
      if (typeof peer === "string") {
        peerMissing = peer;
        console.error(`${peer}; running courier only.`);
      } else {
        console.log(JSON.stringify(peer));
        rows.push([`${w.procs}x${w.perProc}`, peer]);
      }
    }
    for (const floor of FLOORS) {
      const result = await runCourierBench({ ...config, floor });
      console.log(JSON.stringify(result));
      rows.push([`${w.procs}x${w.perProc}`, result]);
    }
    const ours = await runCourierBench(config);
    console.log(JSON.stringify(ours));
    rows.push([`${w.procs}x${w.perProc}`, ours]);
    ok &&= ours.duplicates === 0 && ours.errors === 0;
  }
  console.log("");
  const header = ["workload", "impl", "p50 ms", "p99 ms", "ops/s", "wall s", "dup", "err"];
  const table = [
    header,
    ...rows.map(([name, r]) => [
      name,
      r.impl,
      String(r.alloc_p50_ms),
      String(r.alloc_p99_ms),
      String(r.ops_per_s),
      String(r.wall_s),
      String(r.duplicates),
      String(r.errors),
    ]),
  ];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join("  "));
  console.log("");
  for (const w of workloads) {
    const name = `${w.procs}x${w.perProc}`;
    const find = (impl: string) => rows.find(([n, r]) => n === name && r.impl === impl)?.[1];
    const seed = find("aidb-seed");
    const ours = find("courier");
    if (!ours) continue;
    const parts: string[] = [];
    if (seed) {
      parts.push(
        `p99 ${ratio(seed.alloc_p99_ms, ours.alloc_p99_ms)} lower than the seed's`,
        `throughput ${ratio(ours.ops_per_s, seed.ops_per_s)} the seed's`,
      );
    }
    const floors = FLOORS.map((kind) => find(`${kind}-floor`)).filter((r) => r !== undefined);
    for (const floor of floors) {
      parts.push(`p99 ${ratio(ours.alloc_p99_ms, floor.alloc_p99_ms)} the ${floor.impl}'s`);
    }
    console.log(`${name}: ${parts.join(", ")}`);
    if (floors.length > 0) {
      // The lowest floor bounds every design: each process waits for its turn or its answer.
      const best = Math.min(...floors.map((r) => r.alloc_p99_ms));
      console.log(
        `${name}: with no allocation at all, p99 on this machine is ` +
          floors.map((r) => `${r.alloc_p99_ms} ms (${r.impl})`).join(" and ") +
          (best >= 10 ? ": a single-digit p99 was out of reach in this run" : ""),
      );
    }
  }
  if (peerMissing) console.log(`(no seed comparison: ${peerMissing})`);
  return ok ? 0 : 1;
}

/** The `--floor` value, checked. */
function floorKind(value: string | undefined): FloorKind | undefined {
  if (value === undefined) return undefined;
  if (!(FLOORS as readonly string[]).includes(value)) {
    throw new Error(`--floor must be one of ${FLOORS.join(", ")}, not ${JSON.stringify(value)}`);
  }
  return value as FloorKind;
}

async function cli(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      procs: { type: "string", default: "8" },
      "per-proc": { type: "string", default: "25" },
      start: { type: "string", default: "20000" },
      size: { type: "string", default: "2000" },
      dir: { type: "string" },
      worker: { type: "boolean" },
      compare: { type: "boolean" },
      floor: { type: "string" },
    },
    strict: true,
  });
  const number = (name: string, value: string, min: number, max: number): number => {
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) {
      throw new Error(`--${name} must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
  const config: BenchConfig = {
    procs: number("procs", values.procs, 1, 1024),
    perProc: number("per-proc", values["per-proc"], 1, 65535),
    start: number("start", values.start, 1, 65535),
    size: number("size", values.size, 1, 65535),
    dir: values.dir,
    floor: floorKind(values.floor),
  };
  if (config.start + config.size - 1 > 65535) throw new Error("--start + --size goes past 65535");
  if (values.worker) {
    await worker(config);
    return 0;
  }
  if (values.compare) return await compare(config);
  const result = await runCourierBench(config);
  console.log(JSON.stringify(result));
  return result.duplicates === 0 && result.errors === 0 ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await cli(Deno.args));
  } catch (error) {
    console.error(`bench_ports: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(64);
  }
}
