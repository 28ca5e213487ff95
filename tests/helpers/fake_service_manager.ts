/**
 * A fake service manager for tests: `systemctl --user`, `loginctl`,
 * `journalctl --user` and `launchctl`, each a small shell script on `PATH`
 * that runs this file with the tool's name first. It records every call in
 * `$FAKE_SM_DIR/calls.jsonl` and keeps its units in `$FAKE_SM_DIR/state.json`.
 *
 * Like the real ones, it reads the unit file (or property list) and starts
 * the command in it with the environment it sets, detached, its output
 * appended to `$FAKE_SM_DIR/journal-<name>.log` (what `journalctl` prints);
 * it stops a job with SIGTERM. It does not restart anything: restarts are
 * the end-to-end test's job, with a real systemd.
 *
 * Run it as `deno run -A --no-config fake_service_manager.ts <tool> <args…>`.
 */

interface Job {
  enabled?: boolean;
  loaded?: boolean;
  pid?: number;
  stopped?: boolean;
  runs?: number;
}

const dir = Deno.env.get("FAKE_SM_DIR");
if (!dir) throw new Error("FAKE_SM_DIR is not set");
const statePath = `${dir}/state.json`;
const [tool, ...args] = Deno.args;
await Deno.writeTextFile(`${dir}/calls.jsonl`, JSON.stringify([tool, ...args]) + "\n", {
  append: true,
});

function load(): Record<string, Job> {
  try {
    return JSON.parse(Deno.readTextFileSync(statePath));
  } catch {
    return {};
  }
}
const jobs = load();
const save = () => Deno.writeTextFileSync(statePath, JSON.stringify(jobs, null, 2));

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function fail(code: number, message: string): never {
  console.error(message);
  Deno.exit(code);
}

