import assert from "node:assert/strict";
import { homeLayout } from "../lib/home/mod.ts";
import { withHome } from "./helpers/courier.ts";
import { apiGet, apiPost, startDaemon, stopDaemon, writeHomeConfig } from "./helpers/api.ts";
import { eventually, webhookReceiver } from "./helpers/mail.ts";

Deno.test("the log tells the mail activity (ids and counts, never a text)", async () => {
  const receiver = webhookReceiver([200]);
  try {
    await withHome(async (h) => {
      await writeHomeConfig(h, { outbound: { lark: { url: `${receiver.url}?token=secret` } } });
      const d = await startDaemon(h, ["--debounce-window", "20", "--debounce-max-wait", "50"]);
      const secret = "the launch code is 0000";
      for (const session of ["a", "b"]) {
        await apiPost(d, "/api/v1/inbound/lark", {
          session_id: session,
          sender: { id: "u" },
          text: secret,
          message_id: `id-${session}`,
        });
      }
      await apiPost(d, "/api/v1/inbound/lark", {
        session_id: "a",
        sender: { id: "u" },
        text: "again",
        message_id: "id-a",
      });
      await eventually(async () =>
        ((await apiGet(d, "/api/v1/messages?status=new")).body.count as number) === 2
      );
      const one = await apiPost(d, "/api/v1/messages/claim-next", { agent_id: "bot" });
      await apiPost(d, `/api/v1/messages/${one.body.id}/complete`, { agent_id: "bot" });
      const two = await apiPost(d, "/api/v1/messages/claim-next", { agent_id: "bot" });
      await apiPost(d, `/api/v1/messages/${two.body.id}/fail`, { agent_id: "bot", reason: "nope" });
      const sent = await apiPost(d, "/api/v1/outbound/lark", { to: "a", text: secret });
      await eventually(async () =>
        ((await apiGet(d, "/health")).body.metrics as { sent: number }).sent === 1
      );
      await stopDaemon(d);
      const log = await Deno.readTextFile(homeLayout(h.home).logFile);
      for (
        const expected of [
          /mail: received 2 message\(s\) and 1 repeated message id\(s\)/,
          new RegExp(`mail: wrote ${one.body.id} \\(1 message\\(s\\) via lark`),
          new RegExp(`mail: ${one.body.id} claimed by "bot" until`),
          new RegExp(`mail: ${one.body.id} completed by "bot"`),
          new RegExp(`mail: ${two.body.id} failed by "bot" \\(attempt 1 of 3\\): nope`),
          new RegExp(`mail: queued outbound ${sent.body.id} via lark`),
          new RegExp(`mail: delivered ${sent.body.id} via webhook \\(provider lark\\)`),
        ]
      ) {
        assert.match(log, expected);
      }
      assert.ok(!log.includes(secret), "no message text in the log");
      assert.ok(!log.includes("token=secret"), "no delivery URL (it may hold a secret)");
    });
  } finally {
    await receiver.close();
  }
});
