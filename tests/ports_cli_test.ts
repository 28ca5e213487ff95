/**
 * `courier port …` as a user runs it: real processes, temporary homes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { LeaseInfo } from "../lib/ports/mod.ts";
import { readProcessIdentity, signalIfSame, waitForExit } from "../lib/proc/mod.ts";
import { courier, courierCommand, type RunResult, TestHome, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const CHILD = new URL("./fixtures/port_child.ts", import.meta.url).pathname;
const CHILD_CMD = [Deno.execPath(), "run", "--quiet", "--allow-all", CHILD];

async function leases(h: TestHome): Promise<LeaseInfo[]> {
  const listed = await h.run(["port", "list", "--json"]);
  assert.equal(listed.code, 0, listed.stderr);
  return JSON.parse(listed.stdout).leases;
}

function assertUsage(result: RunResult, pattern: RegExp, hint: string): void {
  assert.equal(result.code, 64, result.stderr);
  assert.match(result.stderr, pattern);
  assert.match(result.stderr, new RegExp(`Run 'courier port ${hint} --help' for usage`));
  assert.equal(result.stdout, "");
}

/** A process to own leases in tests: a `sleep` we start and kill. */
function sleeper(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["60"], stdout: "null", stderr: "null" }).spawn();
}

Deno.test("port allocate prints the port alone; --json prints the lease", async () => {
  const [a, b] = [await leaseTestPort(), await leaseTestPort()];
  await withHome(async (h) => {
    const plain = await h.run(["port", "allocate", "--range", `${a}-${a}`]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, `${a}\n`);
    assert.equal(plain.stderr, "");

    const json = await h.run([
      "port",
      "allocate",
      "--preferred",
      String(b),
      "--ttl",
      "60",
      "--label",
      "api",
      "--json",
    ]);
    assert.equal(json.code, 0, json.stderr);
    const lease = JSON.parse(json.stdout);
    assert.equal(lease.port, b);
    assert.equal(lease.owner, null);
    assert.equal(lease.label, "api");
    assert.equal(Date.parse(lease.expires_at) - Date.parse(lease.created_at), 60_000);

    const listed = await leases(h);
    assert.deepEqual(listed.map((l) => l.port).sort(), [a, b].sort());
    // Without --pid the CLI process is gone at once: the lease lives by its TTL (300 s).
    const first = listed.find((l) => l.port === a)!;
    assert.equal(first.owner, null);
    assert.equal(Date.parse(first.expires_at!) - Date.parse(first.created_at), 300_000);
    assert.ok(await Deno.stat(join(h.leaseDir, "ports.json")), "one registry per user");
  });
});

Deno.test("port allocate refuses bad ranges, ports and options with exit 64", async () => {
  await withHome(async (h) => {
    const cases: [string[], RegExp][] = [
      [["--range", "20-10"], /invalid --range "20-10": START \(20\) is greater than END \(10\)/],
      [["--range", "1-70000"], /invalid --range "1-70000": ports must be from 1 to 65535/],
      [["--range", "10000"], /invalid --range "10000": expected START-END/],
      [["--preferred", "0"], /invalid --preferred "0": expected a port from 1 to 65535/],
      [["--preferred", "65536"], /invalid --preferred "65536"/],
      [["--ttl", "0"], /invalid --ttl "0"/],
      [["--pid", "abc"], /invalid --pid "abc"/],
      [["--bogus"], /unknown option "--bogus"/],
    ];
    for (const [args, pattern] of cases) {
      assertUsage(await h.run(["port", "allocate", ...args]), pattern, "allocate");
    }
    assertUsage(await h.run(["port", "release"]), /missing PORT/, "release");
    assertUsage(await h.run(["port", "release", "x"]), /invalid PORT "x"/, "release");
    assertUsage(await h.run(["port", "exec"]), /missing the command to run/, "exec");
    assertUsage(
      await h.run(["port", "exec", "--env", "1X", "--", "true"]),
      /invalid --env "1X"/,
      "exec",
    );
  });
});

