import { CourierError } from "./errors.ts";
import { ExitCode } from "./exit_codes.ts";

const ELSEWHERE = "or choose another home with --home DIR or COURIER_HOME.";

/** File-system failures a user can fix, by error code: what happened and what to do. */
const CAUSES: Record<string, { cause: string; fix: string }> = {
  ENOSPC: { cause: "no space left on the device", fix: `Free some space there, ${ELSEWHERE}` },
  EDQUOT: { cause: "the disk quota is used up", fix: `Free some space there, ${ELSEWHERE}` },
  EROFS: {
    cause: "the file system is read-only",
    fix: `Remount it read-write, ${ELSEWHERE}`,
  },
  EACCES: {
    cause: "permission denied",
    fix: `Make it yours and writable (chown, chmod u+rwx), ${ELSEWHERE}`,
  },
  EPERM: {
    cause: "operation not permitted",
    fix: `Make it yours and writable (chown, chmod u+rwx), ${ELSEWHERE}`,
  },
  ENOTDIR: { cause: "not a directory", fix: `Move that file away, ${ELSEWHERE}` },
};

/**
 * The code of a file-system error a user can fix (`ENOSPC`, `EDQUOT`,
 * `EROFS`, `EACCES`, `EPERM`, `ENOTDIR`), or `null` for anything else.
 */
export function fileSystemErrorCode(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code in CAUSES) return code;
  // Deno names a few by class only.
  if (error instanceof Deno.errors.PermissionDenied) return "EACCES";
  if (error instanceof Deno.errors.NotADirectory) return "ENOTDIR";
  return null;
}

/** The path a Deno file-system error names (`…: open '/a/b'`), if it names one. */
function pathInMessage(error: unknown): string | null {
  const message = error instanceof Error ? error.message : "";
  return message.match(/: [a-z_]+ '([^']+)'/)?.[1] ?? null;
}

/** For `ENOTDIR`: the closest part of `path` that exists and is not a directory. */
function fileInTheWay(path: string): string | null {
  const parts = path.split("/");
  for (let i = 2; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join("/") || "/";
    try {
      if (!Deno.statSync(prefix).isDirectory) return prefix;
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * A file or folder courier needs cannot be written, for a reason the user
 * can fix: no space, a read-only file system, no permission, or a file
 * where a folder should be (exit 3). The message names the path, the cause
 * and the fix.
 */
export class FileSystemError extends CourierError {
  /** The path that could not be used. */
  readonly path: string;
  /** The error code (`ENOSPC`, `EROFS`, `EACCES`, `EPERM`, `EDQUOT`, `ENOTDIR`). */
  readonly code: string;

  /**
   * @param path The path that could not be written (for `ENOTDIR`, the file in the way is found).
   * @param cause The underlying error; its code must be one {@link fileSystemErrorCode} knows.
   * @param options `what`: how to name the path (default `Cannot write <path>`).
   */
  constructor(path: string, cause: unknown, options: { what?: string } = {}) {
    const code = fileSystemErrorCode(cause) ?? "EIO";
    const known = CAUSES[code] ??
      { cause: "input/output error", fix: `Check the disk, ${ELSEWHERE}` };
    const blocker = code === "ENOTDIR" ? fileInTheWay(path) : null;
    const cause_ = blocker ? `${blocker} is not a directory` : known.cause;
    super(`${options.what ?? `Cannot write ${path}`}: ${cause_} (${code}). ${known.fix}`, {
      exitCode: ExitCode.Permission,
      cause,
    });
    this.name = "FileSystemError";
    this.path = path;
    this.code = code;
  }
}

/**
 * `error` as a {@link FileSystemError} when it is a file-system failure a
 * user can fix, naming the path the error names or else `path`; `null`
 * otherwise (a courier error, or a bug).
 */
export function asFileSystemError(error: unknown, path: string): FileSystemError | null {
  if (error instanceof CourierError || fileSystemErrorCode(error) === null) return null;
  return new FileSystemError(pathInMessage(error) ?? path, error);
}

/**
 * The courier home cannot be created, read or written (exit 3). When the
 * cause is one {@link fileSystemErrorCode} knows, the message says which
 * and what to do (never "fix its permissions" for a full or read-only disk).
 */
export class HomePermissionError extends CourierError {
  /** The path that could not be used. */
  readonly path: string;

  /**
   * @param path The path that failed.
   * @param cause The underlying error.
   */
  constructor(path: string, cause?: unknown) {
    const what = `Cannot create or write the courier home ${path}`;
    const known = fileSystemErrorCode(cause) !== null
      ? new FileSystemError(path, cause, { what }).message
      : null;
    const reason = cause instanceof Error ? ` (${cause.message.replace(/: [^:]*$/, "")})` : "";
    super(
      known ??
        `${what}${reason}. Fix its permissions or choose another home with --home DIR or ` +
          `COURIER_HOME.`,
      { exitCode: ExitCode.Permission, cause },
    );
    this.name = "HomePermissionError";
    this.path = path;
  }
}
