/** The name a damaged file is kept under: `<path>.corrupt-<timestamp>`. */
export function corruptName(path: string, nowMs: number = Date.now()): string {
  return `${path}.corrupt-${new Date(nowMs).toISOString().replace(/[:.]/g, "-")}`;
}

/**
 * Moves a damaged file aside to `<path>.corrupt-<timestamp>` (kept for
 * inspection) and returns where it went.
 */
export async function moveAside(path: string, nowMs: number = Date.now()): Promise<string> {
  const aside = corruptName(path, nowMs);
  await Deno.rename(path, aside);
  return aside;
}

/**
 * Copies a damaged file aside to `<path>.corrupt-<timestamp>`, leaving it in
 * place (for a file the caller rewrites next), and returns the copy's path.
 */
export async function copyAside(path: string, nowMs: number = Date.now()): Promise<string> {
  const aside = corruptName(path, nowMs);
  await Deno.copyFile(path, aside);
  return aside;
}
