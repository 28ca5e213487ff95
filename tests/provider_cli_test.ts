/**
 * `courier provider list|check` and the start-up checks of `config.json`
 * `providers`, as a user runs them: a bad entry or a missing `env:`
 * variable refuses `courier start` (exit 1, the key named, never a secret),
 * `check` asks each platform (here its fake) without a running daemon and
 * says what is wrong, `list` works without a daemon too.
 */
import assert from "node:assert/strict";
import { writeHomeConfig } from "./helpers/api.ts";
import { json, withHome } from "./helpers/courier.ts";
import { leaseTestPort } from "./helpers/ports.ts";
import { FakeDingTalk } from "./fakes/dingtalk_server.ts";
import { FakeLark } from "./fakes/lark_server.ts";
import { FAKE_SLACK, FakeSlack } from "./fakes/slack_server.ts";
import { FAKE_TELEGRAM, FakeTelegram } from "./fakes/telegram_server.ts";

Deno.test("courier start refuses a bad providers entry at once, naming the key, never the secret", async () => {
  await withHome(async (h) => {
    const bot = { type: "slack", mode: "socket", bot_token: "env:CLI_BOT_TOKEN" };
    const env = { CLI_BOT_TOKEN: "xoxb-secret-value-1234" };
    for (
      const [providers, extra, reason] of [
        [
          { team: { ...bot, app_token: "env:CLI_UNSET_APP_TOKEN" } },
          {},
          /^courier: config\.json providers\.team\.app_token: the environment variable CLI_UNSET_APP_TOKEN is not set; set it before starting courier$/,
        ],
        [{ team: { ...bot, type: "matrix" } }, {}, /providers\.team\.type: must be one of "slack"/],
        [{ "my team": bot }, {}, /providers\.my team: a provider name holds 1-64 letters/],
        [
          { team: { ...bot, app_token: "xoxb-not-an-app-token" } },
          {},
          /providers\.team\.app_token: must be an app-level token \(xapp-…\)/,
        ],
        [
          { team: { ...bot, app_token: "xapp-1" } },
          { outbound: { team: { url: "http://127.0.0.1:9/hook" } } },
          /config\.json outbound\.team: "team" is a chat provider/,
        ],
      ] as const
    ) {
      await writeHomeConfig(h, { ...extra, providers });
      const result = await h.run(["start", "--port", String(await leaseTestPort())], { env });
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr.split("\n")[0], reason);
      assert.ok(!result.stderr.includes(env.CLI_BOT_TOKEN), "the secret is not shown");
      assert.equal((await h.run(["status"])).code, 3, "nothing runs");
    }
  });
});

Deno.test("courier provider check asks each platform without a daemon and says what is wrong", async () => {
  await using slack = await FakeSlack.start();
  await using telegram = await FakeTelegram.start();
  const lark = await FakeLark.start();
  const ding = await FakeDingTalk.start();
  try {
    await withHome(async (h) => {
      await writeHomeConfig(h, {
        providers: {
          team: { ...slack.config({ mode: "socket" }), bot_token: "env:CLI_SLACK_BOT" },
          tg: { ...telegram.config(), bot_token: "env:CLI_TG_BOT" },
          feishu: {
            type: "lark",
            verification_token: "v-token",
            app_id: "cli_fake",
            app_secret: "env:CLI_LARK_SECRET",
            api_base: lark.apiBase,
          },
          ding: {
            type: "dingtalk",
            client_id: "dingfake",
            client_secret: "env:CLI_DING_SECRET",
            api_base: ding.apiBase,
          },
        },
      });
      const good = {
        CLI_SLACK_BOT: FAKE_SLACK.botToken,
        CLI_TG_BOT: FAKE_TELEGRAM.token,
        CLI_LARK_SECRET: "fake-app-secret",
        CLI_DING_SECRET: "fake-client-secret",
      };
      const check = (name: string, env: Record<string, string> = good, json = false) =>
        h.run(["provider", "check", name, ...(json ? ["--json"] : [])], { env });

      const team = await check("team");
      assert.equal(team.code, 0, team.stderr);
      assert.equal(
        team.stdout.trim(),
        "team (slack, socket): ok: bot token works: courier (UBOT) in workspace Fake Team " +
          "(TTEAM); app token works for Socket Mode",
      );
      const tg = await check("tg");
      assert.equal(tg.code, 0, tg.stderr);
      assert.match(tg.stdout, /^tg \(telegram, polling\): ok: bot token works: @courier_test_bot/);
      assert.match((await check("feishu")).stdout, /^feishu \(lark, webhook\): ok: tenant access/);
      assert.match((await check("ding")).stdout, /^ding \(dingtalk, webhook\): ok: access token/);

      // Wrong credentials: exit 1, and what the platform said, with what to do.
      const badSlack = await check("team", { ...good, CLI_SLACK_BOT: "xoxb-revoked-token-1" });
      assert.equal(badSlack.code, 1);
      assert.match(
        badSlack.stderr,
        /bot_token: Slack auth\.test failed: invalid_auth: the token was rejected/,
      );
      const badLark = await check("feishu", { ...good, CLI_LARK_SECRET: "wrong-secret" });
      assert.equal(badLark.code, 1);
      assert.match(badLark.stderr, /10014 app secret invalid; check app_id and app_secret/);
      const badDing = await check("ding", { ...good, CLI_DING_SECRET: "wrong-secret" }, true);
      assert.equal(badDing.code, 1);
      const result = json<{ ok: boolean; detail: string; name: string }>(badDing);
      assert.equal(result.ok, false);
      assert.match(result.detail, /invalidClientIdOrSecret/);
      telegram.webhookUrl = "https://example.org/hook";
      const blocked = await check("tg");
      assert.equal(blocked.code, 1);
      assert.match(blocked.stderr, /a webhook is set .* so getUpdates will fail/);

      // No such provider; a variable not set in this shell.
      const unknown = await check("nope");
      assert.equal(unknown.code, 64);
      assert.match(
        unknown.stderr,
        /no provider "nope" in config\.json \(it has team, tg, feishu, ding\)/,
      );
      const unset = await check("team", {});
      assert.equal(unset.code, 1);
      assert.match(
        unset.stderr,
        /providers\.team\.bot_token: the environment variable CLI_SLACK_BOT/,
      );
      for (const run of [team, tg, badSlack, badLark, badDing, unset]) {
        for (const secret of [...Object.values(good), "xoxb-revoked-token-1"]) {
          assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), secret);
        }
      }

      // list without a daemon: config.json's entries, checked in this environment.
      const list = await h.run(["provider", "list"], { env: good });
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^team\s+slack\s+socket\s+-/m);
      assert.match(list.stdout, /courier is not running: the providers as config\.json has them/);
      const listed = json<{ live: boolean; providers: { name: string; config_error?: string }[] }>(
        await h.run(["provider", "list", "--json"]),
      );
      assert.equal(listed.live, false);
      assert.match(String(listed.providers[0].config_error), /CLI_SLACK_BOT is not set/);
    });
  } finally {
    await lark.close();
    await ding.close();
  }
});

Deno.test("courier provider: in help and completions", async () => {
  await withHome(async (h) => {
    const help = await h.run(["--help"]);
    assert.match(
      help.stdout,
      /^\s+provider\s+list the chat providers and check their credentials$/m,
    );
    const bash = await h.run(["completions", "bash"]);
    assert.match(bash.stdout, /provider/);
    assert.match(bash.stdout, /check/);
    const usage = await h.run(["provider", "check"]);
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /missing provider NAME/);
  });
});
