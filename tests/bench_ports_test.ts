/**
 * scripts/bench_ports.ts keeps the seed benchmark's contract: its flags, and
 * one JSON line with the peer's fields, for courier and for both floors.
 * Nothing here is timed (the numbers belong to `deno task bench:ports`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PERMISSION_FLAGS } from "../lib/proc/mod.ts";
import { TEST_LEASE_DIR, TEST_PORT_RANGE } from "./helpers/ports.ts";

const SCRIPT = new URL("../scripts/bench_ports.ts", import.meta.url).pathname;

/** The fields of `../shared/peers/aidb_bench.py`'s result line, in its order. */
const PEER_FIELDS = [
  "impl",
  "procs",
  "per_proc",
  "wall_s",
  "ops_per_s",
  "alloc_p50_ms",
  "alloc_p99_ms",
  "duplicates",
  "errors",
];

async function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSION_FLAGS, SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

Deno.test("bench_ports prints the peer's result line for courier and both floors", async () => {
  const range = ["--start", String(TEST_PORT_RANGE.start)];
  const size = ["--size", String(TEST_PORT_RANGE.end - TEST_PORT_RANGE.start + 1)];
  const runs: [string, string[]][] = [
    // Courier's workers lease from the tests' own registry, so they never take a test's port.
    ["courier", ["--dir", TEST_LEASE_DIR, ...range, ...size]],
    ["lock-floor", ["--floor", "lock"]],
    ["echo-floor", ["--floor", "echo"]],
  ];
  for (const [impl, args] of runs) {
    const result = await bench(["--procs", "2", "--per-proc", "3", ...args]);
    assert.equal(result.code, 0, `${impl}: ${result.stderr}`);
    const lines = result.stdout.trim().split("\n");
    assert.equal(lines.length, 1, `${impl} printed: ${result.stdout}`);
    const line = JSON.parse(lines[0]);
    assert.deepEqual(Object.keys(line), PEER_FIELDS);
    assert.equal(line.impl, impl);
    assert.equal(line.procs, 2);
    assert.equal(line.per_proc, 3);
    assert.equal(line.duplicates, 0);
    assert.equal(line.errors, 0);
    for (const field of ["wall_s", "ops_per_s", "alloc_p50_ms", "alloc_p99_ms"]) {
      assert.ok(
        Number.isFinite(line[field]) && line[field] >= 0,
        `${impl}.${field}: ${line[field]}`,
      );
    }
  }
});

Deno.test("bench_ports refuses an unknown floor and a bad count as usage errors", async () => {
  const floor = await bench(["--floor", "spin"]);
  assert.equal(floor.code, 64);
  assert.match(floor.stderr, /--floor must be one of lock, echo, not "spin"/);
  const procs = await bench(["--procs", "0"]);
  assert.equal(procs.code, 64);
  assert.match(procs.stderr, /--procs must be a whole number from 1 to 1024/);
});

Deno.test("bench_ports --floor echo runs in a --dir where a killed run left its socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "courier-bench-test-" });
  try {
    // A run killed with SIGKILL leaves its socket file: a process listening there, then killed.
    const path = join(dir, "echo.sock");
    const listener = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const listener = Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} });
         console.log("up");
         await listener.accept(); // alive until killed`,
      ],
      stdout: "piped",
    }).spawn();
    await listener.stdout.pipeTo(new WritableStream({ write: () => listener.kill("SIGKILL") }));
    await listener.status;
    assert.equal(Deno.lstatSync(path).isSocket, true);
    const result = await bench([
      "--floor",
      "echo",
      "--procs",
      "1",
      "--per-proc",
      "1",
      "--dir",
      dir,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).impl, "echo-floor");
    assert.deepEqual([...Deno.readDirSync(dir)], []); // and nothing is left behind
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
