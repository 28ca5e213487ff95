/**
 * Start-up benchmark: the wall time of courier's everyday commands, each a
 * real process, as a ratio to the runtime's own floor measured in the same
 * run: a bare `deno run -A` of an empty module (or, for a compiled binary,
 * a compiled empty module).
 *
 * Every round runs each case once, interleaved (so a busy spell of the
 * machine hits every case alike), and the medians of all rounds are
 * compared:
 *
 * | case                      | what is timed                                        | target |
 * | ------------------------- | ---------------------------------------------------- | ------ |
 * | `--version`               | `courier --version`                                  | ≤ 1.3× |
 * | `status`                  | `courier status` of a running daemon                 | ≤ 1.5× |
 * | `start --if-not-running`  | the same when the daemon already runs (a no-op)      | ≤ 1.5× |
 * | `start`                   | `courier start` in a new home, until `/health` is 200 | ≤ 4×   |
 * | `stop`                    | `courier stop` of that daemon, until it has exited   | ≤ 2.5× |
 *
 * (`stop` is timed once that daemon's services run: it signals ready before
 * they load, and a stop that comes meanwhile first waits for them.)
 *
 * In `deno run` mode it also times an empty module run the way courier is
 * run (its permission flags and `deno.json`): the floor of any courier
 * command in that mode, shown for reference.
 *
 * Usage:
 *
 *     deno task bench:lifecycle [--rounds 15] [--json]
 *     deno task bench:lifecycle --binary dist/courier [--empty-binary PATH] [--json]
 *
 * With `--binary`, courier is that compiled binary and the floor is a
 * compiled empty module: `--empty-binary`, or one this script builds with
 * `deno compile` (which needs the `denort` download). Prints a table, or
 * with `--json` one JSON document. Exits 0 whether or not targets are met
 * (it measures; it does not judge a noisy machine), 1 when a command fails.
 *
 * @module
 */
import { parseArgs } from "../lib/cli/parse_args.ts";
import { httpGet } from "../lib/net/mod.ts";
import { allocatePort } from "../lib/ports/mod.ts";
import { type CommandLine, selfCommand, sourceRunMode } from "../lib/proc/mod.ts";

const LEASE_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/courier-bench-port-leases`;
const decoder = new TextDecoder();

/** One timed command line of a round. */
interface Case {
  /** Key in the JSON output. */
  key: string;
  /** Label in the table. */
  label: string;
  /** Target ratio to the floor, if any. */
  target?: number;
  /** The command line of round `round`. */
  command(round: number): Promise<CommandLine> | CommandLine;
  /** Exit codes that count as success. */
  expect?: number[];
  /** Runs before the command, untimed. */
  before?(round: number): Promise<void>;
}

/** One case's result. */
export interface CaseResult {
  /** What was timed. */
  label: string;
  /** Median wall time in ms. */
  median_ms: number;
  /** Median divided by the floor's median. */
  ratio: number;
  /** The target ratio, or `null` for reference rows. */
  target: number | null;
  /** Whether the ratio is within the target (`null` without one). */
  met: boolean | null;
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const value = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return Math.round(value * 10) / 10;
}

async function timed(line: CommandLine, expect: number[]): Promise<number> {
  const began = performance.now();
  const out = await new Deno.Command(line.command, {
    args: line.args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - began;
  if (!expect.includes(out.code)) {
    throw new Error(
      `${[line.command, ...line.args].join(" ")} exited ${out.code}: ${decoder.decode(out.stderr)}`,
    );
  }
  return ms;
}

/**
 * Waits until the daemon of `home` reports every hosted service running: it
 * signals ready before they load, and a stop that comes while they load
 * waits for them (the stop of a settled daemon is what is timed).
 */
async function servicesRunning(home: string): Promise<void> {
  const state = JSON.parse(await Deno.readTextFile(`${home}/run/courier.json`));
  for (let i = 0; i < 1000; i++) {
    // Not fetch: it refuses ports on the Fetch standard's list of bad ports (10080 is one).
    const health = await httpGet(`${state.api_url}/health`).then(
      (r) => JSON.parse(r.body),
      () => null,
    );
    const states = Object.values(health?.services ?? {}) as { state: string }[];
    if (states.every((s) => s.state !== "starting" && s.state !== "waiting")) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the services of ${home} did not start`);
}

