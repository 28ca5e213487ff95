/**
 * The compiled binary (`scripts/compile.ts`).
 *
 * `deno compile` needs a `denort` runtime: `DENORT_BIN`, or a download from
 * dl.deno.land (cached in `$DENO_DIR/dl`). When one is available, the
 * binary is built into a temporary directory and run for real: `--version`,
 * `--help`, and start/status/stop of a daemon that must be the binary itself.
 * When none is, those tests are skipped with the exact reason, and a test
 * checks instead that the build names that cause and its fix. Everything
 * else about the build (its `deno compile` command line, permissions,
 * checksums, usage errors) is tested here regardless.
 */
import assert from "node:assert/strict";
import { lazyModules } from "../scripts/lazy_modules.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { COMMANDS } from "../lib/cli/commands/mod.ts";
import { PERMISSION_FLAGS, readCommandLine } from "../lib/proc/mod.ts";
import { findDaemons } from "../lib/service/mod.ts";
import { completionScript } from "../lib/completions/mod.ts";
import { VERSION } from "../lib/version/mod.ts";
import {
  CHECKSUMS,
  compileCommand,
  explainCompileFailure,
  run as runCompile,
  TARGETS,
  writeChecksums,
} from "../scripts/compile.ts";
import { withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const COMPILE_SCRIPT = join(ROOT, "scripts/compile.ts");
const SCRIPT_PERMISSIONS = ["--allow-read", "--allow-write", "--allow-run", "--allow-env"];
/** Bound on the probe compile, so a network that drops packets cannot hang the suite. */
const PROBE_TIMEOUT_MS = 30_000;
const decoder = new TextDecoder();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; clearEnv?: boolean; signal?: AbortSignal } = {},
): Promise<Run> {
  const output = await new Deno.Command(command, {
    args,
    env: { NO_COLOR: "1", ...options.env },
    clearEnv: options.clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: options.signal,
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The environment without `DENORT_BIN` (for runs that must download, or fail to). */
function envWithoutDenort(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  return env;
}

/**
 * Whether `deno compile` can get a denort here: `DENORT_BIN` names a file,
 * or a probe compile of a one-line program (which downloads denort, or finds
 * it cached) succeeds within {@link PROBE_TIMEOUT_MS}.
 */
async function probeDenort(): Promise<{ available: true } | { available: false; reason: string }> {
  const denortBin = Deno.env.get("DENORT_BIN");
  if (denortBin) {
    try {
      if ((await Deno.stat(denortBin)).isFile) return { available: true };
      return { available: false, reason: `denort unavailable: DENORT_BIN=${denortBin} is no file` };
    } catch {
      return {
        available: false,
        reason: `denort unavailable: DENORT_BIN=${denortBin} does not exist`,
      };
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "courier-denort-probe-" });
  try {
    await Deno.writeTextFile(join(dir, "probe.ts"), 'console.log("probe");\n');
    const result = await run(
      Deno.execPath(),
      ["compile", "--quiet", "--no-config", "--output", join(dir, "probe"), join(dir, "probe.ts")],
      { env: envWithoutDenort(), clearEnv: true, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) },
    );
    if (result.code === 0) return { available: true };
    const why = explainCompileFailure(result.stderr, {
      target: Deno.build.target,
      code: result.code,
    }).split("\n")[0];
    const refused = why.match(
      /could not download the denort runtime for \S+(?: \(\S+\))?: (.*)\.$/,
    );
    return {
      available: false,
      reason: refused
        ? `denort unavailable: DENORT_BIN unset and download from dl.deno.land refused (${
          refused[1]
        })`
        : `denort unavailable: DENORT_BIN unset and the probe compile failed: ${why}`,
    };
  } catch (error) {
    if (error instanceof DOMException && error.name === "TimeoutError") {
      return {
        available: false,
        reason: `denort unavailable: DENORT_BIN unset and the download from dl.deno.land ` +
          `did not finish within ${PROBE_TIMEOUT_MS / 1000} s`,
      };
    }
    throw error;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const DENORT = await probeDenort();
const SKIP_REASON = DENORT.available ? null : DENORT.reason;
if (SKIP_REASON) console.warn(`compile_test: skipping the compiled-binary tests: ${SKIP_REASON}`);

/** Compiles courier into `dir` with the real build script; returns the binary. */
async function compile(dir: string): Promise<string> {
  const dist = join(dir, "dist");
  const result = await run(
    Deno.execPath(),
    ["run", ...SCRIPT_PERMISSIONS, COMPILE_SCRIPT, "--out-dir", dist],
    { env: Deno.env.toObject(), clearEnv: true },
  );
  assert.equal(result.code, 0, `compile failed:\n${result.stderr}`);
  return join(dist, "courier");
}

Deno.test({
  name: SKIP_REASON
    ? `the compiled binary behaves as deno run main.ts (skipped: ${SKIP_REASON})`
    : "the compiled binary behaves as deno run main.ts",
  ignore: SKIP_REASON !== null,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "courier-compiled-" });
    try {
      const binary = await compile(dir);

      await t.step("SHA256SUMS lists it", async () => {
        const sums = await Deno.readTextFile(join(binary, "..", CHECKSUMS));
        const hash = createHash("sha256").update(await Deno.readFile(binary)).digest("hex");
        assert.equal(sums, `${hash}  courier\n`);
      });

      await t.step("--version prints deno.json's version; --help every command", async () => {
        const version = await run(binary, ["--version"]);
        assert.equal(version.code, 0, version.stderr);
        assert.equal(version.stdout, `courier ${VERSION}\n`);
        const help = await run(binary, ["--help"]);
        assert.equal(help.code, 0, help.stderr);
        assert.match(help.stdout, /^courier .*\n\nUsage:/);
        for (const command of COMMANDS.filter((c) => !c.hidden)) {
          assert.match(help.stdout, new RegExp(`\\n  ${command.name} `), command.name);
        }
        const bad = await run(binary, ["no-such-command"]);
        assert.equal(bad.code, 64);
        assert.ok(!bad.stderr.includes("    at "), `no stack trace: ${bad.stderr}`);
      });

      await t.step("completions (a lazily imported module) work", async () => {
        const bash = await run(binary, ["completions", "bash"]);
        assert.equal(bash.code, 0, bash.stderr);
        assert.equal(bash.stdout, completionScript("bash", COMMANDS));
      });

      await t.step("start spawns the binary itself as the daemon; found; stopped", async () => {
        // withHome kills a daemon left in its home (only ours) and fails the test on a leak.
        await withHome(async (home) => {
          const port = await leaseTestPort();
          const started = await run(binary, ["start", "--home", home.home, "--port", `${port}`]);
          assert.equal(started.code, 0, started.stderr);
          const status = await run(binary, ["status", "--home", home.home, "--json"]);
          assert.equal(status.code, 0, status.stderr);
          const body = JSON.parse(status.stdout);
          assert.equal(body.state, "running");
          assert.equal(body.port, port);
          assert.match(started.stdout, new RegExp(`\\b${body.pid}\\b`), "start prints the PID");
          // The daemon is this very binary, not deno: its command line starts with it.
          const commandLine = await readCommandLine(body.pid);
          const real = await Deno.realPath(binary); // macOS temp dirs are symlinks
          assert.ok(
            [binary, real].some((path) => commandLine?.startsWith(`${path} daemon `)),
            `daemon runs: ${commandLine}`,
          );
          if (Deno.build.os === "linux") {
            assert.equal(await Deno.readLink(`/proc/${body.pid}/exe`), real);
          }
          // What `stop --all` uses finds it (scoped to this test's directory).
          const found = await findDaemons({ within: home.root });
          assert.deepEqual(found.map((d) => d.pid), [body.pid]);
          const stopped = await run(binary, ["stop", "--home", home.home]);
          assert.equal(stopped.code, 0, stopped.stderr);
          const after = await run(binary, ["status", "--home", home.home, "--json"]);
          assert.equal(JSON.parse(after.stdout).state, "stopped");
        });
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: DENORT.available
    ? "compile.ts explains a refused denort download (skipped: denort is available here)"
    : "compile.ts exits 1 naming the refused denort download and the fix",
  ignore: DENORT.available,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "courier-compile-" });
    try {
      const result = await run(
        Deno.execPath(),
        ["run", ...SCRIPT_PERMISSIONS, COMPILE_SCRIPT, "--out-dir", out],
        { env: envWithoutDenort(), clearEnv: true, signal: AbortSignal.timeout(120_000) },
      );
      assert.equal(result.code, 1);
      assert.match(result.stderr, /could not download the denort runtime/);
      assert.match(result.stderr, /DENORT_BIN=\/path\/to\/denort/);
      assert.ok(!result.stderr.includes("    at "), "no stack trace");
      assert.deepEqual([...Deno.readDirSync(out)], [], "no binary, no SHA256SUMS");
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test("compile.ts with an unreadable DENORT_BIN exits 1 and says so", async () => {
  const out = await Deno.makeTempDir({ prefix: "courier-compile-" });
  try {
    const missing = join(out, "no-such-denort");
    const result = await run(
      Deno.execPath(),
      ["run", ...SCRIPT_PERMISSIONS, COMPILE_SCRIPT, "--out-dir", out],
      { env: { ...Deno.env.toObject(), DENORT_BIN: missing }, clearEnv: true },
    );
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`DENORT_BIN=${missing} cannot be read`));
    assert.ok(!result.stderr.includes("    at "), "no stack trace");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("deno compile gets exactly PERMISSION_FLAGS, deno.json, --output and --target", () => {
  const host = compileCommand({ outDir: "/d", hostTarget: "x86_64-unknown-linux-gnu" });
  assert.equal(host.command, Deno.execPath());
  assert.equal(host.output, "/d/courier");
  assert.deepEqual(host.args, [
    "compile",
    "--quiet",
    ...PERMISSION_FLAGS,
    "--config",
    join(ROOT, "deno.json"),
    ...lazyModules().flatMap((module) => ["--include", join(ROOT, module)]),
    "--output",
    "/d/courier",
    join(ROOT, "main.ts"),
  ]);
  // No permission beyond PERMISSION_FLAGS, and nothing embedded but the lazily loaded modules.
  assert.equal(
    host.args.filter((a) => a.startsWith("--allow-") || a === "-A").length,
    PERMISSION_FLAGS.length,
  );
  assert.ok(
    host.args.includes(join(ROOT, "lib/cli/mod.ts")),
    "the CLI, which main.ts loads lazily",
  );
  assert.ok(host.args.includes(join(ROOT, "lib/service/daemon.ts")), "the daemon");
  assert.ok(host.args.includes(join(ROOT, "lib/mail/service.ts")), "the mail service");
  for (const target of TARGETS) {
    const cmd = compileCommand({ outDir: "/d", target, hostTarget: "x86_64-unknown-linux-gnu" });
    assert.equal(cmd.output, `/d/courier-${target}`);
    assert.deepEqual(
      cmd.args.slice(cmd.args.indexOf("--target"), cmd.args.indexOf("--target") + 4),
      [
        "--target",
        target,
        "--output",
        `/d/courier-${target}`,
      ],
    );
  }
});

Deno.test("DENORT_BIN is passed for this machine's target only", () => {
  const hostTarget = "x86_64-unknown-linux-gnu";
  const denortBin = "/opt/denort";
  assert.deepEqual(compileCommand({ outDir: "/d", denortBin, hostTarget }).env, {
    DENORT_BIN: denortBin,
  });
  assert.deepEqual(
    compileCommand({ outDir: "/d", denortBin, hostTarget, target: hostTarget }).env,
    {
      DENORT_BIN: denortBin,
    },
  );
  // Deno would paste this machine's runtime onto another target: remove it there.
  assert.deepEqual(
    compileCommand({ outDir: "/d", denortBin, hostTarget, target: "aarch64-apple-darwin" }).env,
    { DENORT_BIN: null },
  );
  assert.deepEqual(compileCommand({ outDir: "/d", hostTarget }).env, {});
});

Deno.test("compile failures are explained: refused download, bad DENORT_BIN, anything else", () => {
  const url = "https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip";
  const refused = explainCompileFailure(
    [
      "\x1b[0m\x1b[32mDownload\x1b[0m " + url,
      "\x1b[1m\x1b[31merror\x1b[0m: Writing deno compile executable to temporary file 'x'",
      "",
      "Caused by:",
      "    0: Setting up base binary.",
      `    1: error sending request for url (${url}): client error (Connect): dns error: ` +
      "failed to lookup address information: Name or service not known",
      "    2: client error (Connect)",
    ].join("\n"),
    { target: "x86_64-unknown-linux-gnu", code: 1 },
  );
  assert.match(refused, /could not download the denort runtime for x86_64-unknown-linux-gnu/);
  assert.ok(refused.includes(url), refused);
  assert.match(refused, /dns error: failed to lookup address information/);
  assert.match(refused, /Fix: allow network access to dl\.deno\.land, or set DENORT_BIN=/);

  const bad = explainCompileFailure(
    "error: Could not find denort at '/opt/denort'\n\nCaused by:\n    No such file or directory",
    { target: "x86_64-unknown-linux-gnu", code: 1 },
  );
  assert.match(bad, /^DENORT_BIN=\/opt\/denort cannot be read/);

  const other = explainCompileFailure('error: Module not found "file:///x.ts".', {
    target: "aarch64-apple-darwin",
    code: 1,
  });
  assert.match(
    other,
    /deno compile failed \(exit 1\) for aarch64-apple-darwin:\nerror: Module not found/,
  );
});

Deno.test("SHA256SUMS lists every courier binary in dist/, in the format sha256sum -c reads", async () => {
  const dir = await Deno.makeTempDir({ prefix: "courier-sums-" });
  try {
    await Deno.writeTextFile(join(dir, "courier"), "host binary\n");
    await Deno.writeTextFile(join(dir, "courier-aarch64-apple-darwin"), "mac binary\n");
    await Deno.writeTextFile(join(dir, "notes.txt"), "not a binary\n");
    const lines = await writeChecksums(dir);
    const sha = (text: string) => createHash("sha256").update(text).digest("hex");
    const expected = [
      `${sha("host binary\n")}  courier`,
      `${sha("mac binary\n")}  courier-aarch64-apple-darwin`,
    ];
    assert.deepEqual(lines, expected);
    assert.equal(await Deno.readTextFile(join(dir, CHECKSUMS)), expected.join("\n") + "\n");
    // sha256sum reads names relative to the working directory: run it in dist/.
    const check = await new Deno.Command("sha256sum", {
      args: ["-c", CHECKSUMS],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output().catch((error) => {
      if (error instanceof Deno.errors.NotFound) return null; // no sha256sum (macOS): skip
      throw error;
    });
    if (check) assert.equal(check.code, 0, decoder.decode(check.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile.ts refuses unknown targets and --all with --target (exit 64)", async () => {
  const warn = console.error;
  const printed: string[] = [];
  console.error = (...args: unknown[]) => printed.push(args.join(" "));
  try {
    assert.equal(await runCompile(["--target", "x86_64-pc-windows-msvc"]), 64);
    assert.equal(await runCompile(["--all", "--target", TARGETS[0]]), 64);
    assert.equal(await runCompile(["--no-such-option"]), 64);
  } finally {
    console.error = warn;
  }
  assert.match(printed.join("\n"), /unknown target x86_64-pc-windows-msvc/);
  assert.match(printed.join("\n"), /give --target or --all, not both/);
});
