import { ExitCode, UsageError } from "../../errors/mod.ts";
import type { Lease, LeaseInfo, PortAllocator, SignalOutcome } from "../../ports/mod.ts";
import { DEFAULT_PORT_RANGE, parsePortRange, type PortRange } from "../../ports/range.ts";
import { parseInteger, parsePort, parseSeconds, stringOption } from "../args.ts";
import type { Command, CommandContext, OptionSpec } from "../command.ts";
import { formatTable, type Output } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

const RANGE_TEXT = `${DEFAULT_PORT_RANGE.start}-${DEFAULT_PORT_RANGE.end}`;

/** For help: `DEFAULT_TTL_MS` of lib/ports in seconds (a test checks they agree). */
const DEFAULT_TTL_S = 300;

/** Options shared by `allocate` and `exec`. */
const LEASE_OPTIONS: Record<string, OptionSpec> = {
  preferred: { type: "string", valueName: "P", description: "port to try first" },
  range: {
    type: "string",
    valueName: "START-END",
    description: `ports to choose from (default ${RANGE_TEXT})`,
  },
  host: {
    type: "string",
    valueName: "H",
    description: "host the port must be free on (default 127.0.0.1; loopback also checks ::1)",
  },
  label: { type: "string", valueName: "TEXT", description: "note shown by 'courier port list'" },
};

async function allocator(ctx: CommandContext): Promise<PortAllocator> {
  const { PortAllocator } = await importLazily<typeof import("../../ports/mod.ts")>(
    "../../ports/mod.ts",
    import.meta.url,
  );
  return new PortAllocator({
    onWarning: (message) => ctx.out.warn(`courier: warning: ${message}`),
  });
}

interface LeaseSettings {
  preferred?: number;
  range: PortRange;
  host?: string;
  label?: string;
}

function leaseSettings(values: CommandContext["values"], hint: string): LeaseSettings {
  const settings: LeaseSettings = { range: { ...DEFAULT_PORT_RANGE } };
  const preferred = stringOption(values, "preferred");
  if (preferred !== undefined) {
    settings.preferred = parsePort(preferred, { option: "--preferred", hint });
  }
  const range = stringOption(values, "range");
  if (range !== undefined) {
    const parsed = parsePortRange(range);
    if (typeof parsed === "string") {
      throw new UsageError(`invalid --range "${range}": ${parsed}`, { hint });
    }
    settings.range = parsed;
  }
  const host = stringOption(values, "host");
  if (host !== undefined) {
    if (!host || /[\s/]/.test(host)) throw new UsageError(`invalid --host "${host}"`, { hint });
    settings.host = host;
  }
  const label = stringOption(values, "label");
  if (label !== undefined) settings.label = label;
  return settings;
}

function portPositionals(ctx: CommandContext, hint: string): number[] {
  if (ctx.positionals.length === 0) throw new UsageError("missing PORT", { hint });
  return ctx.positionals.map((text) => parsePort(text, { option: "PORT", hint }));
}

