import assert from "node:assert/strict";
import {
  buildInboundMail,
  buildOutboundMail,
  compactUtc,
  mailFileName,
  MailFormatError,
  type MailMessage,
  parseMail,
  renderMail,
} from "../lib/mail/mod.ts";

const tricky = [
  "---",
  "plain: text with a colon",
  "yes",
  "0123",
  "- a list item?",
  "# not a heading in YAML",
  "emoji 🚀 and 中文",
  "  leading spaces\n\ttabs\n---\nand a line that is only dashes",
  "'quotes' \"double\" `ticks` *stars* [link](x)",
  "",
];

function message(i: number, text: string): MailMessage {
  return {
    message_id: String(1000 + i),
    sender: { id: `u${i % 2}`, name: i % 2 ? "Bob: the builder" : "Ann" },
    time: `2026-03-04T05:06:${String(i).padStart(2, "0")}.000Z`,
    received_at: `2026-03-04T05:06:${String(i).padStart(2, "0")}.500Z`,
    text,
    extra: { n: i, nested: { ok: true } },
    pending_key: `k${i}`,
  };
}

Deno.test("mail file: any text survives a render/parse round trip", () => {
  const messages = tricky.map((text, i) => message(i, text));
  const doc = buildInboundMail({
    provider: "lark",
    session: { id: "123", type: "group", name: "Ops: night shift", thread_key: "t-1" },
  }, messages);
  const text = renderMail(doc);
  assert.ok(text.startsWith("---\nid: lark_"));
  const back = parseMail(text);
  assert.deepEqual(back.frontMatter, doc.frontMatter);
  assert.equal(back.body, doc.body);
  assert.deepEqual(back.frontMatter.messages.map((m) => m.text), tricky);
  assert.equal(back.frontMatter.session.id, "123", "numeric-looking strings stay strings");
  assert.deepEqual(back.frontMatter.participants.senders?.map((s) => s.id), ["u0", "u1"]);
  assert.ok(!/[&*]a\d/.test(text.split("\n---\n")[0]), "no YAML anchors or aliases");
});

Deno.test("mail file: outbound mails and file names", () => {
  const doc = buildOutboundMail("dingtalk", { to: "chat-9", text: "hi" }, {
    replyTo: "lark_x",
    now: new Date("2026-12-31T23:59:58.123Z"),
    uid: "abc",
  });
  assert.equal(doc.frontMatter.id, "dingtalk_abc");
  assert.equal(doc.frontMatter.direction, "outbound");
  assert.equal(doc.frontMatter.reply_to, "lark_x");
  assert.equal(mailFileName(doc.frontMatter), "20261231T235958_dingtalk_abc.md");
  assert.equal(compactUtc(new Date("2026-01-02T03:04:05Z")), "20260102T030405");
  assert.deepEqual(parseMail(renderMail(doc)).frontMatter, doc.frontMatter);
});

Deno.test("mail file: files that are not mails are rejected with MailFormatError", () => {
  assert.throws(() => parseMail("no front matter"), MailFormatError);
  assert.throws(() => parseMail("---\nid: x\n"), MailFormatError);
  assert.throws(() => parseMail("---\n: : :\n  - [\n---\n"), MailFormatError);
  assert.throws(() => parseMail("---\nid: x\nprovider: y\n---\n"), MailFormatError);
});
