import { join } from "node:path";
import { FileSystemError, fileSystemErrorCode } from "../errors/mod.ts";
import { type HomeLayout, homeLayout, writableError } from "../home/mod.ts";
import { exposureWarning, parseToken, TokenFileError } from "../http/mod.ts";
import { findPortHolder, isPortFree } from "../net/mod.ts";
import { userLeaseDir } from "../ports/mod.ts";
import { hasTool } from "../proc/mod.ts";
import { DEFAULT_HOST, DEFAULT_PORT, findDaemons, getStatus } from "../service/mod.ts";
import { checkMailbox } from "./mailbox_check.ts";

/**
 * How a finding weighs: `ok`, or a `problem` that makes `doctor` exit 1.
 * `info` and `warn` (something risky that may be meant) never fail.
 */
export type FindingLevel = "ok" | "info" | "warn" | "problem";

/** One thing `courier doctor` looked at. */
export interface Finding {
  /**
   * Which check: `home`, `state`, `secrets`, `exposure`, `registry`,
   * `mailbox`, `daemons`, `port`, `tools`.
   */
  check: string;
  /** How it weighs. */
  level: FindingLevel;
  /** What was found, one line. */
  message: string;
  /** The command that fixes it, for problems. */
  fix?: string;
}

/** What {@link diagnose} found. */
export interface Diagnosis {
  /** `true` when no finding is a problem. */
  ok: boolean;
  /** The home examined. */
  home: string;
  /** Every finding, in check order. */
  findings: Finding[];
}

/** Options of {@link diagnose}. */
export interface DiagnoseOptions {
  /** A port to check, whatever the daemon uses (`doctor --port N`). */
  port?: number;
  /**
   * The port `start` would use when no daemon runs (`COURIER_PORT`;
   * default 8644); `auto` needs no check. A running daemon's own port is
   * checked otherwise.
   */
  defaultPort?: number | "auto";
  /** Host for the port check (default: the running daemon's, else 127.0.0.1). */
  host?: string;
}

/** What a folder that cannot be written needs, by cause: the problem and its fix. */
function unwritable(dir: string, error: Error): Finding {
  const code = fileSystemErrorCode(error);
  if (code === "EROFS") {
    return {
      check: "home",
      level: "problem",
      message: `${dir} is on a read-only file system`,
      fix: `remount it read-write, or use another home: courier --home DIR …`,
    };
  }
  if (code === "ENOSPC" || code === "EDQUOT") {
    return {
      check: "home",
      level: "problem",
      message: `${dir} cannot be written: no space left on the device (${code})`,
      fix: `free some space on it (df -h ${dir}), or use another home: courier --home DIR …`,
    };
  }
  return {
    check: "home",
    level: "problem",
    message: `${dir} is not writable: ${error.message}`,
    fix: `chmod u+rwx ${dir}`,
  };
}

async function checkHome(root: string): Promise<Finding[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(root);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return [{
        check: "home",
        level: "ok",
        message: `${root} does not exist yet; start creates it`,
      }];
    }
    return [{
      check: "home",
      level: "problem",
      message: `${root} cannot be read: ${(error as Error).message}`,
      fix: `chmod u+rwx ${root}`,
    }];
  }
  if (!info.isDirectory) {
    return [{
      check: "home",
      level: "problem",
      message: `${root} is not a directory`,
      fix: `courier --home DIR … (or move ${root} away)`,
    }];
  }
  const findings: Finding[] = [];
  for (const dir of [root, join(root, "run"), join(root, "log")]) {
    const error = await writableError(dir);
    if (!error || error instanceof Deno.errors.NotFound) continue; // missing ones: created on start
    findings.push(unwritable(dir, error));
  }
  const readOnly = findings.some((f) => f.message.endsWith("read-only file system"));
  if (((info.mode ?? 0) & 0o022) !== 0 && !readOnly) {
    findings.push({
      check: "home",
      level: "problem",
      message: `${root} is writable by other users (mode ${(info.mode! & 0o777).toString(8)})`,
      fix: `chmod 700 ${root}`,
    });
  }
  if (findings.length === 0) {
    findings.push({ check: "home", level: "ok", message: `${root} is a writable directory` });
  }
  return findings;
}

