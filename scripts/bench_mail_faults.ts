/**
 * The mail service on a failing disk, measured on a real daemon whose home
 * is a small tmpfs (needs root; it says so and exits 2 otherwise). Prints
 * one JSON document:
 *
 * - `disk_full_spell`: 50 messages are acknowledged, the disk fills before
 *   they are written to mail and stays full for `--full-seconds` (default
 *   10); what `/health` says meanwhile, then how long after space returns
 *   every acknowledged message is in a mail (given up after 60 s);
 * - `stop_on_full_disk`: acknowledged messages in open debounce buckets, a
 *   full disk, then `courier stop`: its exit code and how long it took.
 *
 *   deno task bench:mail-faults [--full-seconds 10] [--main path/to/main.ts]
 *
 * `--main` runs another checkout's courier (a baseline).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { mailboxLayout, parseMail } from "../lib/mail/mod.ts";
import { allocatePort } from "../lib/ports/mod.ts";
import { mainUrl, runCourier, startCourier } from "./run_courier.ts";

const LEASE_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/courier-bench-port-leases`;

async function run(command: string, args: string[]): Promise<boolean> {
  const output = await new Deno.Command(command, { args, stdout: "null", stderr: "null" })
    .output().catch(() => null);
  return output?.success ?? false;
}

/** Starts a daemon on `home` with a debounce of `debounceMs` (window and max wait). */
async function start(main: string, home: string, port: number, debounceMs: number) {
  const ms = String(debounceMs);
  await startCourier(main, home, port, ["--debounce-window", ms, "--debounce-max-wait", ms]);
}

async function fill(dir: string): Promise<void> {
  const file = await Deno.open(join(dir, ".filler"), { write: true, create: true, append: true });
  try {
    for (;;) await file.write(new Uint8Array(4096));
  } catch {
    // full
  } finally {
    file.close();
  }
}

async function messagesInMail(home: string): Promise<Set<string>> {
  const ids = new Set<string>();
  const layout = mailboxLayout(home);
  for (const root of [layout.inboundDir, layout.archiveDir]) {
    for await (const provider of Deno.readDir(root)) {
      for await (const file of Deno.readDir(join(root, provider.name))) {
        if (!file.name.endsWith(".md") || file.name.startsWith(".")) continue;
        try {
          const doc = parseMail(await Deno.readTextFile(join(root, provider.name, file.name)));
          for (const m of doc.frontMatter.messages) if (m.message_id) ids.add(m.message_id);
        } catch {
          // being written
        }
      }
    }
  }
  return ids;
}

async function post(url: string, n: number, tag: string): Promise<string[]> {
  const acked: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${tag}-${i}`;
    const response = await fetch(`${url}/api/v1/inbound/bench`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        session_id: `s${i % 5}`,
        sender: { id: "u" },
        text: id,
        message_id: id,
      }),
    });
    await response.body?.cancel();
    if (response.status === 202) acked.push(id);
  }
  return acked;
}

/** Runs `fn` with a courier home on a fresh 8 MiB tmpfs. */
async function onSmallDisk<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const root = await Deno.makeTempDir({ prefix: "courier-bench-faults-" });
  const home = join(root, "home");
  await Deno.mkdir(home);
  if (!(await run("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", home]))) {
    await Deno.remove(root, { recursive: true });
    console.error("cannot mount a tmpfs (run as root): nothing measured");
    Deno.exit(2);
  }
  try {
    return await fn(home);
  } finally {
    await run("umount", ["-l", home]);
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

async function diskFullSpell(main: string, port: number, fullSeconds: number) {
  return await onSmallDisk(async (home) => {
    const url = `http://127.0.0.1:${port}`;
    await start(main, home, port, 1000);
    try {
      const acked = await post(url, 50, "spell");
      await fill(home);
      const end = performance.now() + fullSeconds * 1000;
      let during: Record<string, unknown> | null = null;
      while (performance.now() < end) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const health = await (await fetch(`${url}/health`)).json();
        during = {
          status: health.status,
          pending: health.metrics?.pending,
          degraded: health.degraded ?? null,
        };
      }
      await Deno.remove(join(home, ".filler"));
      const freed = performance.now();
      let allInMailMs: number | null = null;
      while (performance.now() - freed < 60_000) {
        const stored = await messagesInMail(home);
        if (acked.every((id) => stored.has(id))) {
          allInMailMs = Math.round(performance.now() - freed);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const stored = await messagesInMail(home);
      return {
        acknowledged: acked.length,
        full_for_s: fullSeconds,
        health_while_full: during,
        all_in_mail_after_space_returned_ms: allInMailMs,
        in_mail_after_60_s: acked.filter((id) => stored.has(id)).length,
      };
    } finally {
      await runCourier(main, ["stop", "--home", home]);
    }
  });
}

async function stopOnFullDisk(main: string, port: number) {
  return await onSmallDisk(async (home) => {
    await start(main, home, port, 60000);
    const acked = await post(`http://127.0.0.1:${port}`, 50, "stop");
    await fill(home);
    const stopped = await runCourier(main, ["stop", "--home", home]);
    const journal = await Deno.readTextFile(mailboxLayout(home).journalFile).catch(() => "");
    const inJournal = acked.filter((id) => journal.includes(`"message_id":"${id}"`)).length;
    const inMail = (await messagesInMail(home)).size;
    return {
      acknowledged: acked.length,
      stop_exit_code: stopped.code,
      stop_ms: stopped.ms,
      kept_in_journal: inJournal,
      in_mail: inMail,
    };
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { "full-seconds": { type: "string", default: "10" }, main: { type: "string" } },
  });
  const main = mainUrl(values.main);
  const port = await allocatePort({ dir: LEASE_DIR, label: "benchmark" });
  const report = {
    courier: main,
    disk_full_spell: await diskFullSpell(main, port, Number(values["full-seconds"])),
    stop_on_full_disk: await stopOnFullDisk(main, port),
  };
  console.log(JSON.stringify(report, null, 2));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
