/**
 * Modules loaded with `importLazily` are hidden from `deno run`'s start-up
 * analysis, and from `deno compile`'s: the scan that lists them for
 * `--include` must find every one, and refuse a call it cannot read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lazyImports, lazyModules } from "../scripts/lazy_modules.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("every importLazily call is found, and its module exists", async () => {
  const imports = lazyImports();
  // The CLI (from main.ts), every command of the table, the daemon, the mail service.
  const targets = new Set(imports.map((i) => i.target));
  for (
    const module of [
      "lib/cli/mod.ts",
      "lib/cli/commands/start.ts",
      "lib/cli/commands/status.ts",
      "lib/service/daemon.ts",
      "lib/mail/extension.ts",
      "lib/mail/service.ts",
    ]
  ) {
    assert.ok(targets.has(module), `${module} is loaded lazily and listed`);
  }
  for (const module of lazyModules()) {
    assert.ok((await Deno.stat(join(ROOT, module))).isFile, `${module} exists`);
  }
  // Every call in the source is one the scan read: count them independently.
  let calls = 0;
  for (const file of new Set(imports.map((i) => i.file))) {
    calls += (await Deno.readTextFile(join(ROOT, file))).split("importLazily<").length - 1;
  }
  const own =
    (await Deno.readTextFile(join(ROOT, "lib/lazy/mod.ts"))).split("importLazily<").length - 1;
  assert.equal(own, 2, "lib/lazy/mod.ts: the definition and its doc example");
  assert.equal(imports.length, calls);
});

Deno.test("a call the scan cannot read, or whose type names another module, is an error", async () => {
  const root = await Deno.makeTempDir({ prefix: "courier-lazy-" });
  try {
    await Deno.mkdir(join(root, "lib"));
    await Deno.writeTextFile(join(root, "main.ts"), "");
    const file = join(root, "lib", "x.ts");
    await Deno.writeTextFile(
      file,
      'await importLazily<typeof import("./a.ts")>("./a.ts", import.meta.url);\n',
    );
    assert.deepEqual(lazyModules(root), ["lib/a.ts"]);
    await Deno.writeTextFile(
      file,
      'const spec = "./a.ts";\nawait importLazily<unknown>(spec, url);\n',
    );
    assert.throws(() => lazyImports(root), /lib\/x\.ts: an importLazily call is not in the form/);
    await Deno.writeTextFile(
      file,
      'await importLazily<typeof import("./a.ts")>("./b.ts", import.meta.url);\n',
    );
    assert.throws(() => lazyImports(root), /names "\.\/a\.ts" as its type but loads "\.\/b\.ts"/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