async function checkState(
  root: string,
): Promise<{ findings: Finding[]; running: { port: number; host: string | null } | null }> {
  let status;
  try {
    status = await getStatus(homeLayout(root));
  } catch (error) {
    // A home that is a file: the home check says so and how to fix it.
    if (error instanceof FileSystemError) return { findings: [], running: null };
    if (!(error instanceof TokenFileError)) throw error;
    const fix = error.problem === "unreadable"
      ? `chmod 600 ${error.path}   # as the user who owns the home`
      : "courier token rotate";
    return {
      findings: [{ check: "state", level: "problem", message: error.message, fix }],
      running: null,
    };
  }
  const findings: Finding[] = [];
  switch (status.state) {
    case "running":
      findings.push({
        check: "state",
        level: "ok",
        message: `Courier is running (PID ${status.pid}, ${status.api_url})`,
      });
      break;
    case "stopped":
      findings.push({
        check: "state",
        level: "ok",
        message: "Courier is not running; no stale files",
      });
      break;
    case "starting":
      findings.push({
        check: "state",
        level: "info",
        message: `Courier is starting (PID ${status.pid})`,
      });
      break;
    case "unhealthy":
      findings.push({
        check: "state",
        level: "problem",
        message: `Courier (PID ${status.pid}) is running but unhealthy: ${status.reason}`,
        fix: status.process_state
          ? `kill -CONT ${status.pid}   # or: courier restart`
          : "courier restart",
      });
      break;
    case "stale":
      findings.push({
        check: "state",
        level: "problem",
        message: `stale PID/state files: ${status.reason}`,
        fix: "courier stop   # removes them (or courier start, which replaces them)",
      });
  }
  const serving = status.pid !== null && status.port !== null && status.state !== "stale";
  return { findings, running: serving ? { port: status.port!, host: status.host } : null };
}

/** `config.json` and the API token: readable by their owner only, and the token well-formed. */
async function checkSecrets(layout: HomeLayout): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const path of [layout.configFile, layout.tokenFile]) {
    let mode: number;
    try {
      mode = (await Deno.stat(path)).mode ?? 0;
    } catch {
      continue; // absent: created 0600 when needed
    }
    if ((mode & 0o077) !== 0) {
      findings.push({
        check: "secrets",
        level: "problem",
        message: `${path} is readable or writable by other users (mode ${
          (mode & 0o777).toString(8)
        }); it holds secrets`,
        fix: `chmod 600 ${path}`,
      });
    }
  }
  const text = await Deno.readTextFile(layout.tokenFile).catch(() => null);
  if (text !== null && parseToken(text) === null) {
    findings.push({
      check: "secrets",
      level: "problem",
      message: `${layout.tokenFile} does not hold an API token; every request is refused`,
      fix: "courier token rotate",
    });
  }
  if (findings.length === 0) {
    findings.push({
      check: "secrets",
      level: "ok",
      message: "config.json and the API token are readable by their owner only",
    });
  }
  return findings;
}

function checkExposure(host: string | null, port: number | null): Finding[] {
  const warning = host === null || port === null ? null : exposureWarning(host, port);
  return warning
    ? [{
      check: "exposure",
      level: "warn",
      message: warning,
      fix: "courier restart --host 127.0.0.1",
    }]
    : [];
}

async function checkRegistries(root: string): Promise<Finding[]> {
  const leases = userLeaseDir(); // the user's port leases, whatever the home
  const files: [string, string][] = [
    [join(root, "run", "courier.json"), "courier stop   # removes the unreadable state file"],
    ...(leases === null ? [] : [[
      join(leases, "ports.json"),
      "courier port gc   # moves it aside and starts a fresh registry",
    ] as [string, string]]),
    [
      join(root, "mailbox", ".state", "locks.json"),
      "courier restart   # moves it aside and keeps every claim still readable",
    ],
    [join(root, "config.json"), `$EDITOR ${join(root, "config.json")}   # fix the JSON`],
  ];
  const findings: Finding[] = [];
  for (const [path, fix] of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch {
      continue;
    }
    try {
      JSON.parse(text);
    } catch (error) {
      findings.push({
        check: "registry",
        level: "problem",
        message: `${path} is not valid JSON (${(error as Error).message})`,
        fix,
      });
    }
  }
  if (findings.length === 0) {
    findings.push({ check: "registry", level: "ok", message: "state and registry files parse" });
  }
  return findings;
}

