/**
 * Mailbox at scale: a daemon on a mailbox of N mails (default 100,000:
 * 90% done, 9% new, 1% dead). Measures, and prints as one JSON document:
 *
 * - start without the index cache: `courier start` until ready, until
 *   `/health` answers, until every mail is indexed;
 * - start with the index cache (written by the clean stop in between);
 * - `GET /api/v1/messages?status=new&limit=10` and `claim-next` latency
 *   (each claimed mail is completed, untimed);
 * - `/health` latency alone and while 4 clients (in a worker) list in a
 *   loop, `?status=new&limit=10` (what agents poll) and `?limit=100`;
 * - how soon a waiting `claim-next` answers after a release;
 * - the daemon's RSS after the load and once idle for `--rest-seconds`
 *   (V8 returns memory when idle), and its peak.
 *
 *   deno task bench:mailbox [--mails 100000] [--samples 200] [--seconds 5]
 *                           [--rest-seconds 40] [--main path/to/main.ts] [--port N] [--keep]
 *
 * `--main` runs another checkout's courier (to measure a baseline); what it
 * does not support is reported as `null`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { allocatePort } from "../lib/ports/mod.ts";
import { writeMailboxFixture } from "./mailbox_fixture.ts";
import { cleanUp, mainUrl, runCourier, startCourier } from "./run_courier.ts";

const LEASE_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/courier-bench-port-leases`;

interface Stats {
  /** Samples. */
  n: number;
  /** Median, ms. */
  p50: number;
  /** 90th percentile, ms. */
  p90: number;
  /** 99th percentile, ms. */
  p99: number;
}

function stats(samples: number[]): Stats {
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number) =>
    sorted.length === 0
      ? 0
      : Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] * 100) /
        100;
  return { n: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

function rss(pid: number): { rss_mb: number; peak_mb: number } | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return {
      rss_mb: Math.round(kb("VmRSS") / 102.4) / 10,
      peak_mb: Math.round(kb("VmHWM") / 102.4) / 10,
    };
  } catch {
    return null;
  }
}

async function get(url: string): Promise<Response> {
  return await fetch(url);
}

async function timed(fn: () => Promise<boolean>): Promise<number | null> {
  const t0 = performance.now();
  return (await fn()) ? performance.now() - t0 : null;
}

/** Starts the daemon and measures readiness, health and indexing. */
async function startMeasured(main: string, home: string, port: number, url: string) {
  const t0 = performance.now();
  const pid = await startCourier(main, home, port, ["--timeout", "600"]);
  const readyMs = performance.now() - t0;
  let healthyMs = 0, indexedMs = 0;
  for (;;) {
    const response = await get(`${url}/health`).catch(() => null);
    if (response?.ok) {
      const health = await response.json();
      if (!healthyMs) healthyMs = performance.now() - t0;
      if (!health.indexing) {
        indexedMs = performance.now() - t0;
        break;
      }
    } else await response?.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    pid,
    result: {
      start_ready_ms: Math.round(readyMs),
      start_to_healthy_ms: Math.round(healthyMs),
      start_to_indexed_ms: Math.round(indexedMs),
      within_default_start_timeout: readyMs < 10_000,
      memory_after_index: rss(pid),
    },
  };
}

async function listLatency(url: string, samples: number): Promise<Stats> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = await timed(async () => {
      const response = await get(`${url}/api/v1/messages?status=new&limit=10`);
      await response.arrayBuffer();
      return response.ok;
    });
    if (t !== null) times.push(t);
  }
  return stats(times);
}

async function claimNextLatency(url: string, samples: number): Promise<Stats | null> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    let id = "";
    const t = await timed(async () => {
      const response = await fetch(`${url}/api/v1/messages/claim-next`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ agent_id: "bench", wait_s: 0 }),
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        return false;
      }
      id = (await response.json()).id;
      return true;
    });
    if (t === null) return times.length ? stats(times) : null;
    times.push(t);
    const done = await fetch(`${url}/api/v1/messages/${id}/complete`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_id: "bench" }),
    });
    await done.body?.cancel();
  }
  return stats(times);
}

/** The listing clients, in a worker so they do not share the measuring event loop. */
const LISTER = `
self.onmessage = async (e) => {
  const { url, seconds, clients } = e.data;
  const end = performance.now() + seconds * 1000;
  let lists = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (performance.now() < end) {
      const response = await fetch(url);
      await response.arrayBuffer();
      lists++;
    }
  }));
  self.postMessage(lists);
};`;

async function healthLatency(url: string, seconds: number, list: string | null) {
  let worker: Worker | null = null;
  let listed: Promise<number> = Promise.resolve(0);
  if (list !== null) {
    const code = URL.createObjectURL(new Blob([LISTER], { type: "text/javascript" }));
    worker = new Worker(code, { type: "module" });
    listed = new Promise((resolve) => (worker!.onmessage = (e) => resolve(e.data as number)));
    worker.postMessage({ url: `${url}${list}`, seconds, clients: 4 });
  }
  const end = performance.now() + seconds * 1000;
  const times: number[] = [];
  while (performance.now() < end) {
    const t = await timed(async () => {
      const response = await get(`${url}/health`);
      await response.arrayBuffer();
      return response.ok;
    });
    if (t !== null) times.push(t);
  }
  const lists = await listed;
  worker?.terminate();
  return { health: stats(times), lists_per_second: Math.round(lists / seconds) };
}