/**
 * What `status` and `start` cannot do without, as bare modules: one GET of
 * the running daemon's `/health`; one process that starts another, which
 * binds a port and reports on a pipe (two process starts and a bind).
 */
async function floors(root: string, daemonPort: string, freePort: string): Promise<Case[]> {
  await Deno.writeTextFile(
    `${root}/get.ts`,
    `const c = await Deno.connect({ hostname: "127.0.0.1", port: ${daemonPort} });
await c.write(new TextEncoder().encode("GET /health HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n"));
const buffer = new Uint8Array(65536);
while ((await c.read(buffer)) !== null);
c.close();
`,
  );
  await Deno.writeTextFile(
    `${root}/child.ts`,
    `const listener = Deno.listen({ hostname: "127.0.0.1", port: ${freePort} });
Deno.stdout.writeSync(new TextEncoder().encode("ready\\n"));
listener.close();
`,
  );
  await Deno.writeTextFile(
    `${root}/parent.ts`,
    `const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "${root}/child.ts"], detached: true, stdin: "null", stdout: "piped", stderr: "null",
}).spawn();
child.unref();
const reader = child.stdout.getReader();
let text = "";
while (!text.includes("\\n")) {
  const { value, done } = await reader.read();
  if (done) break;
  text += new TextDecoder().decode(value);
}
Deno.exit(text.startsWith("ready") ? 0 : 1);
`,
  );
  const run = (module: string): CommandLine => ({
    command: Deno.execPath(),
    args: ["run", "-A", `${root}/${module}`],
  });
  return [
    {
      key: "floor_get",
      label: "empty module + one GET /health of the daemon",
      command: () => run("get.ts"),
    },
    {
      key: "floor_two_processes",
      label: "a process that starts one that binds and reports",
      command: () => run("parent.ts"),
    },
  ];
}

