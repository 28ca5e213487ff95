import { importLazily } from "../lazy/mod.ts";
import type { DaemonExtension } from "./extension.ts";

/**
 * The services a courier daemon hosts, created fresh for each daemon.
 * The mail service (`lib/mail/`) registers itself here.
 *
 * Loaded on demand: the mail service pulls in a YAML library that costs
 * every CLI call ~35 ms of start-up, and only the daemon needs it.
 */
export async function defaultExtensions(): Promise<DaemonExtension[]> {
  const { createMailExtension } = await importLazily<typeof import("../mail/extension.ts")>(
    "../mail/extension.ts",
    import.meta.url,
  );
  return [createMailExtension()];
}
