/**
 * Builds the self-contained courier binary with `deno compile`.
 *
 *     deno task compile              # dist/courier, for this machine
 *     deno task release              # dist/courier-<target> for all four targets
 *     deno run ... scripts/compile.ts --target aarch64-apple-darwin
 *
 * Then writes `dist/SHA256SUMS` (`sha256sum` format) for every binary in
 * `dist/`. The binary gets exactly the permissions `deno run` gets
 * (`PERMISSION_FLAGS`), and the version comes from `deno.json` (imported by
 * `lib/version`, so it is embedded at build time).
 *
 * `deno compile` pastes the program onto a `denort` runtime that it
 * downloads from dl.deno.land (and caches in `$DENO_DIR/dl`). Where that
 * host cannot be reached, point `DENORT_BIN` at a denort of the same Deno
 * version for this machine; it is used for this machine's target only
 * (Deno would paste it onto every target otherwise, and the other targets'
 * binaries would not run there).
 *
 * Exit codes: 0 built, 1 the build failed, 64 bad arguments.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeFileAtomic } from "../lib/fs/mod.ts";
import { PERMISSION_FLAGS } from "../lib/proc/self_command.ts";
import { VERSION } from "../lib/version/mod.ts";
import { lazyModules } from "./lazy_modules.ts";

/** The targets a release ships, in `deno compile --target` spelling. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
] as const;

/** One of {@link TARGETS}. */
export type Target = typeof TARGETS[number];

/** The repository root (this file is `scripts/compile.ts`). */
export const ROOT: string = resolve(new URL("..", import.meta.url).pathname);

/** The checksum file written beside the binaries. */
export const CHECKSUMS = "SHA256SUMS";

/** The binary's file name: `courier` for this machine, `courier-<target>` for a named target. */
export function binaryName(target?: Target): string {
  return target ? `courier-${target}` : "courier";
}

/** What one `deno compile` run needs. */
export interface CompileCommand {
  /** The `deno` executable. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Environment changes: a value to set, `null` to remove. */
  env: Record<string, string | null>;
  /** The binary it writes. */
  output: string;
}

/**
 * The `deno compile` command line for one binary: the permissions of
 * `PERMISSION_FLAGS` (the single list `deno run` uses too; see its comment
 * for why each is needed), the project's `deno.json`, the modules courier
 * loads with `importLazily` (`--include`: `deno compile` cannot see those
 * imports; courier reads no other file of its own source at run time), and
 * `DENORT_BIN` passed on only for this machine's target.
 */
export function compileCommand(options: {
  outDir: string;
  target?: Target;
  denortBin?: string;
  hostTarget?: string;
}): CompileCommand {
  const output = join(options.outDir, binaryName(options.target));
  const host = options.hostTarget ?? Deno.build.target;
  const args = ["compile", "--quiet", ...PERMISSION_FLAGS, "--config", join(ROOT, "deno.json")];
  for (const module of lazyModules(ROOT)) args.push("--include", join(ROOT, module));
  if (options.target) args.push("--target", options.target);
  args.push("--output", output, join(ROOT, "main.ts"));
  const forHost = !options.target || options.target === host;
  const env: Record<string, string | null> = {};
  if (options.denortBin !== undefined) env.DENORT_BIN = forHost ? options.denortBin : null;
  return { command: Deno.execPath(), args, env, output };
}

/**
 * Explains why `deno compile` failed, from its stderr: a missing runtime
 * download or a bad `DENORT_BIN` gets the cause and the fix in plain words.
 */
export function explainCompileFailure(
  stderr: string,
  options: { target: string; denortBin?: string; code: number },
): string {
  // deno prints the error chain on separate lines; colour codes would break the matching.
  // deno-lint-ignore no-control-regex
  const text = stderr.replace(/\x1b\[[0-9;]*m/g, "");
  const denoVersion = Deno.version.deno;
  const missing = text.match(/Could not find denort at '([^']*)'/);
  if (missing) {
    return `DENORT_BIN=${missing[1]} cannot be read. ` +
      `Point DENORT_BIN at a denort ${denoVersion} binary for ${options.target}, or unset it ` +
      `to let deno compile download one from dl.deno.land.`;
  }
  const url = text.match(/https:\/\/dl\.deno\.land\/\S*denort\S*?\.zip/)?.[0];
  if (
    url || /denort/i.test(text) && /error sending request|dns error|connect|timed out/i.test(text)
  ) {
    const cause = downloadCause(text, url);
    return `deno compile could not download the denort runtime for ${options.target}` +
      `${url ? ` (${url})` : ""}: ${cause}.\n` +
      `Fix: allow network access to dl.deno.land, or set DENORT_BIN=/path/to/denort ` +
      `(a denort ${denoVersion} for ${Deno.build.target}; it is used for this machine's target only).`;
  }
  return `deno compile failed (exit ${options.code}) for ${options.target}:\n${text.trim()}`;
}

/** The innermost reason a download failed, from deno's error chain. */
function downloadCause(text: string, url: string | undefined): string {
  if (url) {
    // "error sending request for url (URL): client error (Connect): dns error: ..."
    const line = text.split("\n").find((l) => l.includes(`${url}): `));
    if (line) return line.slice(line.indexOf(`${url}): `) + url.length + 3).trim();
  }
  const causes = text.split("\n").map((l) => l.match(/^\s*\d+: (.*)$/)?.[1]).filter(Boolean);
  return causes.at(-1) ?? "the download failed";
}

