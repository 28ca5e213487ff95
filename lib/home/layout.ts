import { join, resolve } from "../fs/path.ts";
import { FileSystemError, fileSystemErrorCode, HomePermissionError } from "../errors/mod.ts";

/** Every path courier keeps under its home directory. */
export interface HomeLayout {
  /** The home itself (absolute). */
  root: string;
  /** `run/`: lock, pid and state files. */
  runDir: string;
  /** `run/courier.lock`: the instance lock; created once, never deleted. */
  lockFile: string;
  /** `run/courier.pid`: the daemon's PID, a decimal number and a newline. */
  pidFile: string;
  /** `run/courier.json`: the daemon's state (see `DaemonState`). */
  stateFile: string;
  /** `run/api.token`: the API token every request to the daemon must carry (mode 0600). */
  tokenFile: string;
  /** `log/`: log files. */
  logDir: string;
  /** `log/courier.log`: the daemon's log. */
  logFile: string;
  /** `config.json`: optional user configuration. */
  configFile: string;
}

/**
 * Picks the courier home: an explicit value, else `COURIER_HOME`, else
 * `~/.courier`. The result is absolute.
 */
export function resolveHome(explicit?: string): string {
  const chosen = explicit ?? Deno.env.get("COURIER_HOME");
  if (chosen) return resolve(chosen);
  const userHome = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (!userHome) {
    throw new HomePermissionError("~/.courier (HOME is not set)");
  }
  return join(userHome, ".courier");
}

/** The paths of a courier home rooted at `root`. Touches nothing on disk. */
export function homeLayout(root: string): HomeLayout {
  const abs = resolve(root);
  const runDir = join(abs, "run");
  const logDir = join(abs, "log");
  return {
    root: abs,
    runDir,
    lockFile: join(runDir, "courier.lock"),
    pidFile: join(runDir, "courier.pid"),
    stateFile: join(runDir, "courier.json"),
    tokenFile: join(runDir, "api.token"),
    logDir,
    logFile: join(logDir, "courier.log"),
    configFile: join(abs, "config.json"),
  };
}

/**
 * Creates the home and its `run/` and `log/` folders (mode 0700) and checks
 * that they are writable.
 *
 * @throws {HomePermissionError} when a folder cannot be created or written.
 */
export async function ensureHome(layout: HomeLayout): Promise<void> {
  // The three folders at once (every start does this twice: the CLI, then the daemon); the
  // first failure in this order is the one reported.
  const failures = await Promise.all(
    [layout.root, layout.runDir, layout.logDir].map(async (dir) => {
      try {
        await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) {
          return new HomePermissionError(dir, error);
        }
      }
      const error = await writableError(dir);
      return error ? new HomePermissionError(dir, error) : null;
    }),
  );
  const failure = failures.find((f) => f !== null);
  if (failure) throw failure;
}

/**
 * Whether files can be created in `dir`: `null` when they can, else the
 * error that creating a probe file gave (`Deno.errors.NotFound` when the
 * folder does not exist). The probe file is removed again.
 */
export async function writableError(dir: string): Promise<Error | null> {
  const probe = join(dir, `.probe-${Deno.pid}`);
  try {
    await Deno.writeTextFile(probe, "", { createNew: true });
  } catch (error) {
    // A probe left by a crashed process of the same PID still proves the folder writable.
    if (!(error instanceof Deno.errors.AlreadyExists)) return error as Error;
  }
  await Deno.remove(probe).catch(() => {});
  return null;
}

/**
 * Checks, without creating anything, that the home can be a courier home:
 * it is a directory, or does not exist yet.
 *
 * @throws {FileSystemError} when it, or a folder above it, is a file (or cannot be looked at).
 */
export async function assertHomeUsable(layout: HomeLayout): Promise<void> {
  const what = `Cannot use the courier home ${layout.root}`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(layout.root);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    if (fileSystemErrorCode(error) !== null) {
      throw new FileSystemError(layout.root, error, { what });
    }
    throw error;
  }
  if (!info.isDirectory) {
    const cause = Object.assign(new Error("Not a directory"), { code: "ENOTDIR" });
    throw new FileSystemError(layout.root, cause, { what });
  }
}
