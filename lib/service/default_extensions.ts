import { createMailExtension } from "../mail/service.ts";
import type { DaemonExtension } from "./extension.ts";

/**
 * The services a courier daemon hosts, created fresh for each daemon.
 * The mail service (`lib/mail/`) registers itself here.
 */
export function defaultExtensions(): DaemonExtension[] {
  return [createMailExtension()];
}
