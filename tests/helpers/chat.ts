/**
 * Chat platforms end to end: a real daemon in a temporary home whose
 * `config.json` `providers` point at the fake platforms (`api_base`,
 * `ws_base`), its secrets given as `env:` variables, and readers for what
 * it stored, sent and logged.
 */
import assert from "node:assert/strict";
import { homeLayout } from "../../lib/home/mod.ts";
import type { MailMessage } from "../../lib/mail/mod.ts";
import { readProcessIdentity, waitForExit } from "../../lib/proc/mod.ts";
import { apiGet, startDaemon, type TestDaemon, writeHomeConfig } from "./api.ts";
import type { TestHome } from "./courier.ts";
import { eventually } from "./mail.ts";

/** Mail settings that keep a test short: mails fold fast, outbound retries come soon. */
export const FAST_MAIL = {
  debounce_window_ms: 50,
  debounce_max_wait_ms: 200,
  outbound_retry_backoff_ms: 100,
  outbound_retry_backoff_cap_ms: 400,
} as const;

/**
 * `start` arguments that keep acknowledged messages in the journal (a long
 * debounce window): what a SIGKILL then finds is what the journal holds.
 */
export const JOURNAL_ONLY: readonly string[] = [
  "--debounce-window",
  "60000",
  "--debounce-max-wait",
  "60000",
];

/**
 * Writes `config.json` with `providers` (and {@link FAST_MAIL}) and starts a
 * daemon whose environment holds `env` (the `env:` secrets); `args` are
 * extra `start` arguments.
 */
export async function startChatDaemon(
  home: TestHome,
  providers: Record<string, unknown>,
  env: Record<string, string>,
  args: readonly string[] = [],
): Promise<TestDaemon> {
  await writeHomeConfig(home, { ...FAST_MAIL, providers });
  return await startDaemon(home, [...args], { env });
}

/** `/health` `providers.<name>` of a running daemon. */
export async function providerReport(
  daemon: TestDaemon,
  name: string,
): Promise<Record<string, unknown>> {
  const health = await apiGet(daemon, "/health");
  const report = (health.body.providers as Record<string, Record<string, unknown>>)?.[name];
  assert.ok(report, `/health has providers.${name}: ${JSON.stringify(health.body)}`);
  return report;
}

/** A stored message with the id of the mail it is in. */
export type StoredMessage = MailMessage & { mail_id: string; mail: Record<string, unknown> };

/** Every message in the inbound mails of `provider` (any status), oldest mail first. */
export async function storedMessages(
  daemon: TestDaemon,
  provider: string,
): Promise<StoredMessage[]> {
  const listed = await apiGet(daemon, `/api/v1/messages?provider=${provider}&direction=inbound`);
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  const out: StoredMessage[] = [];
  for (const summary of listed.body.messages as { id: string }[]) {
    const mail = (await apiGet(daemon, `/api/v1/messages/${summary.id}`)).body;
    for (const m of mail.messages as MailMessage[]) out.push({ ...m, mail_id: summary.id, mail });
  }
  return out;
}

/** Waits until the inbound mails of `provider` hold `count` messages, and returns them. */
export async function waitForStored(
  daemon: TestDaemon,
  provider: string,
  count: number,
): Promise<StoredMessage[]> {
  let messages: StoredMessage[] = [];
  await eventually(async () => {
    messages = await storedMessages(daemon, provider);
    return messages.length >= count;
  }, { what: `${count} message(s) of ${provider} in mails` });
  return messages;
}

/** Waits until mail `id` has `status` (`done` for an outbound mail delivered), and returns it. */
export async function waitForStatus(
  daemon: TestDaemon,
  id: string,
  status: string,
): Promise<Record<string, unknown>> {
  let mail: Record<string, unknown> = {};
  await eventually(async () => {
    mail = (await apiGet(daemon, `/api/v1/messages/${id}`)).body;
    return mail.status === status;
  }, { what: `mail ${id} ${status}`, timeoutMs: 20_000 });
  return mail;
}

/** The daemon's log so far. */
export function daemonLog(home: TestHome): Promise<string> {
  return Deno.readTextFile(homeLayout(home.home).logFile);
}

/** Asserts that none of `secrets` is anywhere in the daemon's log (nor in `more` texts). */
export async function assertNoSecretsLogged(
  home: TestHome,
  secrets: readonly string[],
  more: readonly string[] = [],
): Promise<void> {
  const texts = [await daemonLog(home), ...more];
  for (const secret of secrets) {
    assert.ok(secret.length >= 8, `a secret worth looking for: ${secret}`);
    for (const text of texts) assert.ok(!text.includes(secret), `a secret leaked: ${secret}`);
  }
}

/** Kills the daemon with SIGKILL (the PID this test started) and waits until it is gone. */
export async function killDaemon(daemon: TestDaemon): Promise<void> {
  const identity = await readProcessIdentity(daemon.pid);
  assert.ok(identity, "the daemon runs");
  Deno.kill(daemon.pid, "SIGKILL");
  assert.ok(await waitForExit(identity, { timeoutMs: 10_000 }), "killed");
}

/**
 * Asserts that a send was tried twice, the second time at least `waitMs`
 * after the first (the platform's delay honoured), and that the first
 * failure's reason, kept in the delivered mail, matches `reason`.
 */
export function assertRetriedAfter(
  tries: readonly { at: number }[],
  waitMs: number,
  mail: Record<string, unknown>,
  reason: RegExp,
): void {
  assert.equal(tries.length, 2, "one failed try, one that went through");
  const waited = tries[1].at - tries[0].at;
  assert.ok(waited >= waitMs, `retried after ${waited} ms, asked to wait ${waitMs}`);
  const failures = (mail.delivery as { failures: { reason: string }[] }).failures;
  assert.match(failures[0].reason, reason);
}
