import assert from "node:assert/strict";
import { displayWidth, formatTable } from "../lib/cli/output.ts";

Deno.test("display width: wide and fullwidth characters count 2, combining marks 0", () => {
  assert.equal(displayWidth("Ops"), 3);
  assert.equal(displayWidth("运维团队"), 8);
  assert.equal(displayWidth("ｆｕｌｌ"), 8); // fullwidth Latin
  assert.equal(displayWidth("한국어"), 6);
  assert.equal(displayWidth("カタカナ"), 8);
  assert.equal(displayWidth("e\u0301te\u0301"), 3); // e, t, e with combining acutes
  assert.equal(displayWidth("\x1b[31mred\x1b[0m"), 3); // colour codes take no room
  assert.equal(displayWidth("a\u200bb"), 2); // zero-width space
  assert.equal(displayWidth("🚀 ok"), 5);
  assert.equal(displayWidth("𠮷"), 2); // outside the BMP
});

Deno.test("formatTable pads by display width, so CJK names line up", () => {
  const lines = formatTable(["SESSION", "FROM", "ID"], [
    ["Ops", "Alice", "a1"],
    ["运维团队", "张伟", "b2"],
    ["Cafe\u0301", "Zoë", "c3"],
  ]);
  assert.deepEqual(lines, [
    "SESSION   FROM   ID",
    "Ops       Alice  a1",
    "运维团队  张伟   b2",
    "Cafe\u0301      Zoë    c3",
  ]);
  // Every row's last column starts at the same screen column.
  const starts = lines.map((line) => displayWidth(line.slice(0, line.lastIndexOf(" ") + 1)));
  assert.equal(new Set(starts).size, 1, JSON.stringify(starts));
});
