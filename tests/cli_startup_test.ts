/**
 * What courier loads before it does anything: the command table is light
 * (its static import graph holds no command's implementation), and the
 * fast paths (`--version`, `--help`, `completions`, `status`,
 * `start --if-not-running` of a running daemon) load no Node built-in and
 * no npm package. Which modules a process evaluated is read from Deno's
 * debug log (`-L debug`: one "code cache" line per module); where that log
 * says nothing of modules (a Deno that words it differently), those tests
 * are skipped and say why.
 */
import assert from "node:assert/strict";
import { MAIN, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";

const ROOT = new URL("..", import.meta.url).href;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** Modules the command table may load besides lib/cli, lib/errors and lib/version. */
const LIGHT_LEAVES = [
  "lib/service/defaults.ts",
  "lib/ports/range.ts",
  "lib/completions/shells.ts",
];

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

interface Info {
  modules: InfoModule[];
}

async function denoInfo(module: string): Promise<Info> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--config", CONFIG, module],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The modules that loading `module` loads: its static import graph, as paths from the root. */
async function staticGraph(module: string): Promise<string[]> {
  const info = await denoInfo(new URL(module, ROOT).pathname);
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const visit = (specifier: string) => {
    if (seen.has(specifier)) return;
    seen.add(specifier);
    for (const dep of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dep.code && !dep.isDynamic) visit(dep.code.specifier);
    }
  };
  visit(new URL(module, ROOT).href);
  return [...seen].map((s) => s.startsWith(ROOT) ? s.slice(ROOT.length) : s);
}

const isLight = (m: string) =>
  m === "main.ts" || m === "deno.json" || /^lib\/(cli|errors|version|lazy)\//.test(m) ||
  LIGHT_LEAVES.includes(m);

Deno.test("a courier call loads the command table's names, not its commands", async () => {
  // main.ts answers --version itself and imports the CLI (lib/cli/mod.ts) for everything else.
  assert.deepEqual((await staticGraph("main.ts")).filter((m) => !isLight(m)), []);
  const graph = await staticGraph("lib/cli/mod.ts");
  assert.ok(graph.includes("lib/cli/commands/table.ts"), graph.join(" "));
  assert.deepEqual(graph.filter((m) => !isLight(m)), []);
  const commands = graph.filter((m) => /^lib\/cli\/commands\//.test(m));
  assert.deepEqual(
    commands,
    ["lib/cli/commands/table.ts"],
    "each command's module loads on demand",
  );
});

Deno.test("a command's module imports no implementation, no Node built-in, no npm", async () => {
  const dir = new URL("../lib/cli/commands/", import.meta.url);
  const modules = [...Deno.readDirSync(dir)].map((e) => e.name)
    .filter((name) => name.endsWith(".ts") && name !== "mod.ts" && name !== "table.ts");
  assert.ok(modules.includes("start.ts"), modules.join(" "));
  for (const name of modules) {
    const heavy = (await staticGraph(`lib/cli/commands/${name}`)).filter((m) => !isLight(m));
    assert.deepEqual(
      heavy,
      [],
      `lib/cli/commands/${name} may import at its top only ../command.ts, ../args.ts, ` +
        "../output.ts, ../../errors/mod.ts (and constants of a module without imports); " +
        "import the rest inside run() with importLazily (lib/lazy)",
    );
  }
});

/** The modules a courier process evaluated, in order, or `null` when the log does not say. */
async function evaluated(args: string[]): Promise<{ modules: string[] | null; code: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "-L", "debug", "--config", CONFIG, MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { modules: moduleLines(new TextDecoder().decode(out.stderr)), code: out.code };
}

/** The evaluated modules named in Deno's debug log, `null` when it names none. */
function moduleLines(log: string): string[] | null {
  const modules = [
    ...log.matchAll(/(?:code cache hit for|Updating V8 code cache for) ES module: ([^,\s]+)/g),
  ]
    .map((m) => m[1].startsWith(ROOT) ? m[1].slice(ROOT.length) : m[1]);
  return modules.length > 0 ? modules : null;
}

const NOT_ON_FAST_PATHS = /^(ext:deno_node\/|node:|npm:)|node_modules|lib\/mail\/service\.ts|yaml/;

function assertLight(what: string, modules: string[]): void {
  const heavy = modules.filter((m) => NOT_ON_FAST_PATHS.test(m));
  assert.deepEqual(heavy, [], `${what} loaded ${heavy.join(", ")}`);
}

Deno.test("--version, --help and completions load no Node built-in", async () => {
  for (const args of [["--version"], ["--help"], ["completions", "bash"]]) {
    const { modules, code } = await evaluated(args);
    assert.equal(code, 0);
    if (!modules) {
      console.log(`skipped: deno -L debug names no evaluated modules (Deno ${Deno.version.deno})`);
      return;
    }
    assertLight(args.join(" "), modules);
    assert.ok(!modules.includes("lib/service/status.ts"), `${args.join(" ")} loaded status.ts`);
    if (args[0] === "--version") {
      const commands = modules.filter((m) => /^lib\/cli\/commands\/(?!table)/.test(m));
      assert.deepEqual(commands, [], "--version loads no command's module");
    }
  }
});

Deno.test("status and start --if-not-running of a running daemon load no Node built-in", async () => {
  await withHome(async (h) => {
    const stopped = await evaluated(["status", "--home", h.home]);
    assert.equal(stopped.code, 3);
    if (!stopped.modules) {
      console.log(`skipped: deno -L debug names no evaluated modules (Deno ${Deno.version.deno})`);
      return;
    }
    assertLight("status (stopped)", stopped.modules);
    const port = String(await leaseTestPort());
    assert.equal((await h.run(["start", "--port", port])).code, 0);
    try {
      for (
        const args of [
          ["status"],
          ["status", "--json"],
          ["start", "--if-not-running", "--port", port],
        ]
      ) {
        const { modules, code } = await evaluated([...args, "--home", h.home]);
        assert.equal(code, 0, args.join(" "));
        assertLight(args.join(" "), modules ?? []);
        assert.ok(
          !modules?.includes("lib/service/control.ts"),
          `${args.join(" ")} loaded what spawning a daemon needs`,
        );
        const commands = (modules ?? []).filter((m) => /^lib\/cli\/commands\/(?!table)/.test(m));
        assert.deepEqual(commands, [`lib/cli/commands/${args[0]}.ts`], "only its command's module");
      }
    } finally {
      await h.run(["stop"]);
    }
  });
});
