import assert from "node:assert/strict";
import { seededRandom } from "./helpers/mail.ts";
import {
  compareKeys,
  type IndexEntry,
  type IndexQuery,
  MailIndex,
  type MailKey,
  type MailStatus,
  makeRecord,
  SortedList,
} from "../lib/mail/mod.ts";

Deno.test("SortedList: adds, deletes and walks like a sorted array", () => {
  const rnd = seededRandom(1);
  const list = new SortedList<MailKey, MailKey>(compareKeys);
  let reference: MailKey[] = [];
  for (let round = 0; round < 5000; round++) {
    const key = { ms: Math.floor(rnd() * 300), id: `id-${Math.floor(rnd() * 50)}` };
    if (rnd() < 0.65) {
      list.add(key);
      reference = reference.filter((k) => compareKeys(k, key) !== 0);
      reference.push(key);
    } else {
      const had = reference.some((k) => compareKeys(k, key) === 0);
      assert.equal(list.delete(key), had);
      reference = reference.filter((k) => compareKeys(k, key) !== 0);
    }
  }
  reference.sort(compareKeys);
  assert.equal(list.size, reference.length);
  assert.deepEqual([...list], reference);
  assert.deepEqual(list.first(), reference[0]);
  assert.deepEqual(list.last(), reference.at(-1));
  for (let i = 0; i < 200; i++) {
    const from = { ms: Math.floor(rnd() * 310) - 5, id: `id-${Math.floor(rnd() * 50)}` };
    for (const exclusive of [true, false]) {
      const up = reference.filter((k) =>
        exclusive ? compareKeys(k, from) > 0 : compareKeys(k, from) >= 0
      );
      assert.deepEqual([...list.walk({ from, exclusive })], up);
      const down = reference.filter((k) =>
        exclusive ? compareKeys(k, from) < 0 : compareKeys(k, from) <= 0
      )
        .reverse();
      assert.deepEqual([...list.walk({ from, exclusive, descending: true })], down);
    }
  }
  assert.deepEqual([...list.walk({ descending: true })], [...reference].reverse());
});

const STATUSES: MailStatus[] = ["new", "retrying", "claimed", "queued", "done", "dead"];

Deno.test("MailIndex: queries by status, provider, direction and conversation match a full scan", () => {
  const rnd = seededRandom(7);
  let now = 1_000_000;
  const index = new MailIndex({ now: () => now });
  for (let i = 0; i < 3000; i++) {
    const location =
      (["inbound", "outbound", "archive", "deadletter"] as const)[Math.floor(rnd() * 4)];
    const direction = location === "outbound"
      ? "outbound"
      : location === "inbound"
      ? "inbound"
      : rnd() < 0.5
      ? "outbound"
      : "inbound";
    index.put(
      makeRecord({
        id: `${rnd() < 0.5 ? "lark" : "slack"}_${i}`,
        provider: rnd() < 0.5 ? "lark" : "slack",
        direction,
        location,
        timestamp_ms: 0,
        received_ms: Math.floor(rnd() * 500),
        session: { id: `s${Math.floor(rnd() * 20)}`, type: "group" },
        preview: "",
        message_count: 1,
        attempts: 0,
        retry_ms: location === "inbound" && rnd() < 0.3 ? now + 1000 : undefined,
      }),
      { claimed: location === "inbound" && rnd() < 0.3 },
    );
  }
  const all = [...index.entries()];
  for (let q = 0; q < 400; q++) {
    const statuses = STATUSES.filter(() => rnd() < 0.3);
    const query: IndexQuery = {
      statuses,
      limit: 1 + Math.floor(rnd() * 40),
      order: rnd() < 0.5 ? "oldest" : "newest",
      ...(rnd() < 0.4 ? { provider: rnd() < 0.5 ? "lark" : "slack" } : {}),
      ...(rnd() < 0.3 ? { direction: rnd() < 0.5 ? "inbound" : "outbound" } : {}),
      ...(rnd() < 0.3 ? { session_id: `s${Math.floor(rnd() * 20)}` } : {}),
      ...(rnd() < 0.4 ? { after: { ms: Math.floor(rnd() * 500), id: "lark_1500" } } : {}),
    };
    const sign = query.order === "newest" ? -1 : 1;
    const expected = all.filter((e: IndexEntry) =>
      (statuses.length === 0 || statuses.includes(e.status)) &&
      (query.provider === undefined || e.record.provider === query.provider) &&
      (query.direction === undefined || e.record.direction === query.direction) &&
      (query.session_id === undefined || e.record.session.id === query.session_id) &&
      (query.after === undefined || sign * compareKeys(e, query.after) > 0)
    ).sort((a, b) => sign * compareKeys(a, b));
    const got = index.query(query);
    assert.deepEqual(got.entries.map((e) => e.id), expected.slice(0, query.limit).map((e) => e.id));
    assert.equal(got.more, expected.length > query.limit);
  }
  // Retry times pass: retrying mails become new, and say so.
  const claimable: string[] = [];
  index.onClaimable = (entry) => claimable.push(entry.id);
  const retrying = index.count("retrying");
  assert.ok(retrying > 0);
  now += 1000;
  index.refresh();
  assert.equal(index.count("retrying"), 0);
  assert.equal(claimable.length, retrying);
  index.stop();
});