async function checkDaemons(root: string): Promise<Finding[]> {
  const daemons = await findDaemons();
  const findings: Finding[] = [];
  for (const daemon of daemons) {
    const status = daemon.homeDeleted
      ? null
      : await getStatus(homeLayout(daemon.home), { health: false }).catch(() => null);
    // The daemon its home's status knows (running, starting, or unhealthy there).
    if (status?.pid === daemon.pid) {
      if (daemon.home !== root && status.state === "unhealthy") {
        findings.push({
          check: "daemons",
          level: "problem",
          message: `Courier PID ${daemon.pid} (home ${daemon.home}) is unhealthy: ${status.reason}`,
          fix: `courier --home ${daemon.home} restart`,
        });
      }
      continue;
    }
    findings.push({
      check: "daemons",
      level: "problem",
      message: `orphaned daemon PID ${daemon.pid} (home ${daemon.home}${
        daemon.homeDeleted ? ", deleted" : ""
      }) is named by no state file`,
      fix: daemon.homeDeleted
        ? `courier stop --all   # or: kill ${daemon.pid}`
        : `courier stop --all --within ${daemon.home}`,
    });
  }
  const others = daemons.filter((d) => d.home !== root).length;
  if (findings.length === 0) {
    findings.push({
      check: "daemons",
      level: "ok",
      message:
        `no orphaned daemons (${daemons.length} courier daemon(s) of this user, ${others} in other homes)`,
    });
  }
  return findings;
}

async function checkPort(
  port: number | "auto",
  host: string,
  runningPort: number | null,
): Promise<Finding> {
  if (port === "auto") {
    return {
      check: "port",
      level: "ok",
      message: "start takes a port lease (--port auto): nothing to check before it runs",
    };
  }
  if (runningPort === port) {
    return { check: "port", level: "ok", message: `port ${port} is served by this Courier` };
  }
  if (await isPortFree(port, { host, strict: false })) {
    return { check: "port", level: "ok", message: `port ${port} is free on ${host}` };
  }
  const holder = await findPortHolder(port);
  const by = holder
    ? ` by PID ${holder.pid}${holder.commandLine ? ` (${holder.commandLine})` : ""}`
    : "";
  return {
    check: "port",
    level: "problem",
    message: `port ${port} is already in use${by}`,
    fix: holder
      ? `kill ${holder.pid}   # or: courier start --port auto`
      : "courier start --port auto",
  };
}

async function checkTools(): Promise<Finding[]> {
  const procReadable = await Deno.stat("/proc/net/tcp").then(() => true, () => false);
  const packages: Record<string, string> = { pgrep: "procps", ss: "iproute2", lsof: "lsof" };
  const findings: Finding[] = [];
  for (const tool of ["pgrep", "ss", "lsof"]) {
    if (await hasTool(tool)) {
      findings.push({ check: "tools", level: "ok", message: `${tool} is available` });
    } else if (procReadable) {
      findings.push({
        check: "tools",
        level: "info",
        message: `${tool} is missing; not needed here (courier reads /proc directly)`,
      });
    } else {
      findings.push({
        check: "tools",
        level: "problem",
        message: `${tool} is missing and there is no /proc: ${
          tool === "pgrep" ? "orphan discovery" : "naming port holders"
        } is degraded`,
        fix: `install ${tool} (package ${packages[tool]})`,
      });
    }
  }
  return findings;
}

/**
 * Examines a courier home and this machine: the home's permissions, stale
 * PID/state files, whether `config.json` and the API token are private, a
 * daemon listening beyond loopback, unparsable registries, orphaned daemons,
 * whether the port is free (and who holds it): the one asked for, else the
 * one the daemon runs on, else the one `start` would use; and the optional
 * helper tools. Each problem comes with the command that fixes it. Changes
 * nothing.
 */
export async function diagnose(home: string, options: DiagnoseOptions = {}): Promise<Diagnosis> {
  const root = homeLayout(home).root;
  const homeFindings = await checkHome(root);
  const state = await checkState(root);
  const findings = [
    ...homeFindings,
    ...state.findings,
    ...await checkSecrets(homeLayout(root)),
    ...checkExposure(state.running?.host ?? null, state.running?.port ?? null),
    ...await checkRegistries(root),
    ...await checkMailbox(root),
    ...await checkDaemons(root),
    await checkPort(
      options.port ?? state.running?.port ?? options.defaultPort ?? DEFAULT_PORT,
      options.host ?? state.running?.host ?? DEFAULT_HOST,
      state.running?.port ?? null,
    ),
    ...await checkTools(),
  ];
  return { ok: findings.every((f) => f.level !== "problem"), home: root, findings };
}
