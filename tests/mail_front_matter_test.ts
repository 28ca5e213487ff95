import assert from "node:assert/strict";
import { seededRandom } from "./helpers/mail.ts";
import { parse, stringify } from "yaml";
import {
  buildInboundMail,
  buildOutboundMail,
  type MailMessage,
  parseFrontMatterFast,
  renderMail,
  UnsupportedYaml,
} from "../lib/mail/mod.ts";

/** Pieces of ordinary chat text. */
const CHAT = [
  "deploy",
  "is",
  "red",
  "again",
  " ",
  " ",
  " ",
  ", ",
  ". ",
  "? ",
  "!",
  "\n",
  "\n\n",
  ": ",
  "#42",
  "@here",
  "https://example.com/a?b=1#c",
  "`code`",
  "*bold*",
  "_it_",
  "'quoted'",
  '"double"',
  "中文",
  "🚀",
  "é",
  "- item",
  "1.",
  "100%",
  "(x)",
  "[link](y)",
  "a: b",
  "C:\\path",
  "\t",
];

/** Anything at all, including what no chat sends. */
const PIECES = [
  "a",
  "Z",
  "0",
  "7",
  " ",
  "  ",
  "\t",
  "\n",
  "\n\n",
  ":",
  ": ",
  "#",
  " #",
  "-",
  "- ",
  "---",
  "...",
  "'",
  '"',
  "\\",
  "`",
  "*",
  "&",
  "!",
  "|",
  ">",
  "%",
  "@",
  "?",
  "[",
  "]",
  "{",
  "}",
  ",",
  "é",
  "中文",
  "🚀",
  "\u0000",
  "\u0007",
  "\u001b",
  "\u0085",
  "\u00a0",
  "\u2028",
  "\ufeff",
  "\r",
  "\r\n",
  "true",
  "null",
  "~",
  "yes",
  "0x1F",
  "1e3",
  ".inf",
  "0o17",
  "-12",
  "3.",
  "NaN",
  "=",
  "<<",
];

let pieces = PIECES;

function text(rnd: () => number): string {
  let out = "";
  const n = Math.floor(rnd() * 12);
  for (let i = 0; i < n; i++) out += pieces[Math.floor(rnd() * pieces.length)];
  return out;
}

function messages(rnd: () => number): MailMessage[] {
  return Array.from({ length: 1 + Math.floor(rnd() * 3) }, (_, i) => ({
    message_id: rnd() < 0.5 ? text(rnd) || "m" : String(Math.floor(rnd() * 1e6)),
    sender: { id: text(rnd) || "u", name: text(rnd) },
    time: new Date(1.7e12 + i).toISOString(),
    received_at: new Date(1.7e12 + i).toISOString(),
    text: text(rnd),
    pending_key: crypto.randomUUID(),
    ...(rnd() < 0.5 ? { extra: { [text(rnd) || "k"]: text(rnd), n: rnd() < 0.5 ? 1.5 : -3 } } : {}),
  }));
}

/** Renders random mails and compares the fast reader with the YAML parser; counts refusals. */
function compare(seed: number, rounds: number): { fast: number; refused: number } {
  const rnd = seededRandom(seed);
  let fast = 0, refused = 0;
  for (let round = 0; round < rounds; round++) {
    const doc = rnd() < 0.8
      ? buildInboundMail(
        {
          provider: "lark",
          session: {
            id: text(rnd) || "s",
            type: "group",
            ...(rnd() < 0.5 ? { name: text(rnd) } : {}),
            ...(rnd() < 0.3 ? { thread_key: text(rnd) || "t" } : {}),
          },
        },
        messages(rnd),
      )
      : buildOutboundMail("slack", { to: text(rnd) || "x", text: text(rnd) }, {
        replyTo: rnd() < 0.5 ? text(rnd) : undefined,
      });
    if (rnd() < 0.3) {
      doc.frontMatter.delivery.failures.push({ at: "2026-01-01T00:00:00.000Z", reason: text(rnd) });
      doc.frontMatter.delivery.attempts = 1;
    }
    const rendered = renderMail(doc);
    const yamlText = rendered.slice(4, rendered.indexOf("\n---\n", 3) + 1);
    const expected = parse(yamlText);
    try {
      assert.deepEqual(parseFrontMatterFast(yamlText), expected, yamlText);
      fast++;
    } catch (error) {
      if (!(error instanceof UnsupportedYaml)) throw error;
      refused++;
    }
  }
  return { fast, refused };
}

Deno.test("front matter: on any text the fast reader gives what the YAML parser gives, or refuses", () => {
  pieces = PIECES;
  const { fast, refused } = compare(
    Number(Deno.env.get("FUZZ_SEED") ?? 42),
    Number(Deno.env.get("FUZZ_ROUNDS") ?? 2000),
  );
  assert.ok(fast > 0 && refused > 0, `fast ${fast}, refused ${refused}`);
});

Deno.test("front matter: the fast reader takes ordinary chat mail (at least 98%)", () => {
  // It refuses double-quoted text folded over lines (text with spaces before a line break).
  pieces = CHAT;
  const { fast, refused } = compare(7, 2000);
  assert.ok(refused * 50 <= fast + refused, `fast ${fast}, refused ${refused}`);
});

Deno.test("front matter: block scalars, chomping and nesting as the YAML parser reads them", () => {
  const values = [
    { a: "x\ny", b: "x\ny\n", c: "x\n\n", d: "\n", e: "  indented\nfirst", f: "" },
    { list: [{ k: "v\nw" }, "plain", 3, null, true], empty: [], none: {} },
    { deep: { deeper: { deepest: ["a", ["b", "c"]] } } },
  ];
  for (const value of values) {
    const yamlText = stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
    try {
      assert.deepEqual(parseFrontMatterFast(yamlText), parse(yamlText), yamlText);
    } catch (error) {
      if (!(error instanceof UnsupportedYaml)) throw error;
    }
  }
  for (const bad of ["a: &x 1\n", "a: !!str 1\n", "a: [1, 2]\n", "a: >\n  folded\n", "a:\tb\n"]) {
    assert.throws(() => parseFrontMatterFast(bad), UnsupportedYaml, bad);
  }
});
