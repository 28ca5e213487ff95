import type { HomeLayout } from "../home/mod.ts";
import {
  AuthThrottle,
  createHostCheck,
  ensureTokenFile,
  type GuardOptions,
  LiveToken,
  loadAccessSettings,
} from "../http/mod.ts";
import type { Logger } from "../log/mod.ts";

/**
 * Everything the daemon's guard chain needs, made ready before the port is
 * bound: the API token (created on the first start, mode 0600), the live
 * token check that follows rotations, `config.json` `allowed_hosts` and
 * `allowed_origins`, and the brute-force throttle. What changes is logged;
 * the token itself never is.
 *
 * @throws {TokenFileError} when the token file exists but cannot be used.
 * @throws {ConfigError} when `config.json` or an entry in it is wrong.
 */
export async function prepareApiGuard(
  layout: HomeLayout,
  host: string,
  log: Logger,
): Promise<Omit<GuardOptions, "authRequirement">> {
  const { created } = await ensureTokenFile(layout.tokenFile);
  if (created) log.info(`created the API token ${layout.tokenFile} (mode 600)`);
  const access = await loadAccessSettings(layout.configFile);
  const token = new LiveToken(layout.tokenFile, {
    onChange(problem) {
      if (problem) {
        log.warn(`API token unusable, refusing every request that needs it: ${problem.message}`);
      } else log.info(`API token replaced (${layout.tokenFile} changed); the old one is refused`);
    },
  });
  return {
    token,
    tokenFile: layout.tokenFile,
    hostAllowed: createHostCheck({ boundHost: host, allowedHosts: access.allowedHosts }),
    allowedOrigins: access.allowedOrigins,
    throttle: new AuthThrottle(),
    onLockout(peer, seconds) {
      log.warn(`${peer} sent too many wrong API tokens: refusing it for ${seconds} s`);
    },
  };
}