/** The SHA-256 of a file, in lowercase hex (read in chunks: binaries are large). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1 << 20);
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/**
 * Writes `<dir>/SHA256SUMS` for every courier binary in `dir` (`courier` and
 * `courier-<target>`), one `<hex>  <name>` line each, sorted by name: the
 * format `sha256sum -c` and `shasum -a 256 -c` read. Returns the lines.
 */
export async function writeChecksums(dir: string): Promise<string[]> {
  const names = [binaryName(), ...TARGETS.map(binaryName)];
  const lines: string[] = [];
  for (const name of names.sort()) {
    try {
      if (!(await Deno.stat(join(dir, name))).isFile) continue;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    lines.push(`${await sha256File(join(dir, name))}  ${name}`);
  }
  await writeFileAtomic(join(dir, CHECKSUMS), lines.map((l) => l + "\n").join(""));
  return lines;
}

/** A build failure whose message is meant for the person building. */
export class BuildError extends Error {
  /** @param message What failed and how to fix it. */
  constructor(message: string) {
    super(message);
    this.name = "BuildError";
  }
}

/** Builds one binary; throws {@link BuildError} with the cause and fix when it fails. */
export async function compileOne(options: {
  outDir: string;
  target?: Target;
  denortBin?: string;
}): Promise<string> {
  const cmd = compileCommand(options);
  const label = options.target ?? `${Deno.build.target} (this machine)`;
  if (options.denortBin !== undefined && cmd.env.DENORT_BIN === null) {
    console.error(
      `note: DENORT_BIN is for ${Deno.build.target} only; downloading denort for ${label}`,
    );
  }
  const env = Deno.env.toObject();
  for (const [key, value] of Object.entries(cmd.env)) {
    if (value === null) delete env[key];
    else env[key] = value;
  }
  console.error(`compiling ${basename(cmd.output)} for ${label}`);
  const result = await new Deno.Command(cmd.command, {
    args: cmd.args,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (result.code !== 0) {
    const stderr = new TextDecoder().decode(result.stderr);
    throw new BuildError(
      explainCompileFailure(stderr, {
        target: options.target ?? Deno.build.target,
        denortBin: cmd.env.DENORT_BIN ?? undefined,
        code: result.code,
      }),
    );
  }
  return cmd.output;
}

/** Checks that a binary built for this machine runs and reports `deno.json`'s version. */
export async function checkVersion(binary: string): Promise<void> {
  const out = await new Deno.Command(binary, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (out.code !== 0 || text !== `courier ${VERSION}`) {
    throw new BuildError(
      `${binary} --version printed "${text}" (exit ${out.code}), expected "courier ${VERSION}"` +
        `: is DENORT_BIN a denort ${Deno.version.deno}?\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

const USAGE = `Usage: deno run ${
  ["--allow-read", "--allow-write", "--allow-run", "--allow-env"].join(" ")
} scripts/compile.ts [--target TARGET | --all] [--out-dir DIR]

Builds dist/courier for this machine, or dist/courier-<TARGET> (--target,
repeatable) or all four targets (--all), then writes dist/SHA256SUMS.

Targets: ${TARGETS.join(", ")}

Environment: DENORT_BIN=/path/to/denort uses a local denort (Deno ${Deno.version.deno},
${Deno.build.target}) instead of downloading one; for this machine's target only.`;

/** Runs the script with `args`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        target: { type: "string", multiple: true },
        all: { type: "boolean" },
        "out-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    });
  } catch (error) {
    console.error(`compile: ${error instanceof Error ? error.message.split("\n")[0] : error}`);
    console.error(USAGE);
    return 64;
  }
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const requested = values.target ?? [];
  const unknown = requested.filter((t) => !(TARGETS as readonly string[]).includes(t));
  if (unknown.length > 0 || (values.all && requested.length > 0)) {
    console.error(
      unknown.length > 0
        ? `compile: unknown target ${unknown.join(", ")}: expected one of ${TARGETS.join(", ")}`
        : "compile: give --target or --all, not both",
    );
    return 64;
  }
  const targets: (Target | undefined)[] = values.all
    ? [...TARGETS]
    : requested.length > 0
    ? (requested as Target[])
    : [undefined];
  const outDir = resolve(values["out-dir"] ?? join(ROOT, "dist"));
  const denortBin = Deno.env.get("DENORT_BIN") || undefined;
  await Deno.mkdir(outDir, { recursive: true });
  try {
    for (const target of targets) {
      const output = await compileOne({ outDir, target, denortBin });
      if (!target || target === Deno.build.target) await checkVersion(output);
      console.error(`built ${output}`);
    }
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    console.error(`compile: ${error.message}`);
    return 1;
  }
  const lines = await writeChecksums(outDir);
  console.error(`wrote ${join(outDir, CHECKSUMS)}:`);
  for (const line of lines) console.error(`  ${line}`);
  return 0;
}

if (import.meta.main) Deno.exit(await run(Deno.args));
