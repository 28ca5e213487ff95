/**
 * Disk faults for tests: a small tmpfs mounted on a temporary directory, to
 * fill up (ENOSPC) or remount read-only (EROFS). Mounting needs root (or
 * the capability); without it the tests that need one are skipped with the
 * reason printed.
 */

/** A mounted tmpfs. */
export interface SmallDisk {
  /** Where it is mounted. */
  path: string;
  /** Fills every free byte (a filler file); {@link SmallDisk.free} undoes it. */
  fill(): Promise<void>;
  /** Removes the filler. */
  free(): Promise<void>;
  /**
   * Mounts an empty read-only file system on `dir` (below the disk) until
   * the returned function is called: writes there fail with EROFS. (The
   * whole disk cannot be remounted read-only while files are open for
   * writing on it.)
   */
  readOnlyAt(dir: string): Promise<() => Promise<void>>;
}

async function run(command: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  try {
    const output = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
      .output();
    return { ok: output.success, stderr: new TextDecoder().decode(output.stderr).trim() };
  } catch (error) {
    return { ok: false, stderr: (error as Error).message };
  }
}

let probed: string | null | undefined;

/** Why tmpfs mounts are not possible here, or `null` when they are. */
export async function tmpfsUnavailable(): Promise<string | null> {
  if (probed !== undefined) return probed;
  const dir = await Deno.makeTempDir({ prefix: "courier-tmpfs-probe-" });
  const mounted = await run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]);
  if (mounted.ok) await run("umount", [dir]);
  await Deno.remove(dir).catch(() => {});
  probed = mounted.ok ? null : `cannot mount a tmpfs here (${mounted.stderr || "not root"})`;
  return probed;
}

/**
 * Runs `fn` with a tmpfs of `sizeKb` KiB mounted at `path` (created),
 * unmounting it afterwards. Skips (returns `false`, printing why) when
 * tmpfs mounts are not possible.
 */
export async function withSmallDisk(
  path: string,
  sizeKb: number,
  fn: (disk: SmallDisk) => Promise<void>,
): Promise<boolean> {
  const reason = await tmpfsUnavailable();
  if (reason) {
    console.log(`skipped: ${reason}`);
    return false;
  }
  await Deno.mkdir(path, { recursive: true });
  const mounted = await run("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${sizeKb}k,mode=0700`,
    "tmpfs",
    path,
  ]);
  if (!mounted.ok) throw new Error(`mount tmpfs on ${path}: ${mounted.stderr}`);
  const filler = `${path}/.filler`;
  const disk: SmallDisk = {
    path,
    async fill() {
      const file = await Deno.open(filler, { write: true, create: true, append: true });
      const chunk = new Uint8Array(4096);
      try {
        for (;;) await file.write(chunk);
      } catch {
        // full
      } finally {
        file.close();
      }
    },
    async free() {
      await Deno.remove(filler).catch(() => {});
    },
    async readOnlyAt(dir: string) {
      await Deno.mkdir(dir, { recursive: true });
      const result = await run("mount", ["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", dir]);
      if (!result.ok) throw new Error(`mount a read-only tmpfs on ${dir}: ${result.stderr}`);
      readOnly.push(dir);
      return async () => {
        await run("umount", [dir]);
        readOnly.splice(readOnly.indexOf(dir), 1);
      };
    },
  };
  const readOnly: string[] = [];
  try {
    await fn(disk);
  } finally {
    for (const dir of readOnly.splice(0)) await run("umount", [dir]);
    await disk.free();
    const unmounted = await run("umount", [path]);
    if (!unmounted.ok) await run("umount", ["-l", path]);
  }
  return true;
}
