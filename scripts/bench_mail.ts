/**
 * Mail service benchmark: acknowledged inbound messages per second with
 * concurrent senders, and their latency, compared with `GET /health` on the
 * same daemon (the HTTP ceiling), then a loss check: the daemon is stopped
 * (flushing its debounce buckets) and every acknowledged message id is
 * looked up in the mail files. Prints one JSON document.
 *
 *   deno task bench:mail [--seconds 10] [--senders 16] [--sessions 64]
 *                        [--warmup 1] [--port N] [--keep]
 *
 * It starts its own daemon (`courier start`) in a temporary home with the
 * default debounce settings, and stops it afterwards.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { mailboxLayout, parseMail } from "../lib/mail/mod.ts";
import { allocatePort } from "../lib/ports/mod.ts";
import { runCourier } from "./courier_cli.ts";

const LEASE_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/courier-bench-port-leases`;

interface PhaseResult {
  /** Requests answered with the expected status. */
  ok: number;
  /** Requests that failed or got another status. */
  errors: number;
  /** Measured seconds. */
  seconds: number;
  /** `ok` per second. */
  per_second: number;
  /** Latency percentiles of the good requests, ms. */
  latency_ms: { p50: number; p90: number; p99: number; max: number };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, index)] * 100) / 100;
}

/**
 * Runs `senders` loops that each send one request at a time for
 * `warmup + seconds`; only requests started after the warm-up count.
 */
async function load(
  senders: number,
  options: { seconds: number; warmup: number },
  send: (sender: number, n: number, counted: boolean) => Promise<boolean>,
): Promise<PhaseResult> {
  const start = performance.now();
  const measureFrom = start + options.warmup * 1000;
  const end = measureFrom + options.seconds * 1000;
  const latencies: number[] = [];
  let ok = 0, errors = 0;
  await Promise.all(Array.from({ length: senders }, async (_, sender) => {
    for (let n = 0;; n++) {
      const t0 = performance.now();
      if (t0 >= end) return;
      const counted = t0 >= measureFrom;
      let good = false;
      try {
        good = await send(sender, n, counted);
      } catch {
        good = false;
      }
      if (!counted) continue;
      if (good) {
        ok++;
        latencies.push(performance.now() - t0);
      } else errors++;
    }
  }));
  const sorted = Float64Array.from(latencies).sort();
  return {
    ok,
    errors,
    seconds: options.seconds,
    per_second: Math.round(ok / options.seconds),
    latency_ms: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: percentile(sorted, 100),
    },
  };
}

/** A port leased for this benchmark process (held until it exits). */
function freePort(): Promise<number> {
  return allocatePort({ dir: LEASE_DIR, label: "benchmark" });
}

async function storedMessageIds(
  home: string,
): Promise<{ ids: Map<string, number>; mails: number }> {
  const ids = new Map<string, number>();
  let mails = 0;
  const layout = mailboxLayout(home);
  for (const root of [layout.inboundDir, layout.archiveDir, layout.deadletterDir]) {
    let providers: Deno.DirEntry[] = [];
    try {
      providers = await Array.fromAsync(Deno.readDir(root));
    } catch {
      continue;
    }
    for (const provider of providers) {
      for await (const file of Deno.readDir(join(root, provider.name))) {
        if (!file.name.endsWith(".md") || file.name.startsWith(".")) continue;
        const doc = parseMail(await Deno.readTextFile(join(root, provider.name, file.name)));
        mails++;
        for (const m of doc.frontMatter.messages) {
          if (m.message_id) ids.set(m.message_id, (ids.get(m.message_id) ?? 0) + 1);
        }
      }
    }
  }
  return { ids, mails };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "10" },
      senders: { type: "string", default: "16" },
      sessions: { type: "string", default: "64" },
      warmup: { type: "string", default: "1" },
      port: { type: "string" },
      keep: { type: "boolean", default: false },
    },
  });
  const seconds = Number(values.seconds), senders = Number(values.senders);
  const sessions = Number(values.sessions), warmup = Number(values.warmup);
  const port = values.port ? Number(values.port) : await freePort();
  const home = await Deno.makeTempDir({ prefix: "courier-bench-" });
  const url = `http://127.0.0.1:${port}`;
  const started = await runCourier(["start", "--home", home, "--port", String(port), "--json"]);
  if (started.code !== 0) {
    console.error(`courier start failed (exit ${started.code}): ${started.stderr}`);
    return 1;
  }
  const pid = JSON.parse(started.stdout).pid as number;
  let stoppedCleanly = false;
  try {
    const acked = new Set<string>();
    const inbound = await load(senders, { seconds, warmup }, async (sender, n) => {
      const id = `s${sender}-${n}`;
      const response = await fetch(`${url}/api/v1/inbound/bench`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          session_id: `session-${(sender * 7919 + n) % sessions}`,
          session_type: "group",
          sender: { id: `user-${sender}`, name: `Sender ${sender}` },
          text: `benchmark message ${n} from sender ${sender}: the quick brown fox`,
          message_id: id,
        }),
      });
      await response.body?.cancel();
      if (response.status !== 202) return false;
      acked.add(id); // warm-up messages count for the loss check too
      return true;
    });
    const health = await load(senders, { seconds, warmup }, async () => {
      const response = await fetch(`${url}/health`);
      await response.body?.cancel();
      return response.status === 200;
    });
    const metrics = (await (await fetch(`${url}/health`)).json()).metrics;
    const stopped = await runCourier(["stop", "--home", home]);
    stoppedCleanly = stopped.code === 0;
    const { ids, mails } = await storedMessageIds(home);
    const lost = [...acked].filter((id) => !ids.has(id)).length;
    const duplicated = [...ids.values()].filter((n) => n > 1).length;
    const report = {
      machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno },
      config: { seconds, warmup_s: warmup, senders, sessions, debounce: "defaults (5 s / 30 s)" },
      inbound,
      health,
      inbound_vs_health: Math.round((inbound.per_second / Math.max(1, health.per_second)) * 100) /
        100,
      loss_check: {
        acknowledged: acked.size,
        stored: ids.size,
        lost,
        stored_twice: duplicated,
        mails,
        stopped_cleanly: stoppedCleanly,
      },
      daemon_metrics_before_stop: metrics,
      target: { acked_per_second: 2000, met: inbound.per_second >= 2000 && lost === 0 },
    };
    console.log(JSON.stringify(report, null, 2));
    return lost === 0 && duplicated === 0 ? 0 : 1;
  } finally {
    if (!stoppedCleanly) {
      try {
        Deno.kill(pid, "SIGTERM"); // the daemon this script started
      } catch {
        // already gone
      }
    }
    if (!values.keep) await Deno.remove(home, { recursive: true }).catch(() => {});
    else console.error(`home kept: ${home}`);
  }
}

if (import.meta.main) Deno.exit(await main());