async function compileEmpty(dir: string): Promise<string> {
  const source = `${dir}/empty.ts`;
  const output = `${dir}/empty`;
  await Deno.writeTextFile(source, "");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["compile", "--quiet", "--output", output, source],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno compile of the empty module failed: ${decoder.decode(out.stderr)}`);
  }
  return output;
}

async function main(): Promise<number> {
  const { values } = parseArgs(Deno.args, {
    options: {
      rounds: { type: "string" },
      json: { type: "boolean" },
      binary: { type: "string" },
      "empty-binary": { type: "string" },
    },
  });
  const rounds = Number(values.rounds ?? 15);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`bad --rounds ${values.rounds}`);
  const binary = values.binary as string | undefined;
  const root = await Deno.makeTempDir({ prefix: "courier-bench-" });
  const courier = (args: string[]): CommandLine =>
    binary ? { command: binary, args } : selfCommand(args, {
      mode: sourceRunMode(new URL("../main.ts", import.meta.url).href),
    });
  const port = () => allocatePort({ dir: LEASE_DIR, label: "benchmark" });
  const homes: string[] = [];
  try {
    await Deno.writeTextFile(`${root}/empty.ts`, "");
    let floor: CommandLine;
    const reference: Case[] = [];
    if (binary) {
      const empty = values["empty-binary"] as string | undefined ?? await compileEmpty(root);
      floor = { command: empty, args: [] };
    } else {
      floor = { command: Deno.execPath(), args: ["run", "-A", `${root}/empty.ts`] };
      // Courier's own way of running a module, minus courier: its flags and deno.json.
      const asCourier = selfCommand([], { mode: sourceRunMode(`file://${root}/empty.ts`) });
      const config = new URL("../deno.json", import.meta.url).pathname;
      const args = asCourier.args.map((a) => a === "--no-config" ? `--config=${config}` : a);
      reference.push({
        key: "floor_courier_flags",
        label: "empty module, courier's flags and deno.json",
        command: () => ({ command: asCourier.command, args }),
      });
    }
    const running = `${root}/running`;
    homes.push(running);
    const runningPort = String(await port());
    await timed(courier(["start", "--home", running, "--port", runningPort]), [0]);
    if (!binary) reference.push(...await floors(root, runningPort, String(await port())));
    const roundHomes: string[] = [];
    const cases: Case[] = [
      {
        key: "floor",
        label: binary ? "compiled empty module" : "empty module (deno run -A)",
        command: () => floor,
      },
      ...reference,
      {
        key: "version",
        label: "courier --version",
        target: 1.3,
        command: () => courier(["--version"]),
      },
      {
        key: "help",
        label: "courier --help (loads every command)",
        command: () => courier(["--help"]),
      },
      {
        key: "status",
        label: "courier status (running)",
        target: 1.5,
        command: () => courier(["status", "--home", running]),
      },
      {
        key: "start_if_not_running",
        label: "courier start --if-not-running (running)",
        target: 1.5,
        command: () =>
          courier(["start", "--if-not-running", "--home", running, "--port", runningPort]),
      },
      {
        key: "start",
        label: "courier start (until healthy)",
        target: 4,
        async command(round) {
          const home = `${root}/h${round}`;
          roundHomes[round] = home;
          homes.push(home);
          return courier(["start", "--home", home, "--port", String(await port())]);
        },
      },
      {
        key: "stop",
        label: "courier stop (services running)",
        target: 2.5,
        before: (round) => servicesRunning(roundHomes[round]),
        command: (round) => courier(["stop", "--home", roundHomes[round]]),
      },
    ];
    // Warm-up: compile caches and page cache, not measured.
    for (const c of cases.slice(0, 4)) await timed(await c.command(-1), [0]);
    const samples = new Map<string, number[]>(cases.map((c) => [c.key, []]));
    for (let round = 0; round < rounds; round++) {
      // The quick cases in a rotating order, then start and stop (stop needs the start).
      const quick = cases.slice(0, -2);
      const order = [...quick.slice(round % quick.length), ...quick.slice(0, round % quick.length)];
      for (const c of [...order, ...cases.slice(-2)]) {
        await c.before?.(round);
        samples.get(c.key)!.push(await timed(await c.command(round), c.expect ?? [0]));
      }
    }
    const floorMs = median(samples.get("floor")!);
    const results: Record<string, CaseResult> = {};
    for (const c of cases) {
      const ms = median(samples.get(c.key)!);
      const ratio = Math.round((ms / floorMs) * 100) / 100;
      results[c.key] = {
        label: c.label,
        median_ms: ms,
        ratio,
        target: c.target ?? null,
        met: c.target === undefined ? null : ratio <= c.target,
      };
    }
    const mode = binary ? "compiled binary" : "deno run";
    if (values.json) {
      console.log(JSON.stringify({ mode, rounds, deno: Deno.version.deno, results }, null, 2));
    } else {
      console.log(`courier start-up, ${mode} mode: medians of ${rounds} interleaved rounds`);
      console.log("");
      const width = Math.max(...cases.map((c) => c.label.length));
      console.log(`${"".padEnd(width)}  median    ratio  target`);
      for (const c of cases) {
        const r = results[c.key];
        const target = r.target === null ? "" : `≤ ${r.target}×  ${r.met ? "met" : "missed"}`;
        console.log(
          `${c.label.padEnd(width)}  ${`${r.median_ms.toFixed(1)} ms`.padStart(8)}  ` +
            `${`${r.ratio.toFixed(2)}×`.padStart(6)}  ${target}`.trimEnd(),
        );
      }
    }
    return 0;
  } finally {
    for (const home of homes) {
      await new Deno.Command(courier(["stop", "--home", home]).command, {
        args: courier(["stop", "--home", home]).args,
        stdout: "null",
        stderr: "null",
      }).output().catch(() => {});
    }
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    console.error(`bench:lifecycle: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