function spawn(name: string, argv: string[], env: Record<string, string>): number {
  const log = `${dir}/journal-${name}.log`;
  const child = new Deno.Command("sh", {
    args: ["-c", 'exec "$@" >>"$0" 2>&1 </dev/null', log, ...argv],
    env: { ...env, INVOCATION_ID: crypto.randomUUID().replaceAll("-", "") },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  return child.pid;
}

async function stop(job: Job, wait: boolean): Promise<void> {
  job.stopped = true;
  if (!alive(job.pid)) return;
  Deno.kill(job.pid!, "SIGTERM");
  for (let i = 0; wait && i < 2000 && alive(job.pid); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// --- systemd --------------------------------------------------------------------------------

/** Splits an `ExecStart=` value the way systemd does (quotes, C escapes, `%%`, `$$`). */
function systemdWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " ") i++;
    if (i >= line.length) break;
    let word = "";
    let quote: string | null = null;
    for (; i < line.length; i++) {
      const c = line[i];
      if (quote) {
        if (c === quote) quote = null;
        else if (c === "\\") word += line[++i];
        else word += c;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === " ") break;
      else if (c === "\\") word += line[++i];
      else word += c;
    }
    words.push(word);
  }
  return words.map((w, n) => {
    const unescaped = w.replaceAll("%%", "%");
    return n === 0 ? unescaped : unescaped.replaceAll("$$", "$");
  });
}

function unitDir(): string {
  const config = Deno.env.get("XDG_CONFIG_HOME") ?? `${Deno.env.get("HOME")}/.config`;
  return `${config}/systemd/user`;
}

function readUnit(name: string): { argv: string[]; env: Record<string, string> } | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${unitDir()}/${name}`);
  } catch {
    return null;
  }
  const env: Record<string, string> = {};
  let argv: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("Environment=")) {
      const [key, ...value] = line.slice("Environment=".length).split("=");
      env[key] = value.join("=");
    } else if (line.startsWith("ExecStart=")) {
      argv = systemdWords(line.slice("ExecStart=".length));
    }
  }
  return { argv, env };
}

function startUnit(name: string): void {
  const job = jobs[name] ??= {};
  if (alive(job.pid)) return;
  const unit = readUnit(name);
  if (!unit) fail(5, `Failed to start ${name}: Unit ${name} not found.`);
  job.pid = spawn(name, unit.argv, unit.env);
  job.stopped = false;
  job.runs = (job.runs ?? 0) + 1;
}

async function systemctl(argv: string[]): Promise<void> {
  if (argv[0] !== "--user") fail(1, "fake systemctl knows only --user");
  const flags = argv.filter((a) => a.startsWith("--"));
  const [verb, name] = argv.filter((a) => !a.startsWith("--"));
  const now = flags.includes("--now");
  const job = name ? (jobs[name] ??= {}) : {};
  switch (verb) {
    case "show": {
      if (!name) return console.log("Version=252 (fake)");
      const exists = readUnit(name) !== null;
      const running = alive(job.pid);
      const crashed = !running && job.pid !== undefined && !job.stopped;
      console.log(
        [
          `LoadState=${exists ? "loaded" : "not-found"}`,
          `ActiveState=${running ? "active" : crashed ? "failed" : "inactive"}`,
          `SubState=${running ? "running" : crashed ? "failed" : "dead"}`,
          `UnitFileState=${exists ? (job.enabled ? "enabled" : "disabled") : ""}`,
          `MainPID=${running ? job.pid : 0}`,
          `NRestarts=0`,
          `Result=${crashed ? "exit-code" : "success"}`,
          `ExecMainStatus=${crashed ? 1 : 0}`,
          `ExecMainCode=${job.pid && !running ? 1 : 0}`,
        ].join("\n"),
      );
      return;
    }
    case "daemon-reload":
    case "reset-failed":
      return;
    case "enable":
      job.enabled = true;
      if (now) startUnit(name);
      return;
    case "disable":
      job.enabled = false;
      if (now) await stop(job, true);
      return;
    case "start":
      return startUnit(name);
    case "restart":
      await stop(job, true);
      return startUnit(name);
    case "stop":
      return await stop(job, !flags.includes("--no-block"));
  }
  fail(1, `fake systemctl: unknown command ${verb}`);
}

// --- launchd --------------------------------------------------------------------------------

function xmlText(text: string): string {
  return text.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"')
    .replaceAll("&apos;", "'").replaceAll("&amp;", "&");
}

function readPlist(path: string): { label: string; argv: string[]; env: Record<string, string> } {
  const text = Deno.readTextFileSync(path);
  const strings = (block: string) =>
    [...block.matchAll(/<(key|string)>([^<]*)<\/\1>/g)].map((m) => xmlText(m[2]));
  const label = /<key>Label<\/key>\s*<string>([^<]*)<\/string>/.exec(text)?.[1] ?? "";
  const array = /<key>ProgramArguments<\/key>\s*<array>([\s\S]*?)<\/array>/.exec(text)?.[1] ?? "";
  const dict = /<key>EnvironmentVariables<\/key>\s*<dict>([\s\S]*?)<\/dict>/.exec(text)?.[1] ?? "";
  const pairs = strings(dict);
  const env: Record<string, string> = {};
  for (let i = 0; i + 1 < pairs.length; i += 2) env[pairs[i]] = pairs[i + 1];
  return { label: xmlText(label), argv: strings(array), env };
}

async function launchctl(argv: string[]): Promise<void> {
  const [verb, target, path] = argv;
  const label = target?.split("/").slice(2).join("/") ?? "";
  const job = jobs[label] ??= {};
  switch (verb) {
    case "print":
      if (!job.loaded) fail(113, `Could not find service "${label}" in domain for user gui`);
      console.log(`gui/0/${label} = {\n\tactive count = 1`);
      console.log(`\tstate = ${alive(job.pid) ? "running" : "not running"}`);
      if (alive(job.pid)) console.log(`\tpid = ${job.pid}`);
      console.log(`\truns = ${job.runs ?? 0}\n\tlast exit code = 0\n}`);
      return;
    case "enable":
      return;
    case "bootstrap": {
      const plist = readPlist(path);
      const loaded = jobs[plist.label] ??= {};
      if (loaded.loaded) fail(5, "Bootstrap failed: 5: Input/output error");
      loaded.loaded = true;
      loaded.pid = spawn(plist.label, plist.argv, plist.env);
      loaded.runs = (loaded.runs ?? 0) + 1;
      return;
    }
    case "bootout":
      if (!job.loaded) fail(3, "Boot-out failed: 3: No such process");
      await stop(job, true);
      job.loaded = false;
      return;
    case "kickstart":
      if (!job.loaded) fail(113, `Could not find service "${label}"`);
      return;
  }
  fail(1, `fake launchctl: unknown command ${verb}`);
}

// --- the rest -------------------------------------------------------------------------------

function journalctl(argv: string[]): void {
  const unit = argv[argv.indexOf("--unit") + 1];
  const lines = Number(argv[argv.indexOf("--lines") + 1]);
  let text = "";
  try {
    text = Deno.readTextFileSync(`${dir}/journal-${unit}.log`);
  } catch {
    // no entries
  }
  const all = text.split("\n").filter(Boolean);
  if (lines > 0) console.log(all.slice(-lines).join("\n"));
}

switch (tool) {
  case "systemctl":
    await systemctl(args);
    break;
  case "launchctl":
    await launchctl(args);
    break;
  case "loginctl":
    console.log(`Linger=${Deno.env.get("FAKE_LINGER") ?? "no"}`);
    break;
  case "journalctl":
    journalctl(args);
    break;
  default:
    fail(1, `fake service manager: unknown tool ${tool}`);
}
save();
