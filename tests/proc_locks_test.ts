/**
 * `/proc/locks` comes a page at a time: a lock held all along must still be
 * found while other processes take and drop locks between the pages.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readKernelLocks } from "../lib/proc/mod.ts";

const CHURNER = `
const files = [];
for (let i = 0; i < 40; i++) files.push(Deno.openSync(Deno.args[0] + "/c" + i, { create: true, write: true }));
let stop = false;
Deno.stdin.read(new Uint8Array(1)).then(() => { stop = true; });
console.log("churning");
while (!stop) {
  for (let round = 0; round < 200; round++) {
    for (const f of files) f.lockSync(true);
    for (const f of files) f.unlockSync();
  }
  await new Promise((resolve) => setTimeout(resolve, 0)); // let the stop request in
}
`;

Deno.test({
  name: "readKernelLocks finds a held lock while others churn the lock table",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "courier-locks-" });
    const held: Deno.FsFile[] = [];
    const churner = new Deno.Command(Deno.execPath(), {
      args: ["eval", CHURNER, dir],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    try {
      // Enough locks of our own that the table spans several pages.
      for (let i = 0; i < 150; i++) {
        const file = await Deno.open(join(dir, `h${i}`), { create: true, write: true });
        file.lockSync(true);
        held.push(file);
      }
      const target = join(dir, "h75");
      const inode = (await Deno.stat(target)).ino;
      const reader = churner.stdout.pipeThrough(new TextDecoderStream()).getReader();
      assert.match((await reader.read()).value ?? "", /churning/);
      let misses = 0;
      for (let i = 0; i < 1000; i++) {
        const locks = await readKernelLocks();
        assert.ok(locks, "/proc/locks is readable");
        if (!locks.some((lock) => lock.inode === inode && lock.pid === Deno.pid)) misses++;
      }
      assert.equal(misses, 0, `a held lock was missing from ${misses} of 1000 readings`);
      await reader.cancel();
    } finally {
      await churner.stdin.close().catch(() => {});
      await churner.status;
      for (const file of held) file.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
