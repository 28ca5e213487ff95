/**
 * Reads a text file, or returns `null` when it does not exist.
 * Other errors (permissions, I/O) are thrown.
 */
export async function readTextIfExists(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Removes a file, ignoring that it may already be gone. */
export async function removeIfExists(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Scratch space for {@link readAllTextSync}, grown on demand. */
let scratch = new Uint8Array(16 * 1024);
const utf8 = new TextDecoder();

/**
 * Reads a small file whole, synchronously, in as few system calls as
 * possible: open, read into a kept buffer until end of file, close.
 * `Deno.readTextFileSync` also asks for the file's size first and, for
 * `/proc` files (which report size 0), reads in chunks that start at 32
 * bytes; on a loaded machine, where every system call costs, this is the
 * cheaper way to read `/proc/<pid>/stat` or a file of a few hundred bytes.
 *
 * @throws {Deno.errors.NotFound} and other open or read errors, as `Deno.openSync` does.
 *
 * @example
 * ```ts
 * const stat = readSmallTextSync("/proc/self/stat");
 * ```
 */
export function readSmallTextSync(path: string): string {
  const file = Deno.openSync(path, { read: true });
  try {
    return readAllTextSync(file);
  } finally {
    file.close();
  }
}

/**
 * Reads an open file from where it stands to its end, as text, into a kept
 * buffer (see {@link readSmallTextSync}); the file stays open.
 *
 * @example
 * ```ts
 * using file = Deno.openSync("/etc/hostname");
 * console.log(readAllTextSync(file));
 * ```
 */
export function readAllTextSync(file: Deno.FsFile): string {
  let length = 0;
  for (;;) {
    if (length === scratch.length) {
      const bigger = new Uint8Array(scratch.length * 2);
      bigger.set(scratch);
      scratch = bigger;
    }
    const n = file.readSync(scratch.subarray(length));
    if (n === null) break;
    length += n;
  }
  return utf8.decode(scratch.subarray(0, length));
}