/**
 * How soon a waiting claim-next answers once a mail becomes claimable: an
 * agent holds a mail, another waits, the first releases it; the time from
 * sending the release to the waiter's answer.
 */
async function wakeLatency(url: string, samples: number): Promise<Stats | null> {
  const post = (path: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  // A mail alone in its conversation, so a waiter filtered on it can get only that one.
  const sent = await post("/api/v1/inbound/bench", {
    session_id: "wake-bench",
    sender: { id: "bench" },
    text: "wake me",
  });
  await sent.body?.cancel();
  const claimOne = { agent_id: "holder-0", session_id: "wake-bench", wait_s: 30 };
  const first = await post("/api/v1/messages/claim-next", claimOne);
  if (first.status !== 200) {
    await first.body?.cancel();
    return null;
  }
  const id = (await first.json()).id as string;
  const times: number[] = [];
  for (let i = 1; i <= samples; i++) {
    const waiting = post("/api/v1/messages/claim-next", {
      agent_id: `holder-${i}`,
      session_id: "wake-bench",
      wait_s: 30,
    }).then(async (response) => {
      const arrived = performance.now();
      const body = response.status === 200 ? await response.json() : null;
      return { arrived, id: body?.id as string | undefined };
    });
    await new Promise((resolve) => setTimeout(resolve, 20)); // let it start waiting
    const t0 = performance.now();
    const released = await post(`/api/v1/messages/${id}/release`, { agent_id: `holder-${i - 1}` });
    await released.body?.cancel();
    const woke = await waiting;
    if (woke.id !== id) break;
    times.push(woke.arrived - t0);
  }
  return times.length ? stats(times) : null;
}

/** The daemon's RSS once it has been idle for `seconds` (V8 gives memory back when idle). */
async function restingMemory(pid: number, seconds: number) {
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return rss(pid);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      mails: { type: "string", default: "100000" },
      samples: { type: "string", default: "200" },
      seconds: { type: "string", default: "5" },
      main: { type: "string" },
      port: { type: "string" },
      keep: { type: "boolean", default: false },
      "rest-seconds": { type: "string", default: "40" },
    },
  });
  const mails = Number(values.mails), samples = Number(values.samples);
  const seconds = Number(values.seconds);
  const main = mainUrl(values.main);
  const port = values.port
    ? Number(values.port)
    : await allocatePort({ dir: LEASE_DIR, label: "benchmark" });
  const url = `http://127.0.0.1:${port}`;
  const home = await Deno.makeTempDir({ prefix: "courier-bench-mailbox-" });
  let pid: number | null = null;
  try {
    const fixture = await writeMailboxFixture(home, { mails });
    const cold = await startMeasured(main, home, port, url);
    pid = cold.pid;
    let t0 = performance.now();
    const stopped = await runCourier(main, ["stop", "--home", home]);
    const stopMs = Math.round(performance.now() - t0);
    pid = null;
    if (stopped.code !== 0) throw new Error(`courier stop failed: ${stopped.stderr}`);
    const warm = await startMeasured(main, home, port, url);
    pid = warm.pid;
    const list = await listLatency(url, samples);
    const claimNext = await claimNextLatency(url, samples);
    const wake = await wakeLatency(url, Math.min(50, samples));
    const idle = await healthLatency(url, Math.min(2, seconds), null);
    const loaded = await healthLatency(url, seconds, "/api/v1/messages?status=new&limit=10");
    const heavy = await healthLatency(url, seconds, "/api/v1/messages?limit=100");
    const memory = rss(warm.pid);
    const resting = await restingMemory(warm.pid, Number(values["rest-seconds"]));
    t0 = performance.now();
    await runCourier(main, ["stop", "--home", home]);
    const stopWarmMs = Math.round(performance.now() - t0);
    pid = null;
    const report = {
      machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno },
      courier: main,
      mailbox: { mails, ...fixture.counts, written_in_ms: fixture.ms },
      without_index_cache: { ...cold.result, stop_ms: stopMs },
      with_index_cache: { ...warm.result, stop_ms: stopWarmMs },
      list_new_limit_10_ms: list,
      claim_next_ms: claimNext,
      claim_next_wake_after_release_ms: wake,
      health_ms_idle: idle.health,
      health_ms_while_4_clients_list_new_10: loaded.health,
      lists_per_second_meanwhile: loaded.lists_per_second,
      health_ms_while_4_clients_list_100: heavy.health,
      lists_of_100_per_second_meanwhile: heavy.lists_per_second,
      memory_after_load: memory,
      memory_at_rest: resting,
      targets: {
        healthy_with_cache_under_2000_ms: warm.result.start_to_healthy_ms < 2000,
        ready_without_cache_within_default_timeout: cold.result.within_default_start_timeout,
        list_median_under_5_ms: list.p50 < 5,
        claim_next_median_under_5_ms: claimNext !== null && claimNext.p50 < 5,
        health_median_under_2_ms_while_listing: loaded.health.p50 < 2,
        wake_median_under_50_ms: wake !== null && wake.p50 < 50,
        rss_at_rest_under_200_mb: resting !== null && resting.rss_mb < 200,
      },
    };
    console.log(JSON.stringify(report, null, 2));
    return 0;
  } finally {
    await cleanUp(pid, home, values.keep);
  }
}

if (import.meta.main) Deno.exit(await main());
