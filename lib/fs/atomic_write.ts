import { basename, dirname, join } from "./path.ts";

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o644). */
  mode?: number;
  /** Also fsync the directory so the rename itself is durable (default true). */
  syncDir?: boolean;
}

let counter = 0;

/**
 * Replaces `path` with `data` so that readers see either the old or the new
 * content, never a mix, even if the process is killed midway: the data goes to
 * a temporary file beside `path`, is fsynced, then renamed over `path`.
 *
 * @example
 * ```ts
 * await writeFileAtomic("/tmp/state.json", '{"ok":true}\n');
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  await writeFileAtomicWith(path, async (file) => {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
  }, options);
}

/**
 * Like {@link writeFileAtomic}, but `fill` writes the content into the
 * temporary file itself (in pieces, for content too big to build as one
 * string); the file is then fsynced and renamed over `path`.
 *
 * @example
 * ```ts
 * await writeFileAtomicWith("/tmp/big.jsonl", async (file) => {
 *   for (const line of ["{}\n", "{}\n"]) await file.write(new TextEncoder().encode(line));
 * });
 * ```
 */
export async function writeFileAtomicWith(
  path: string,
  fill: (file: Deno.FsFile) => Promise<void>,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${Deno.pid}.${++counter}.tmp`);
  const file = await Deno.open(tmp, {
    write: true,
    createNew: true,
    mode: options.mode ?? 0o644,
  });
  try {
    await fill(file);
    await file.syncData();
  } catch (error) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  file.close();
  try {
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  if (options.syncDir ?? true) await syncDirectory(dir);
}

/**
 * Serialises `value` as pretty JSON (with a trailing newline) and writes it
 * with {@link writeFileAtomic}.
 */
export async function writeJsonAtomic(
  path: string,
  value: unknown,
  options: AtomicWriteOptions = {},
): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n", options);
}

/** fsyncs a directory so renames and creations inside it are durable. */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Some platforms and file systems cannot fsync a directory; the data
    // itself is already synced, so this only narrows a crash window.
  }
}
