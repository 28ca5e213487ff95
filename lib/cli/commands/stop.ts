import { ExitCode, UsageError } from "../../errors/mod.ts";
import { parseSeconds, stringOption } from "../args.ts";
import type { Command } from "../command.ts";
import { importLazily } from "../../lazy/mod.ts";

/** `courier stop`. */
export const stopCommand: Command = {
  name: "stop",
  summary: "stop the service: SIGTERM, then SIGKILL after the timeout",
  usage: ["stop [--timeout SECONDS] [--if-running]", "stop --all [--within DIR] [--if-running]"],
  options: {
    timeout: {
      type: "string",
      valueName: "SECONDS",
      description: "time to exit gracefully before SIGKILL (default 10)",
    },
    all: {
      type: "boolean",
      description: "stop every courier daemon of this user, in any home, orphans included",
    },
    within: {
      type: "string",
      valueName: "DIR",
      description: "with --all: only daemons whose home lies within DIR",
    },
    "if-running": {
      type: "boolean",
      description: "exit 0, not 1, when nothing runs (for clean-up scripts)",
    },
  },
  async run(ctx) {
    const hint = "courier stop --help";
    const timeout = stringOption(ctx.values, "timeout");
    const timeoutMs = timeout === undefined
      ? undefined
      : parseSeconds(timeout, { option: "--timeout", hint });
    const within = stringOption(ctx.values, "within");
    if (within !== undefined && !ctx.values.all) {
      throw new UsageError("--within needs --all", { hint });
    }
    const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
      "../../home/mod.ts",
      import.meta.url,
    );
    const { stopAllDaemons, stopService } = await importLazily<
      typeof import("../../service/stop.ts")
    >("../../service/stop.ts", import.meta.url);
    if (ctx.values.all) {
      const { resolve } = await importLazily<typeof import("../../fs/mod.ts")>(
        "../../fs/mod.ts",
        import.meta.url,
      );
      const stopped = await stopAllDaemons({ timeoutMs, within: within && resolve(within) });
      ctx.out.result(
        stopped.length === 0
          ? ["No courier daemons found"]
          : stopped.map((s) =>
            `Stopped PID ${s.pid} (home ${s.home})${s.forced ? " with SIGKILL" : ""}`
          ),
        { stopped },
      );
      return stopped.length > 0 || ctx.values["if-running"] ? ExitCode.Ok : ExitCode.Failure;
    }
    let result;
    try {
      result = await stopService(resolveHome(ctx.homeOption), { timeoutMs });
    } catch (error) {
      const { NotRunningError } = await importLazily<typeof import("../../service/mod.ts")>(
        "../../service/mod.ts",
        import.meta.url,
      );
      if (!ctx.values["if-running"] || !(error instanceof NotRunningError)) throw error;
      ctx.out.result(error.message, { stopped: [] });
      return ExitCode.Ok;
    }
    ctx.out.result(
      `Stopped Courier (PID ${result.pid})${
        result.forced ? " with SIGKILL after the timeout" : ""
      }`,
      { stopped: [result] },
    );
    return ExitCode.Ok;
  },
};

/** `courier kill`. */
export const killCommand: Command = {
  name: "kill",
  summary: "send a signal (default SIGKILL) to the service at once",
  usage: ["kill [--signal NAME]"],
  options: {
    signal: {
      type: "string",
      valueName: "NAME",
      description: "signal to send (default KILL): TERM, INT, HUP, QUIT, USR1, USR2, STOP, CONT",
      choices: ["KILL", "TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "STOP", "CONT"],
    },
  },
  async run(ctx) {
    const name = stringOption(ctx.values, "signal") ?? "SIGKILL";
    const { parseSignal } = await importLazily<typeof import("../../proc/mod.ts")>(
      "../../proc/mod.ts",
      import.meta.url,
    );
    const signal = parseSignal(name);
    if (!signal) throw new UsageError(`unknown signal "${name}"`, { hint: "courier kill --help" });
    const { resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
      "../../home/mod.ts",
      import.meta.url,
    );
    const { killService } = await importLazily<typeof import("../../service/stop.ts")>(
      "../../service/stop.ts",
      import.meta.url,
    );
    const result = await killService(resolveHome(ctx.homeOption), { signal });
    ctx.out.result(
      `Sent ${result.signal} to Courier (PID ${result.pid})${
        result.exited ? "; it has exited" : ""
      }`,
      result,
    );
    return ExitCode.Ok;
  },
};
