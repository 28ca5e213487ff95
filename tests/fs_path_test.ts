import assert from "node:assert/strict";
import * as node from "node:path";
import { basename, dirname, join, resolve } from "../lib/fs/path.ts";

const PATHS = [
  "",
  "/",
  "//",
  ".",
  "..",
  "a",
  "a/",
  "/a",
  "/a/",
  "/a//b///",
  "a/b/c",
  "./a/./b",
  "../a/../../b",
  "/../a",
  "/a/b/../../..",
  "a/..",
  "a/../",
  "/home/ann/.courier/run/courier.lock",
  "/srv/app/.probe-1",
  "a/b/",
  "...",
  ".hidden",
];

Deno.test("join, resolve, dirname and basename give what node:path gives", () => {
  for (const path of PATHS) {
    assert.equal(dirname(path), node.dirname(path), `dirname(${JSON.stringify(path)})`);
    assert.equal(basename(path), node.basename(path), `basename(${JSON.stringify(path)})`);
    assert.equal(resolve(path), node.resolve(path), `resolve(${JSON.stringify(path)})`);
    for (const other of PATHS) {
      const args = [path, other];
      assert.equal(join(...args), node.join(...args), `join(${JSON.stringify(args)})`);
      assert.equal(resolve(...args), node.resolve(...args), `resolve(${JSON.stringify(args)})`);
    }
  }
  assert.equal(join(), node.join());
  assert.equal(resolve(), node.resolve());
  assert.equal(join("/home/ann", ".courier", "run"), "/home/ann/.courier/run");
  assert.equal(resolve("/srv", "app", "../data"), "/srv/data");
});
