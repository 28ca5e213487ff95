/**
 * How courier runs itself (the daemon `start` spawns): in a compiled binary
 * the binary re-executes itself with courier's arguments only; under
 * `deno run` the same Deno runs the same entry module with courier's
 * permissions and config. Both forms are also run for real here.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { currentRunMode, PERMISSION_FLAGS, type RunMode, selfCommand } from "../lib/proc/mod.ts";
import { VERSION } from "../lib/version/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const decoder = new TextDecoder();

async function output(command: { command: string; args: string[] }) {
  const out = await new Deno.Command(command.command, {
    args: command.args,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("standalone: the binary runs itself with courier's arguments only", () => {
  const mode: RunMode = {
    standalone: true,
    execPath: "/home/me/.local/bin/courier",
    mainModule: "file:///tmp/deno-compile-courier/main.ts",
    configPath: "/should/be/ignored/deno.json",
  };
  const args = ["daemon", "--home", "/tmp/h p", "--port", "8700"];
  const cmd = selfCommand(args, { mode });
  assert.deepEqual(cmd, { command: "/home/me/.local/bin/courier", args });
  assert.notEqual(cmd.args, args, "a copy: the caller's array is not shared");
});

Deno.test("deno run: same deno, run, courier's permissions, config, entry, then the arguments", () => {
  const mode: RunMode = {
    standalone: false,
    execPath: "/usr/local/bin/deno",
    mainModule: "file:///work/my%20courier/main.ts",
    configPath: "/work/my courier/deno.json",
  };
  const cmd = selfCommand(["status", "--json"], { mode });
  assert.equal(cmd.command, "/usr/local/bin/deno");
  assert.deepEqual(cmd.args, [
    "run",
    "--quiet",
    "--no-prompt",
    ...PERMISSION_FLAGS,
    "--config",
    "/work/my courier/deno.json",
    "/work/my courier/main.ts", // a path, percent-decoded
    "status",
    "--json",
  ]);
});

Deno.test("deno run without a deno.json: --no-config; a remote entry is passed as its URL", () => {
  const cmd = selfCommand(["start"], {
    mode: {
      standalone: false,
      execPath: "/usr/bin/deno",
      mainModule: "https://example.com/courier/main.ts",
    },
  });
  assert.deepEqual(cmd.args, [
    "run",
    "--quiet",
    "--no-prompt",
    ...PERMISSION_FLAGS,
    "--no-config",
    "https://example.com/courier/main.ts",
    "start",
  ]);
});

Deno.test("currentRunMode under deno test: not standalone, this deno", () => {
  const mode = currentRunMode();
  assert.equal(mode.standalone, false);
  assert.equal(mode.execPath, Deno.execPath());
  assert.equal(mode.mainModule, Deno.mainModule);
});

Deno.test("the deno run form really runs courier: --version", async () => {
  const cmd = selfCommand(["--version"], {
    mode: {
      standalone: false,
      execPath: Deno.execPath(),
      mainModule: new URL("../main.ts", import.meta.url).href,
      configPath: join(ROOT, "deno.json"),
    },
  });
  const result = await output(cmd);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `courier ${VERSION}\n`);
});

Deno.test("the standalone form really passes arguments through untouched", async () => {
  // A stand-in for the compiled binary: prints each argument it gets on a line.
  const dir = await Deno.makeTempDir({ prefix: "courier-self-" });
  try {
    const fake = join(dir, "courier");
    await Deno.writeTextFile(fake, '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n');
    await Deno.chmod(fake, 0o755);
    const args = ["daemon", "--home", `${dir}/a home`, "--port", "auto", "--", "-x"];
    const result = await output(selfCommand(args, {
      mode: { standalone: true, execPath: fake, mainModule: "file:///irrelevant.ts" },
    }));
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout.split("\n").slice(0, -1), args);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
