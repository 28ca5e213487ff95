import { isProcessAlive, type ProcessIdentity } from "./identity.ts";

/** Signal names accepted by `courier kill --signal`. */
export const SIGNAL_NAMES: readonly Deno.Signal[] = [
  "SIGTERM",
  "SIGKILL",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
  "SIGSTOP",
  "SIGCONT",
];

/**
 * Normalises a signal name (`kill`, `KILL`, `SIGKILL`, `9`) to a
 * `Deno.Signal`, or returns `null` when it is not one courier sends.
 */
export function parseSignal(name: string): Deno.Signal | null {
  const numbers: Record<string, Deno.Signal> = {
    "1": "SIGHUP",
    "2": "SIGINT",
    "3": "SIGQUIT",
    "9": "SIGKILL",
    "15": "SIGTERM",
  };
  if (numbers[name]) return numbers[name];
  const upper = name.toUpperCase();
  const full = (upper.startsWith("SIG") ? upper : `SIG${upper}`) as Deno.Signal;
  return SIGNAL_NAMES.includes(full) ? full : null;
}

/**
 * Sends `signal` to the process, but only if it is still the process that
 * `identity` recorded (same PID and start time). Returns whether the signal
 * was sent; a reused PID is never signalled.
 */
export async function signalIfSame(
  identity: ProcessIdentity,
  signal: Deno.Signal,
): Promise<boolean> {
  if (!(await isProcessAlive(identity))) return false;
  try {
    Deno.kill(identity.pid, signal);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Waits `ms`. Not with setTimeout: in Deno 2 its first use loads Node's
 * timers (some 40 modules), which `courier stop` would pay for.
 */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    AbortSignal.timeout(ms).addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * Waits until the recorded process has exited. A process that is not our
 * child cannot be awaited directly (that needs pidfd), so this checks its
 * identity with a short back-off (1 ms doubling to 5 ms), which costs
 * microseconds per check and notices the exit within 5 ms. Resolves `true`
 * once it is gone, `false` on timeout.
 */
export async function waitForExit(
  identity: ProcessIdentity,
  options: { timeoutMs: number },
): Promise<boolean> {
  const deadline = performance.now() + options.timeoutMs;
  let delay = 1;
  while (await isProcessAlive(identity)) {
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await sleep(Math.min(delay, left));
    delay = Math.min(delay * 2, 5);
  }
  return true;
}
