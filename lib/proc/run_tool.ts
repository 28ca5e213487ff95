/** What a helper tool printed, when it could be run at all. */
export interface ToolOutput {
  /** The tool's exit code. */
  code: number;
  /** Its standard output, decoded as UTF-8. */
  stdout: string;
}

/**
 * Runs a helper tool such as `pgrep`, `lsof`, `ss` or `ps` and returns what
 * it printed, or `null` when the tool is not installed or cannot be run.
 * Helper tools are optional: callers degrade instead of crashing.
 */
export async function runTool(
  command: string,
  args: string[],
  options: { timeoutMs?: number } = {},
): Promise<ToolOutput | null> {
  try {
    const output = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
    }).output();
    return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
  } catch {
    return null;
  }
}

/** Whether a helper tool can be found on `PATH`. */
export async function hasTool(command: string): Promise<boolean> {
  const path = Deno.env.get("PATH") ?? "";
  for (const dir of path.split(":")) {
    if (!dir) continue;
    try {
      const info = await Deno.stat(`${dir}/${command}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}