Deno.test("port allocate exits 1 when nothing is free, naming the range and what holds it", async () => {
  const [a, b] = [await leaseTestPort(), await leaseTestPort()];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: b });
  try {
    await withHome(async (h) => {
      assert.equal((await h.run(["port", "allocate", "--range", `${a}-${a}`])).code, 0);
      const full = await h.run(["port", "allocate", "--range", `${a}-${a}`]);
      assert.equal(full.code, 1);
      assert.equal(full.stdout, "");
      assert.match(
        full.stderr,
        new RegExp(
          `No available ports in range ${a}-${a}: 1 of 1 leased by courier, 0 held by other programs`,
        ),
      );
      const held = await h.run(["port", "allocate", "--range", `${b}-${b}`, "--json"]);
      assert.equal(held.code, 1);
      const body = JSON.parse(held.stdout);
      assert.equal(body.error.type, "NoFreePortError");
      assert.match(body.error.message, /0 of 1 leased by courier, 1 held by other programs/);
    });
  } finally {
    listener.close();
  }
});

Deno.test("port release says which ports had no lease; gc drops dead owners' leases", async () => {
  const [a, b] = [await leaseTestPort(), await leaseTestPort()];
  const owner = sleeper();
  try {
    await withHome(async (h) => {
      assert.equal((await h.run(["port", "allocate", "--range", `${a}-${a}`])).code, 0);
      const owned = await h.run([
        "port",
        "allocate",
        "--range",
        `${b}-${b}`,
        "--pid",
        String(owner.pid),
      ]);
      assert.equal(owned.code, 0, owned.stderr);

      const released = await h.run(["port", "release", String(a)]);
      assert.equal(released.code, 0);
      assert.match(released.stdout, new RegExp(`Released port ${a}\\.`));
      const again = await h.run(["port", "release", String(a), "--json"]);
      assert.equal(again.code, 0);
      assert.deepEqual(JSON.parse(again.stdout), { released: [], not_leased: [a] });
      const plain = await h.run(["port", "release", String(a)]);
      assert.match(plain.stdout, new RegExp(`Port ${a} had no lease: nothing to release\\.`));

      const none = await h.run(["port", "gc"]);
      assert.equal(none.stdout, "No stale leases.\n");
      owner.kill("SIGKILL");
      await owner.status;
      const [listed] = await leases(h);
      assert.equal(listed.owner?.pid, owner.pid);
      assert.equal(listed.owner_alive, false);
      const gc = await h.run(["port", "gc"]);
      assert.equal(gc.code, 0);
      assert.equal(gc.stdout, "Removed 1 stale lease.\n");
      assert.deepEqual(await leases(h), []);
    });
  } finally {
    try {
      owner.kill("SIGKILL");
    } catch {
      // already gone
    }
    await owner.status;
  }
});

Deno.test("port list shows port, owner PID and liveness, age, expiry and label", async () => {
  const [a, b] = [await leaseTestPort(), await leaseTestPort()];
  const owner = sleeper();
  try {
    await withHome(async (h) => {
      assert.equal((await h.run(["port", "list"])).stdout, "No port leases.\n");
      await h.run(["port", "allocate", "--range", `${a}-${a}`, "--label", "web"]);
      await h.run(["port", "allocate", "--range", `${b}-${b}`, "--pid", String(owner.pid)]);
      const listed = await h.run(["port", "list"]);
      assert.equal(listed.code, 0);
      const lines = listed.stdout.trimEnd().split("\n");
      assert.match(lines[0], /^PORT\s+PID\s+ALIVE\s+AGE\s+EXPIRES\s+STATE\s+LABEL$/);
      const rowA = lines.find((line) => line.startsWith(String(a)))!;
      const rowB = lines.find((line) => line.startsWith(String(b)))!;
      assert.match(rowA, new RegExp(`^${a}\\s+-\\s+-\\s+\\d+s\\s+in 4m\\d\\ds\\s+live\\s+web$`));
      assert.match(rowB, new RegExp(`^${b}\\s+${owner.pid}\\s+yes\\s+\\d+s\\s+never\\s+live$`));
    });
  } finally {
    owner.kill("SIGKILL");
    await owner.status;
  }
});

