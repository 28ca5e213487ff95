/**
 * A read of a mail that races its move (done, dead) reads it where it went:
 * it does not drop the moved mail from the index. (Seen as a dead mail that
 * answered 404 for good after a `GET` came while it was dead-lettered.)
 */
import assert from "node:assert/strict";
import {
  type MailContext,
  type MailDocument,
  MailIndex,
  type MailLocation,
  makeRecord,
  readMail,
} from "../lib/mail/mod.ts";

Deno.test("readMail of an entry whose mail moved meanwhile reads the moved mail and keeps it", async () => {
  const index = new MailIndex({ now: Date.now });
  const record = (location: MailLocation) =>
    makeRecord({
      id: "lark_moved",
      provider: "lark",
      direction: "inbound",
      location,
      timestamp_ms: 1,
      received_ms: 1,
      session: { id: "s", type: "direct" },
      preview: "x",
      message_count: 1,
      attempts: 3,
    });
  const stale = index.put(record("inbound"));
  index.put(record("deadletter")); // moved while the reader held `stale`
  const doc = { frontMatter: { id: "lark_moved" }, body: "" } as unknown as MailDocument;
  const warnings: string[] = [];
  const ctx = {
    index,
    store: {
      pathOf: (r: { location: string }) => `/mailbox/${r.location}/lark_moved.md`,
      read: (r: { location: string }) =>
        r.location === "deadletter"
          ? Promise.resolve(doc)
          : Promise.reject(new Deno.errors.NotFound("gone")),
    },
    claims: { release() {} },
    log: { warn: (m: string) => warnings.push(m), info() {}, error() {} },
  } as unknown as MailContext;
  assert.equal(await readMail(ctx, stale), doc);
  assert.equal(index.get("lark_moved")?.status, "dead", "the moved mail stays in the index");
  assert.deepEqual(warnings, []);
});
