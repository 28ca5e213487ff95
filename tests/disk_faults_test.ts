/**
 * A full disk, a read-only file system and missing permissions are the
 * user's to fix: exit 3, naming the path, the cause and what to do.
 * The file systems are real: a tiny tmpfs and a read-only bind mount.
 */
import assert from "node:assert/strict";
import { asFileSystemError, ExitCode, FileSystemError } from "../lib/errors/mod.ts";
import { courier, json, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

async function run(command: string, args: string[]): Promise<{ ok: boolean; err: string }> {
  try {
    const out = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" }).output();
    return { ok: out.success, err: new TextDecoder().decode(out.stderr).trim() };
  } catch (error) {
    return { ok: false, err: (error as Error).message };
  }
}

/** Why mounting cannot be tested here, or `null` when it can. */
async function mountUnavailable(): Promise<string | null> {
  if (Deno.uid() !== 0) return "mounting a file system needs root";
  const dir = await Deno.makeTempDir({ prefix: "courier-mount-probe-" });
  try {
    const mounted = await run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]);
    if (!mounted.ok) return `mount failed: ${mounted.err}`;
    await run("umount", [dir]);
    return null;
  } finally {
    await Deno.remove(dir).catch(() => {});
  }
}
const NO_MOUNT = await mountUnavailable();

function mountTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: NO_MOUNT ? `${name} (skipped: ${NO_MOUNT})` : name,
    ignore: NO_MOUNT !== null,
    fn,
  });
}

/** Mounts a tmpfs of `size` on `dir` for the length of `fn`. */
async function withTmpfs(dir: string, size: string, fn: () => Promise<void>): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const mounted = await run("mount", ["-t", "tmpfs", "-o", `size=${size},mode=700`, "tmpfs", dir]);
  assert.ok(mounted.ok, mounted.err);
  try {
    await fn();
  } finally {
    await run("umount", ["-l", dir]);
  }
}

/** Fills the file system holding `dir` to the last byte. */
async function fill(dir: string): Promise<void> {
  const file = await Deno.open(`${dir}/filler`, { write: true, create: true });
  const block = new Uint8Array(4096);
  try {
    for (;;) await file.write(block);
  } catch {
    // full
  } finally {
    file.close();
  }
}

/** Makes `dir` a read-only view of itself for the length of `fn`. */
async function readOnly(dir: string, fn: () => Promise<void>): Promise<void> {
  assert.ok((await run("mount", ["--bind", dir, dir])).ok);
  try {
    const remount = await run("mount", ["-o", "remount,bind,ro", dir]);
    assert.ok(remount.ok, remount.err);
    await fn();
  } finally {
    await run("umount", ["-l", dir]);
  }
}

mountTest(
  "a full disk: port allocate, release and start exit 3 naming the path and the cause",
  async () => {
    await withHome(async (h) => {
      const disk = h.sibling("disk");
      await withTmpfs(disk, "256k", async () => {
        const home = `${disk}/home`;
        const env = { COURIER_LEASE_DIR: `${disk}/leases` };
        const first = await courier(["port", "allocate", "--home", home, "--json"], { env });
        assert.equal(first.code, 0, first.stderr);
        await fill(disk);
        for (const args of [["port", "allocate"], ["port", "release", String(json(first).port)]]) {
          const result = await courier([...args, "--home", home], { env });
          assert.equal(result.code, ExitCode.Permission, `${args.join(" ")}: ${result.stderr}`);
          assert.match(
            result.stderr,
            new RegExp(
              `Cannot write ${disk}/leases/ports\\.json.*: no space left on the device \\(ENOSPC\\)`,
            ),
          );
          assert.match(result.stderr, /Free some space there, or choose another home/);
          assert.doesNotMatch(result.stderr, /internal error|bug/);
        }
        const started = await courier([
          "start",
          "--home",
          home,
          "--port",
          String(await leaseTestPort()),
        ]);
        assert.equal(started.code, ExitCode.Permission, started.stderr);
        assert.match(
          started.stderr,
          new RegExp(`${home}.*no space left on the device \\(ENOSPC\\)`),
        );
        // Nothing half-made is left behind to look like a daemon.
        const status = await courier(["status", "--home", home, "--json"]);
        assert.equal(json(status).state, "stopped", status.stdout);
      });
    });
  },
);

mountTest(
  "a read-only file system: port allocate and start exit 3 saying so, never 'chmod'",
  async () => {
    await withHome(async (h) => {
      const home = h.sibling("ro-home");
      const env = { COURIER_LEASE_DIR: `${home}/leases` };
      const made = await courier(["port", "allocate", "--home", home], { env });
      assert.equal(made.code, 0, made.stderr);
      await readOnly(home, async () => {
        for (
          const args of [["port", "allocate"], ["start", "--port", String(await leaseTestPort())]]
        ) {
          const result = await courier([...args, "--home", home], { env });
          assert.equal(result.code, ExitCode.Permission, `${args.join(" ")}: ${result.stderr}`);
          assert.match(
            result.stderr,
            new RegExp(`${home}.*the file system is read-only \\(EROFS\\)`),
          );
          assert.match(result.stderr, /Remount it read-write, or choose another home/);
          assert.doesNotMatch(result.stderr, /permissions|chmod/);
        }
      });
    });
  },
);

Deno.test("file-system errors become messages naming the path, the cause and the fix", async () => {
  const denied = Object.assign(
    new Deno.errors.PermissionDenied(
      "Permission denied (os error 13): open '/srv/x/run/ports.json'",
    ),
    { code: "EACCES" },
  );
  const error = asFileSystemError(denied, "/fallback");
  assert.ok(error instanceof FileSystemError);
  assert.equal(error.exitCode, ExitCode.Permission);
  assert.equal(
    error.message,
    "Cannot write /srv/x/run/ports.json: permission denied (EACCES). Make it yours and " +
      "writable (chown, chmod u+rwx), or choose another home with --home DIR or COURIER_HOME.",
  );
  const full = Object.assign(new Error("No space left on device (os error 28)"), {
    code: "ENOSPC",
  });
  assert.match(
    asFileSystemError(full, "/h/run/courier.pid")!.message,
    /^Cannot write \/h\/run\/courier\.pid: no space/,
  );
  assert.equal(asFileSystemError(new Error("boom"), "/x"), null);
  const scratch = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${scratch}/file`, "");
    const notDir = Object.assign(new Error("Not a directory (os error 20)"), { code: "ENOTDIR" });
    assert.match(
      asFileSystemError(notDir, `${scratch}/file/home/run`)!.message,
      new RegExp(
        `^Cannot write ${scratch}/file/home/run: ${scratch}/file is not a directory \\(ENOTDIR\\)`,
      ),
    );
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

mountTest("doctor on a read-only home says it is read-only and never suggests chmod", async () => {
  await withHome(async (h) => {
    const home = h.sibling("ro-doctor");
    await Deno.mkdir(`${home}/run`, { recursive: true });
    await Deno.mkdir(`${home}/log`, { recursive: true });
    await readOnly(home, async () => {
      const result = await courier(["doctor", "--home", home, "--json"]);
      const findings = json<
        { findings: { check: string; level: string; message: string; fix?: string }[] }
      >(
        result,
      ).findings.filter((f) => f.check === "home");
      assert.ok(
        findings.some((f) => f.level === "problem" && /read-only file system/.test(f.message)),
        JSON.stringify(findings),
      );
      for (const f of findings) assert.doesNotMatch(f.fix ?? "", /chmod/);
    });
  });
});
