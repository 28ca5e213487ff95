import { isAbsolute, join, resolve } from "node:path";

/** The environment variable that puts the lease registry in a directory of one's choice. */
export const LEASE_DIR_ENV = "COURIER_LEASE_DIR";

function ownDirectory(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    const uid = Deno.uid();
    return info.isDirectory && (uid === null || info.uid === uid);
  } catch {
    return false;
  }
}

/**
 * Where this user's port leases live: one registry per user, whatever the
 * courier home, so that no two processes of the user (two homes, two
 * daemons with `--port auto`, scripts) are ever handed the same port.
 *
 * In order: `$COURIER_LEASE_DIR`; `$XDG_RUNTIME_DIR/courier`; on systemd
 * machines without that variable (cron, some ssh sessions),
 * `/run/user/<uid>/courier`, where it would point; else `~/.courier/run`
 * (the default home's, even for another home). `null` when none can be
 * named (no `HOME`).
 */
export function userLeaseDir(): string | null {
  const explicit = Deno.env.get(LEASE_DIR_ENV);
  if (explicit) return resolve(explicit);
  const runtime = Deno.env.get("XDG_RUNTIME_DIR");
  if (runtime && isAbsolute(runtime)) return join(runtime, "courier");
  let uid: number | null = null;
  try {
    uid = Deno.uid();
  } catch {
    // not available here
  }
  if (uid !== null && ownDirectory(`/run/user/${uid}`)) return `/run/user/${uid}/courier`;
  const home = Deno.env.get("HOME");
  return home ? join(home, ".courier", "run") : null;
}