/** `12s`, `4m05s`, `2h03m`, `3d04h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const two = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

function leaseRow(lease: LeaseInfo, now: number, out: Output): string[] {
  const alive = lease.owner_alive === null
    ? "-"
    : lease.owner_alive
    ? out.paint("green", "yes")
    : out.paint("red", "no");
  let expires = "never";
  if (lease.expires_at !== null) {
    const left = Date.parse(lease.expires_at) - now;
    expires = lease.expired ? out.paint("red", "expired") : `in ${formatDuration(left)}`;
  }
  return [
    String(lease.port),
    lease.owner ? String(lease.owner.pid) : "-",
    alive,
    formatDuration(now - Date.parse(lease.created_at)),
    expires,
    lease.alive ? "live" : out.paint("yellow", "stale"),
    lease.label ?? "",
  ];
}

const allocateCommand: Command = {
  name: "allocate",
  summary: "lease a free port and print it",
  usage: [
    "allocate [--preferred P] [--range START-END] [--host H] [--pid PID] [--ttl SECONDS]" +
    " [--label TEXT] [--json]",
  ],
  options: {
    ...LEASE_OPTIONS,
    pid: {
      type: "string",
      valueName: "PID",
      description: "process that holds the lease: it ends when that process exits",
    },
    ttl: {
      type: "string",
      valueName: "SECONDS",
      description: `lease lifetime (default ${DEFAULT_TTL_S} without --pid, none with it)`,
    },
  },
  async run(ctx) {
    const hint = "courier port allocate --help";
    const settings = leaseSettings(ctx.values, hint);
    const pidText = stringOption(ctx.values, "pid");
    const pid = pidText === undefined
      ? undefined
      : parseInteger(pidText, { option: "--pid", hint, min: 1, max: 2 ** 31 - 1 });
    const ttlText = stringOption(ctx.values, "ttl");
    let ttlMs: number | undefined;
    if (ttlText !== undefined) {
      ttlMs = parseSeconds(ttlText, { option: "--ttl", hint });
      if (ttlMs <= 0) throw new UsageError(`invalid --ttl "${ttlText}": must be above 0`, { hint });
    }
    // This process exits right after printing: without --pid the lease lives by its TTL.
    const { DEFAULT_TTL_MS } = await importLazily<typeof import("../../ports/mod.ts")>(
      "../../ports/mod.ts",
      import.meta.url,
    );
    await using leases = await allocator(ctx); // at exit: the registry is on disk
    const lease = await leases.allocate({
      ...settings,
      ownerPid: pid ?? null,
      ttlMs: ttlMs ?? (pid === undefined ? DEFAULT_TTL_MS : undefined),
    });
    ctx.out.result(String(lease.port), lease);
    return ExitCode.Ok;
  },
};

const releaseCommand: Command = {
  name: "release",
  summary: "drop the leases on ports (a port with no lease is fine)",
  usage: ["release PORT... [--json]"],
  options: {},
  positionals: true,
  async run(ctx) {
    const ports = portPositionals(ctx, "courier port release --help");
    await using leases = await allocator(ctx);
    const released: number[] = [];
    const notLeased: number[] = [];
    const lines: string[] = [];
    for (const port of [...new Set(ports)]) {
      if (await leases.release(port)) {
        released.push(port);
        lines.push(`Released port ${port}.`);
      } else {
        notLeased.push(port);
        lines.push(`Port ${port} had no lease: nothing to release.`);
      }
    }
    ctx.out.result(lines, { released, not_leased: notLeased });
    return ExitCode.Ok;
  },
};

const listCommand: Command = {
  name: "list",
  summary: "show the leases: port, owner and whether it is alive, age, expiry",
  usage: ["list [--json]"],
  options: {},
  async run(ctx) {
    const leases = await (await allocator(ctx)).list();
    if (ctx.out.json) {
      ctx.out.data({ leases, count: leases.length });
      return ExitCode.Ok;
    }
    if (leases.length === 0) {
      ctx.out.text("No port leases.");
      return ExitCode.Ok;
    }
    const now = Date.now();
    ctx.out.text(
      ...formatTable(
        ["PORT", "PID", "ALIVE", "AGE", "EXPIRES", "STATE", "LABEL"],
        leases.map((lease) => leaseRow(lease, now, ctx.out)),
      ),
    );
    const stale = leases.filter((lease) => !lease.alive).length;
    if (stale > 0) {
      ctx.out.text("", `${stale} stale (reclaimed by the next allocation, or 'courier port gc').`);
    }
    return ExitCode.Ok;
  },
};

const gcCommand: Command = {
  name: "gc",
  summary: "drop leases whose owner exited or whose TTL ran out",
  usage: ["gc [--json]"],
  options: {},
  async run(ctx) {
    await using leases = await allocator(ctx);
    const dropped: Lease[] = await leases.gc();
    const n = dropped.length;
    ctx.out.result(
      n === 0 ? "No stale leases." : `Removed ${n} stale lease${n === 1 ? "" : "s"}.`,
      { removed: n, leases: dropped },
    );
    return ExitCode.Ok;
  },
};

const execCommand: Command = {
  name: "exec",
  summary:
    "run a command with a leased port in $PORT and in place of {port}; release it when it exits",
  usage: ["exec [--preferred P] [--range START-END] [--env NAME] -- CMD [ARGS...]"],
  runsCommand: true,
  options: {
    ...LEASE_OPTIONS,
    env: {
      type: "string",
      valueName: "NAME",
      description: "environment variable that carries the port (default PORT)",
    },
  },
  positionals: true,
  async run(ctx) {
    const hint = "courier port exec --help";
    const settings = leaseSettings(ctx.values, hint);
    const env = stringOption(ctx.values, "env") ?? "PORT";
    const { execWithPort, isEnvName, PortExecSpawnError } = await importLazily<
      typeof import("../../ports/mod.ts")
    >("../../ports/mod.ts", import.meta.url);
    if (!isEnvName(env)) {
      throw new UsageError(`invalid --env "${env}": not a variable name`, { hint });
    }
    const [command, ...args] = ctx.positionals;
    if (command === undefined) throw new UsageError("missing the command to run", { hint });
    try {
      const result = await execWithPort(command, args, {
        ...settings,
        env,
        onWarning: (message) => ctx.out.warn(`courier: warning: ${message}`),
        onSignal: Deno.env.get("COURIER_DEBUG")
          ? (info) => ctx.out.warn(signalNote(info))
          : undefined,
      });
      return result.code;
    } catch (error) {
      if (!(error instanceof PortExecSpawnError)) throw error;
      ctx.out.error(error.message);
      return error.notFound ? 127 : 126;
    }
  },
};

/** What `port exec` did with a signal, for `COURIER_DEBUG`. */
function signalNote({ signal, pid, outcome }: SignalOutcome): string {
  if (outcome === "passed") return `courier: passed ${signal} on to PID ${pid}`;
  if (outcome === "exited") return `courier: ${signal} not passed on: PID ${pid} has exited`;
  return `courier: ${signal} came from the terminal, which sent it to PID ${pid} too: not passed on`;
}

/** `courier port`: cross-process port leases. */
export const portCommand: Command = {
  name: "port",
  summary: "lease ports across processes (allocate, release, list, gc, exec)",
  usage: ["port <command> [options]"],
  options: {},
  subcommands: [allocateCommand, releaseCommand, listCommand, gcCommand, execCommand],
};
