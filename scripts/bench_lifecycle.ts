/**
 * Lifecycle benchmark: median wall time of `courier start` (until healthy),
 * `courier status` and `courier stop` over N rounds, in `deno run` mode,
 * each as a real CLI process in a temporary home on a free port.
 *
 * Peer, in the same run: the seed's way of starting (spawn the daemon, then
 * poll `/health` every 500 ms until it answers), and the floor every CLI
 * call pays (`courier --version`: process start-up alone). Prints one JSON
 * line with the medians and the ratios.
 *
 * Usage: deno task bench:lifecycle [--rounds 10]
 *
 * @module
 */
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { selfCommand, sourceRunMode } from "../lib/proc/mod.ts";
import { allocatePort } from "../lib/ports/mod.ts";

const LEASE_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/courier-bench-port-leases`;

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "10" } },
});
const rounds = Number(values.rounds);
const mode = sourceRunMode(new URL("../main.ts", import.meta.url).href);

/** A port leased for this benchmark process (held until it exits). */
function freePort(): Promise<number> {
  return allocatePort({ dir: LEASE_DIR, label: "benchmark" });
}

async function timed(args: string[], expect: number[]): Promise<number> {
  const command = selfCommand(args, { mode });
  const began = performance.now();
  const out = await new Deno.Command(command.command, {
    args: command.args,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  const ms = performance.now() - began;
  if (!expect.includes(out.code)) {
    throw new Error(
      `${args.join(" ")} exited ${out.code}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return ms;
}

/** The seed's start: spawn the daemon, then poll /health every 500 ms. */
async function seedStyleStart(home: string, port: number): Promise<number> {
  const command = selfCommand(["daemon", "--home", home, "--port", String(port)], { mode });
  const began = performance.now();
  const child = spawn(command.command, command.args, { detached: true, stdio: "ignore" });
  child.unref();
  while (true) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.body?.cancel().then(() => r.ok),
      () => false,
    );
    if (ok) return performance.now() - began;
    if (performance.now() - began > 15000) throw new Error("seed-style start timed out");
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.floor(s.length / 2)] * 10) / 10;
};

const samples = {
  start: [] as number[],
  status: [] as number[],
  stop: [] as number[],
  seed: [] as number[],
  floor: [] as number[],
};
const root = await Deno.makeTempDir({ prefix: "courier-bench-" });
try {
  for (let i = 0; i < rounds; i++) {
    const home = `${root}/h${i}`;
    samples.floor.push(await timed(["--version"], [0]));
    samples.start.push(
      await timed(["start", "--home", home, "--port", String(await freePort())], [0]),
    );
    samples.status.push(await timed(["status", "--home", home], [0]));
    samples.stop.push(await timed(["stop", "--home", home], [0]));
    const seedHome = `${root}/s${i}`;
    samples.seed.push(await seedStyleStart(seedHome, await freePort()));
    await timed(["stop", "--home", seedHome], [0]);
  }
} finally {
  await Deno.remove(root, { recursive: true }).catch(() => {});
}
const result = {
  impl: "courier",
  mode: "deno run",
  rounds,
  start_median_ms: median(samples.start),
  status_median_ms: median(samples.status),
  stop_median_ms: median(samples.stop),
  peer_seed_poll_start_median_ms: median(samples.seed),
  process_floor_median_ms: median(samples.floor),
  start_speedup_vs_seed_poll: Math.round((median(samples.seed) / median(samples.start)) * 100) /
    100,
  targets: { start_ms: 250, status_ms: 80 },
};
console.log(JSON.stringify(result));
