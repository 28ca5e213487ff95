/**
 * POSIX path helpers with the results of `node:path` (courier runs on Linux
 * and macOS only). Their own, because `node:path` costs every command that
 * imports it the start-up of Deno's Node compatibility (about 8 ms), and
 * the paths of `status` and `--version` have no other use for it.
 *
 * @module
 */

/** Collapses `//`, `.` and `..` segments; keeps a leading `/` and drops a trailing one. */
function normalizeSegments(path: string): string {
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (out.length > 0 && out.at(-1) !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(segment);
  }
  const joined = out.join("/");
  return absolute ? `/${joined}` : joined || ".";
}

/**
 * Joins path segments and normalizes the result (`join("a", "../b")` is `b`);
 * a trailing `/` is kept, as `node:path` keeps it.
 *
 * @example
 * ```ts
 * join("/home/ann", ".courier", "run"); // "/home/ann/.courier/run"
 * ```
 */
export function join(...segments: string[]): string {
  const joined = segments.filter((s) => s !== "").join("/");
  if (joined === "") return ".";
  const normal = normalizeSegments(joined);
  if (!joined.endsWith("/") || normal === "/") return normal;
  return normal === "." ? "./" : `${normal}/`;
}

/**
 * The absolute path of `segments` taken from right to left until one is
 * absolute, against the current directory otherwise; normalized.
 *
 * @example
 * ```ts
 * resolve("/srv", "app", "../data"); // "/srv/data"
 * ```
 */
export function resolve(...segments: string[]): string {
  let path = "";
  for (let i = segments.length - 1; i >= 0 && !path.startsWith("/"); i--) {
    if (segments[i] !== "") path = path ? `${segments[i]}/${path}` : segments[i];
  }
  if (!path.startsWith("/")) path = path ? `${Deno.cwd()}/${path}` : Deno.cwd();
  return normalizeSegments(path);
}

/** Strips trailing slashes, keeping a lone `/`. */
function trimTrailing(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" && path.startsWith("/") ? "/" : trimmed;
}

/**
 * The directory part of `path` (`dirname("/a/b/")` is `/a`, `dirname("a")` is `.`), exactly
 * as `node:path` has it.
 *
 * @example
 * ```ts
 * dirname("/home/ann/.courier/run/courier.lock"); // "/home/ann/.courier/run"
 * ```
 */
export function dirname(path: string): string {
  if (path === "") return ".";
  const rooted = path.startsWith("/");
  // The slash before the last segment (trailing slashes skipped); index 0 never counts.
  let end = -1;
  let inTrailing = true;
  for (let i = path.length - 1; i >= 1; i--) {
    if (path[i] !== "/") inTrailing = false;
    else if (!inTrailing) {
      end = i;
      break;
    }
  }
  if (end === -1) return rooted ? "/" : ".";
  if (rooted && end === 1) return "//";
  return path.slice(0, end);
}

/**
 * The last segment of `path`, trailing slashes ignored (`basename("/a/b/")` is `b`).
 *
 * @example
 * ```ts
 * basename("/home/ann/.courier/run/courier.lock"); // "courier.lock"
 * ```
 */
export function basename(path: string): string {
  const trimmed = trimTrailing(path);
  if (trimmed === "/") return "";
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}
