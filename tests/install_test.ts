/**
 * `scripts/install.sh`, run by `sh` for real: from a local `dist/`
 * (`--from`) and from a download served on 127.0.0.1 (`--base-url`), with a
 * fake binary, a small shell script that prints `courier 0.1.0`. Checks the
 * checksum gate (a mismatch or a missing entry installs nothing and leaves
 * an existing install alone), the atomic install, and the exit codes
 * (0 installed, 1 refused or failed, 64 bad usage).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";

const INSTALL_SH = new URL("../scripts/install.sh", import.meta.url).pathname;
const decoder = new TextDecoder();
const FAKE_BINARY = '#!/bin/sh\necho "courier 0.1.0"\n';

/** This machine's target, as install.sh detects it from uname. */
const TARGET = Deno.build.target;
const BINARY = `courier-${TARGET}`;

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `sh install.sh args…` with a clean environment (no COURIER_* leaking in). */
async function install(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const out = await new Deno.Command("sh", {
    args: [INSTALL_SH, ...args],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: "/nonexistent-home", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A scratch directory with a fake `dist/`; removed after `fn`. */
async function withDist(
  fn: (paths: { root: string; dist: string; bin: string }) => Promise<void>,
  options: { binary?: string; name?: string; sums?: string } = {},
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "courier-install-" });
  try {
    const dist = join(root, "dist");
    await Deno.mkdir(dist);
    const name = options.name ?? BINARY;
    const binary = options.binary ?? FAKE_BINARY;
    await Deno.writeTextFile(join(dist, name), binary);
    await Deno.writeTextFile(
      join(dist, "SHA256SUMS"),
      options.sums ?? `${sha256("other")}  courier-other-target\n${sha256(binary)}  ${name}\n`,
    );
    await fn({ root, dist, bin: join(root, "bin") });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const list = async (dir: string) => {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
};

async function runInstalled(path: string): Promise<string> {
  const out = await new Deno.Command(path, { args: ["--version"], stdout: "piped" }).output();
  assert.equal(out.code, 0);
  return decoder.decode(out.stdout);
}

Deno.test("install.sh --from DIR installs the verified binary as DIR/courier", async () => {
  await withDist(async ({ dist, bin }) => {
    const result = await install(["--from", dist, "--dir", bin]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await list(bin), ["courier"], "no temporary file is left behind");
    assert.equal(await runInstalled(join(bin, "courier")), "courier 0.1.0\n");
    assert.equal((await Deno.stat(join(bin, "courier"))).mode! & 0o777, 0o755);
    assert.match(result.stdout, new RegExp(`Installed courier 0\\.1\\.0 to ${bin}/courier`));
    // bin is not on PATH: say how to add it, for each kind of shell.
    assert.match(result.stdout, /is not on your PATH/);
    assert.ok(result.stdout.includes(`export PATH="${bin}:$PATH"`), result.stdout);
    assert.ok(result.stdout.includes(`fish_add_path ${bin}`), result.stdout);
  });
});

Deno.test("install.sh says nothing about PATH when the directory is on it", async () => {
  await withDist(async ({ dist, bin }) => {
    const result = await install(["--from", dist, "--dir", bin], {
      PATH: `${bin}:${Deno.env.get("PATH")}`,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /not on your PATH/);
  });
});

Deno.test("install.sh refuses a checksum mismatch: exit 1, nothing installed", async () => {
  await withDist(async ({ dist, bin }) => {
    const result = await install(["--from", dist, "--dir", bin]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /checksum mismatch for courier-.*: not installed/);
    assert.equal(await list(bin), null, "the install directory is not even created");
  }, { sums: `${sha256("something else")}  ${BINARY}\n` });
});

Deno.test("install.sh refuses a tampered binary and keeps the courier already installed", async () => {
  await withDist(async ({ dist, bin }) => {
    await Deno.mkdir(bin);
    await Deno.writeTextFile(join(bin, "courier"), "#!/bin/sh\necho old\n");
    await Deno.writeTextFile(join(dist, BINARY), '#!/bin/sh\necho "evil"\n'); // after SHA256SUMS
    const result = await install(["--from", dist, "--dir", bin]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /checksum mismatch/);
    assert.deepEqual(await list(bin), ["courier"]);
    assert.equal(await Deno.readTextFile(join(bin, "courier")), "#!/bin/sh\necho old\n");
  });
});

Deno.test("install.sh refuses a binary that SHA256SUMS does not list, or no SHA256SUMS", async () => {
  await withDist(async ({ dist, bin }) => {
    const unlisted = await install(["--from", dist, "--dir", bin]);
    assert.equal(unlisted.code, 1);
    assert.match(unlisted.stderr, /lists no courier-.*: not installing an unverified binary/);
    await Deno.remove(join(dist, "SHA256SUMS"));
    const none = await install(["--from", dist, "--dir", bin]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /SHA256SUMS not found/);
    assert.equal(await list(bin), null);
  }, { sums: `${sha256(FAKE_BINARY)}  courier-some-other-target\n` });
});

Deno.test("install.sh replaces an existing courier with the new one", async () => {
  await withDist(async ({ dist, bin }) => {
    await Deno.mkdir(bin);
    await Deno.writeTextFile(join(bin, "courier"), "#!/bin/sh\necho old\n");
    const result = await install(["--from", dist, "--dir", bin]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await list(bin), ["courier"]);
    assert.equal(await runInstalled(join(bin, "courier")), "courier 0.1.0\n");
  });
});

Deno.test("install.sh --from takes the plain 'courier' that deno task compile builds", async () => {
  await withDist(async ({ dist, bin }) => {
    const result = await install(["--from", dist, "--dir", bin]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await runInstalled(join(bin, "courier")), "courier 0.1.0\n");
  }, { name: "courier" });
});

Deno.test("install.sh rejects bad usage with exit 64", async () => {
  for (
    const args of [
      ["--no-such-option"],
      ["--dir"],
      ["--dir="],
      ["--from", "/tmp", "--version", "1.0.0"],
      [], // no --from and no repository to download from
    ]
  ) {
    const result = await install(args);
    assert.equal(result.code, 64, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, /install\.sh: error: /);
    assert.match(result.stderr, /--help/);
  }
  const help = await install(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--from DIR/);
});

async function hasDownloader(): Promise<string | null> {
  for (const tool of ["curl", "wget"]) {
    try {
      await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" })
        .output();
      return null;
    } catch {
      // try the next one
    }
  }
  return "neither curl nor wget is installed";
}

const NO_DOWNLOADER = await hasDownloader();

Deno.test({
  name: `install.sh downloads, verifies and installs from a release URL${
    NO_DOWNLOADER ? ` (skipped: ${NO_DOWNLOADER})` : ""
  }`,
  ignore: NO_DOWNLOADER !== null,
  async fn() {
    await withDist(async ({ dist, bin }) => {
      const requested: string[] = [];
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        async (request) => {
          const name = new URL(request.url).pathname.replace(/^\/v9\//, "");
          requested.push(name);
          try {
            return new Response(await Deno.readFile(join(dist, name)));
          } catch {
            return new Response("not found", { status: 404 });
          }
        },
      );
      try {
        const url = `http://127.0.0.1:${server.addr.port}/v9`;
        const ok = await install(["--base-url", url, "--dir", bin]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.deepEqual(requested, ["SHA256SUMS", BINARY]);
        assert.equal(await runInstalled(join(bin, "courier")), "courier 0.1.0\n");

        // The server now hands out a different binary than SHA256SUMS names.
        await Deno.writeTextFile(join(dist, BINARY), '#!/bin/sh\necho "evil"\n');
        const bad = await install(["--base-url", url, "--dir", join(bin, "again")]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /checksum mismatch/);
        assert.equal(await list(join(bin, "again")), null);

        const missing = await install(["--base-url", `${url}/nothing`, "--dir", bin]);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /download failed: .*SHA256SUMS/);
      } finally {
        await server.shutdown();
      }
    });
  },
});
