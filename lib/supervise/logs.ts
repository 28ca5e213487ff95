import type { HomeLayout } from "../home/mod.ts";
import { readDaemonState } from "../service/state_file.ts";
import {
  type EnvReader,
  installedService,
  journalArgs,
  type ManagerKind,
  platformManager,
} from "../service_manager/mod.ts";

/** Where a home's daemon log is: its log file, or the journal of its systemd unit. */
export type LogSource = { kind: "file"; path: string } | { kind: "journal"; unit: string };

/**
 * Where the log of a home's daemon is. A daemon run by systemd logs to
 * stderr only, which the journal keeps, so when systemd runs it (or its
 * unit is installed) the log is `journalctl --user --unit <unit>`;
 * otherwise (launchd appends the daemon's output to the log file) it is
 * `log/courier.log`.
 */
export async function logSource(
  layout: HomeLayout,
  options: { manager?: ManagerKind; env?: EnvReader } = {},
): Promise<LogSource> {
  const running = (await readDaemonState(layout))?.supervisor;
  if (running?.manager === "systemd") return { kind: "journal", unit: running.name };
  const manager = options.manager ?? platformManager();
  if (manager === "systemd") {
    const installed = await installedService(layout.root, { manager, env: options.env });
    if (installed) return { kind: "journal", unit: installed.supervisor.name };
  }
  return { kind: "file", path: layout.logFile };
}

/**
 * Prints a unit's journal as `journalctl --follow` writes it, one line at a
 * time to `onLine`, until `journalctl` exits; returns its exit code, or
 * `null` when it cannot be run.
 */
export async function followJournal(
  unit: string,
  options: { lines: number; onLine: (line: string) => void },
): Promise<number | null> {
  const [command, ...args] = journalArgs(unit, { lines: options.lines, follow: true });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, { args, stdin: "null", stdout: "piped", stderr: "inherit" })
      .spawn();
  } catch {
    return null;
  }
  let partial = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) options.onLine(line);
  }
  if (partial) options.onLine(partial);
  return (await child.status).code;
}
