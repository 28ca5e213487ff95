/** The small-file reader used on the port registry's hot path. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readSmallTextSync } from "../lib/fs/mod.ts";

Deno.test("readSmallTextSync reads small, large and /proc files whole, and throws NotFound", async () => {
  const dir = await Deno.makeTempDir({ prefix: "courier-read-" });
  try {
    const small = join(dir, "small.json");
    await Deno.writeTextFile(small, '{"a":1}');
    assert.equal(readSmallTextSync(small), '{"a":1}');
    // Larger than the kept buffer, with multi-byte characters across every chunk boundary.
    const large = join(dir, "large.txt");
    const text = "é€".repeat(40_000);
    await Deno.writeTextFile(large, text);
    assert.equal(readSmallTextSync(large), text);
    assert.equal(readSmallTextSync(small), '{"a":1}'); // the grown buffer holds no stale bytes
    await Deno.writeTextFile(join(dir, "empty"), "");
    assert.equal(readSmallTextSync(join(dir, "empty")), "");
    if (Deno.build.os === "linux") {
      assert.match(readSmallTextSync("/proc/self/stat"), new RegExp(`^${Deno.pid} \\(`));
    }
    assert.throws(() => readSmallTextSync(join(dir, "missing")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
