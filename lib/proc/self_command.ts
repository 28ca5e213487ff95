/**
 * The Deno permissions courier runs with, in `deno run` flag form; the
 * compiled binary is built with the same list (see `scripts/compile.ts`).
 *
 * This is `--allow-all`, and it has to be: courier identifies processes,
 * lock holders and port holders from `/proc` (`/proc/<pid>/stat`,
 * `/proc/locks`, `/proc/net/tcp*`, `/proc/<pid>/fd`), and Deno 2.9 treats
 * every `/proc` path as a special file that only `--allow-all` may read
 * (`--allow-read` gets `NotCapable: Requires all access`). Beyond that it
 * needs read/write (home), net (HTTP API, probes), env (`COURIER_*`, `HOME`,
 * `NO_COLOR`), run (its own daemon, `pgrep`/`lsof`/`ss`/`ps`, `port exec`'s
 * child) and sys (user ID) — together nearly all of `-A` anyway.
 */
export const PERMISSION_FLAGS: readonly string[] = ["--allow-all"];

/** How this program is being run; see {@link currentRunMode}. */
export interface RunMode {
  /** `true` in a `deno compile`d binary (`Deno.build.standalone`). */
  standalone: boolean;
  /** `Deno.execPath()`: the binary, or the `deno` executable. */
  execPath: string;
  /** The entry module URL (`Deno.mainModule`), used only under `deno run`. */
  mainModule: string;
  /** A `deno.json` to pass with `--config` under `deno run`, if any. */
  configPath?: string;
}

/** A command to spawn: executable and arguments, like Go's `exec.Cmd`. */
export interface CommandLine {
  /** The executable. */
  command: string;
  /** Its arguments (not including the executable). */
  args: string[];
}

/** The run mode of the current process. */
export function currentRunMode(): RunMode {
  const standalone = Boolean((Deno.build as { standalone?: boolean }).standalone);
  if (standalone) return { standalone, execPath: Deno.execPath(), mainModule: Deno.mainModule };
  return sourceRunMode(Deno.mainModule);
}

/**
 * The `deno run` mode for the entry module `mainModule` (a URL), with the
 * `deno.json` beside it when there is one: how tests and benchmarks run
 * courier from source.
 */
export function sourceRunMode(mainModule: string): RunMode {
  const mode: RunMode = { standalone: false, execPath: Deno.execPath(), mainModule };
  if (mainModule.startsWith("file:")) {
    const config = new URL("./deno.json", mainModule);
    try {
      Deno.statSync(config);
      mode.configPath = decodeURIComponent(config.pathname);
    } catch {
      // no deno.json beside the entry module: run without one
    }
  }
  return mode;
}

/**
 * The command line that runs courier itself with `courierArgs`, in either
 * run mode: the compiled binary is simply re-executed, while under
 * `deno run` the same Deno runs the same entry module with courier's
 * permissions (and config, so the lock file and imports match).
 *
 * @example
 * ```ts
 * const cmd = selfCommand(["daemon", "--home", "/tmp/h"], { mode: currentRunMode() });
 * new Deno.Command(cmd.command, { args: cmd.args }).spawn();
 * ```
 */
export function selfCommand(courierArgs: string[], options: { mode: RunMode }): CommandLine {
  const { mode } = options;
  if (mode.standalone) return { command: mode.execPath, args: [...courierArgs] };
  const entry = mode.mainModule.startsWith("file:")
    ? decodeURIComponent(new URL(mode.mainModule).pathname)
    : mode.mainModule;
  const config = mode.configPath ? ["--config", mode.configPath] : ["--no-config"];
  return {
    command: mode.execPath,
    args: ["run", "--quiet", "--no-prompt", ...PERMISSION_FLAGS, ...config, entry, ...courierArgs],
  };
}