Deno.test("a corrupt registry is moved aside with a warning and allocation goes on", async () => {
  const a = await leaseTestPort();
  await withHome(async (h) => {
    await Deno.mkdir(h.leaseDir, { recursive: true });
    await Deno.writeTextFile(join(h.leaseDir, "ports.json"), "\0\0garbage");
    const result = await h.run(["port", "allocate", "--range", `${a}-${a}`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${a}\n`);
    assert.match(result.stderr, /^courier: warning: port registry .*ports\.json could not be read/);
    assert.match(result.stderr, /moved it to .*ports\.json\.corrupt-/);
    const names = [...Deno.readDirSync(h.leaseDir)].map((e) => e.name);
    assert.equal(names.filter((n) => n.startsWith("ports.json.corrupt-")).length, 1);
    assert.equal((await leases(h)).length, 1);
  });
});

Deno.test("port allocate --pid refuses a PID with no process", async () => {
  const owner = sleeper();
  owner.kill("SIGKILL");
  await owner.status; // now a PID with no process (until reused, which a test cannot wait for)
  await withHome(async (h) => {
    const result = await h.run(["port", "allocate", "--pid", String(owner.pid)]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`no process with PID ${owner.pid}`));
  });
});

/** `courier port exec` running the child fixture, with pipes we control. */
class Exec {
  readonly process: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stdout: ReadableStreamDefaultReader<string>;

  constructor(h: TestHome, execArgs: string[], childArgs: string[], prefix: string[] = []) {
    const courier = courierCommand([
      "--home",
      h.home,
      "port",
      "exec",
      ...execArgs,
      "--",
      ...CHILD_CMD,
      ...childArgs,
    ]);
    const [command, ...args] = [...prefix, courier.command, ...courier.args];
    this.process = new Deno.Command(command, {
      args,
      env: { NO_COLOR: "1", COURIER_LEASE_DIR: h.leaseDir },
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.process.stdin.getWriter();
    this.#stdout = this.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The child's first line: its PID and the value of the variable it was given. */
  async started(): Promise<{ pid: number; value: string | null }> {
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await this.#stdout.read();
      if (done) throw new Error(`exec ended early: ${text}`);
      text += value;
    }
    return JSON.parse(text.slice(0, text.indexOf("\n")));
  }

  /** Lets the child finish (it exits when its stdin has a line or closes). */
  async finishChild(): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode("go\n")).catch(() => {});
    await this.#stdin.close().catch(() => {});
  }

  /** Waits for courier to exit and returns its exit code. */
  async exit(): Promise<number> {
    const status = await this.process.status;
    await this.#stdout.cancel().catch(() => {});
    return status.code;
  }
}

/** Waits (boundedly) until the lease on the child's port is owned by the child. */
async function leaseOwnedBy(h: TestHome, pid: number): Promise<LeaseInfo> {
  for (let i = 0; i < 100; i++) {
    const found = (await leases(h)).find((lease) => lease.owner?.pid === pid);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`no lease owned by PID ${pid}`);
}

Deno.test("port exec sets PORT, holds the lease while the child runs, releases it after, passes the exit code", async () => {
  const a = await leaseTestPort();
  await withHome(async (h) => {
    const exec = new Exec(h, ["--range", `${a}-${a}`], ["PORT", "7"]);
    try {
      const child = await exec.started();
      assert.equal(child.value, String(a));
      const lease = await leaseOwnedBy(h, child.pid);
      assert.equal(lease.port, a);
      assert.equal(lease.alive, true);
      assert.equal(lease.expires_at, null);
      assert.match(lease.label ?? "", /port_child\.ts PORT 7$/);
      // Nobody else gets the port meanwhile.
      assert.equal((await h.run(["port", "allocate", "--range", `${a}-${a}`])).code, 1);
    } finally {
      await exec.finishChild();
    }
    assert.equal(await exec.exit(), 7);
    assert.deepEqual(await leases(h), []);
  });
});

Deno.test("port exec --env NAME sets that variable instead", async () => {
  const a = await leaseTestPort();
  await withHome(async (h) => {
    const exec = new Exec(h, ["--preferred", String(a), "--env", "HTTP_PORT"], [
      "HTTP_PORT",
      "0",
    ]);
    try {
      assert.equal((await exec.started()).value, String(a));
    } finally {
      await exec.finishChild();
    }
    assert.equal(await exec.exit(), 0);
  });
});

Deno.test("port exec forwards SIGTERM to the child and exits with the child's code", async () => {
  const a = await leaseTestPort();
  await withHome(async (h) => {
    const exec = new Exec(h, ["--range", `${a}-${a}`], ["PORT", "0", "42"]);
    try {
      const child = await exec.started();
      await leaseOwnedBy(h, child.pid);
      exec.process.kill("SIGTERM");
      assert.equal(await exec.exit(), 42);
      assert.deepEqual(await leases(h), []);
    } finally {
      await exec.finishChild();
      await exec.exit();
    }
  });
});

/** Whether `tool` can be run here (util-linux's `setsid` and `script` are not everywhere). */
function hasTool(tool: string): boolean {
  try {
    return new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "port exec passes a SIGINT from outside a terminal on to the child",
  ignore: !hasTool("setsid"),
  async fn() {
    const a = await leaseTestPort();
    await withHome(async (h) => {
      // In a session of its own, with no terminal: a SIGINT can only come from kill.
      const exec = new Exec(h, ["--range", `${a}-${a}`], ["PORT", "0"], ["setsid"]);
      try {
        const child = await exec.started();
        await leaseOwnedBy(h, child.pid);
        exec.process.kill("SIGINT");
        assert.equal(await exec.exit(), 130); // the child died of it: 128 + 2
        assert.deepEqual(await leases(h), []);
      } finally {
        await exec.finishChild();
        await exec.exit();
      }
    });
  },
});

/** Quotes `word` for a POSIX shell. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

Deno.test({
  name: "a Ctrl-C at the terminal reaches the child of port exec once, not twice",
  ignore: !hasTool("script"),
  async fn() {
    const a = await leaseTestPort();
    await withHome(async (h) => {
      // The child counts its SIGINTs, and reports the count when a line comes in.
      const child = [
        "n=0",
        `trap 'n=$((n+1)); echo "INT $n"' INT`,
        'echo "ready $PORT"',
        // A trapped signal interrupts read (status > 128): read again; end of input: give up.
        'until IFS= read -r line; do [ "$?" -gt 128 ] || exit 3; done',
        'echo "count $n"',
      ].join("\n");
      const { command, args } = courierCommand([
        "--home",
        h.home,
        "port",
        "exec",
        "--range",
        `${a}-${a}`,
        "--",
        "bash",
        "-c",
        child,
      ]);
      // `script` runs courier on a new pseudo-terminal, as the foreground job, as a shell would.
      // It starts `$SHELL -c line`; `exec` makes courier replace that shell whatever it is
      // (dash forks and waits, and would itself die of the Ctrl-C with 130), so only courier
      // and its child are in the terminal's foreground group, as under an interactive shell.
      const line = ["exec", ...[command, ...args].map(shellQuote)].join(" ");
      // COURIER_DEBUG: courier says what it did with each signal, once it has.
      const terminal = new Deno.Command("script", {
        args: ["-qfec", line, "/dev/null"],
        env: { NO_COLOR: "1", COURIER_DEBUG: "1", COURIER_LEASE_DIR: h.leaseDir },
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      // A fail-safe, not a speed limit: a session that never ends fails with what it showed.
      let stuck = false;
      const watchdog = setTimeout(() => {
        stuck = true;
        terminal.kill("SIGKILL"); // its pseudo-terminal closes: courier and the child get SIGHUP
      }, 120_000);
      const keys = terminal.stdin.getWriter();
      const screen = terminal.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let shown = "";
      const waitFor = async (pattern: RegExp) => {
        while (!pattern.test(shown)) {
          const { value, done } = await screen.read();
          if (done) throw new Error(`the terminal closed; it showed: ${shown}`);
          shown += value;
        }
      };
      try {
        await waitFor(new RegExp(`ready ${a}`));
        await keys.write(new TextEncoder().encode("\x03")); // Ctrl-C
        await waitFor(/INT 1/);
        await waitFor(/courier: (passed SIGINT|SIGINT came)[^\n]*\n/);
        assert.match(shown, /SIGINT came from the terminal[^\n]*not passed on/);
        await keys.write(new TextEncoder().encode("report\n"));
        await waitFor(/count \d+/);
        assert.match(shown, /count 1\b/);
        assert.doesNotMatch(shown, /INT 2/);
      } finally {
        // A line ends the child (if an assertion failed before it got one); then EOF ends script.
        await keys.write(new TextEncoder().encode("\n")).catch(() => {});
        await keys.close().catch(() => {});
        const status = await terminal.status;
        clearTimeout(watchdog);
        await screen.cancel().catch(() => {});
        assert.ok(!stuck, `the terminal session never ended; it showed: ${shown}`);
        assert.equal(status.code, 0, shown);
      }
      assert.deepEqual(await leases(h), []);
    });
  },
});

Deno.test("if port exec is killed with SIGKILL the lease stays with the child until it exits", async () => {
  const a = await leaseTestPort();
  await withHome(async (h) => {
    const exec = new Exec(h, ["--range", `${a}-${a}`], ["PORT", "0"]);
    let childPid = 0;
    try {
      const child = await exec.started();
      childPid = child.pid;
      await leaseOwnedBy(h, child.pid);
      exec.process.kill("SIGKILL");
      assert.equal(await exec.exit(), 137);
      const [lease] = await leases(h);
      assert.equal(lease.owner?.pid, child.pid);
      assert.equal(lease.alive, true);
      assert.equal((await h.run(["port", "allocate", "--range", `${a}-${a}`])).code, 1);
    } finally {
      // The child still reads the stdin pipe we hold: let it finish, then make sure it is gone.
      await exec.finishChild();
      const identity = childPid ? await readProcessIdentity(childPid) : null;
      if (identity && !(await waitForExit(identity, { timeoutMs: 10_000 }))) {
        await signalIfSame(identity, "SIGKILL");
      }
    }
    const gc = await h.run(["port", "gc"]);
    assert.equal(gc.stdout, "Removed 1 stale lease.\n");
  });
});

Deno.test("leases are per user, not per home: two homes allocating at once never share a port", async () => {
  await withHome(async (h) => {
    const other = h.sibling("other");
    const env = { COURIER_LEASE_DIR: h.leaseDir };
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        courier(
          ["--home", i % 2 ? h.home : other, "port", "allocate", "--range", "44000-44999"],
          { env },
        )),
    );
    assert.ok(runs.every((run) => run.code === 0), runs.map((r) => r.stderr).join(""));
    const ports = runs.map((run) => Number(run.stdout));
    assert.equal(new Set(ports).size, 8, `handed out twice: ${ports.join(" ")}`);
    const fromOther = await courier(["--home", other, "port", "list", "--json"], { env });
    assert.deepEqual(
      JSON.parse(fromOther.stdout).leases.map((l: LeaseInfo) => l.port).sort(),
      [...ports].sort(),
    );
  });
});

Deno.test("two homes starting with --port auto at once get different ports", async () => {
  await withHome(async (h) => {
    const env = { COURIER_LEASE_DIR: h.leaseDir, COURIER_PORT: String(await leaseTestPort()) };
    const homes = [h.home, h.sibling("other")];
    const started = await Promise.all(
      homes.map((home) => courier(["--home", home, "start", "--port", "auto", "--json"], { env })),
    );
    assert.ok(started.every((run) => run.code === 0), started.map((r) => r.stderr).join(""));
    const ports = started.map((run) => JSON.parse(run.stdout).port);
    assert.notEqual(ports[0], ports[1]);
    for (const home of homes) assert.equal((await courier(["--home", home, "stop"])).code, 0);
  });
});

Deno.test("port exec puts the port in place of {port} in the command line; {{port}} stays {port}", async () => {
  const a = await leaseTestPort();
  await withHome(async (h) => {
    // The README's examples, as a shell runs them (--home first: the rest is the command's).
    const exec = (args: string[]) =>
      courier(["--home", h.home, "port", "exec", ...args], {
        env: { COURIER_LEASE_DIR: h.leaseDir },
      });
    const direct = await exec(["--range", `${a}-${a}`, "--", "echo", "{port}"]);
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(direct.stdout, `${a}\n`);
    const shell = await exec([
      "--range",
      `${a}-${a}`,
      "--env",
      "HTTP_PORT",
      "--",
      "sh",
      "-c",
      'echo "$HTTP_PORT on:{port} literal:{{port}} other:{x} {{y}}"',
    ]);
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(shell.stdout, `${a} on:${a} literal:{port} other:{x} {{y}}\n`);
  });
});
