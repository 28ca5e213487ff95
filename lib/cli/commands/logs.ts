import { parseInteger, stringOption } from "../args.ts";
import type { Command, CommandContext } from "../command.ts";
import { writeStdout } from "../output.ts";
import { importLazily } from "../../lazy/mod.ts";

async function follow(path: string, from: number, json: boolean): Promise<never> {
  let offset = from;
  const decoder = new TextDecoder();
  let partial = "";
  const emit = (text: string) => {
    partial += text;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) writeStdout(json ? JSON.stringify({ line }) + "\n" : line + "\n");
  };
  const readNew = async () => {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch {
      return;
    }
    try {
      const size = (await file.stat()).size;
      if (size < offset) offset = 0; // rotated or truncated: start over
      await file.seek(offset, Deno.SeekMode.Start);
      const buffer = new Uint8Array(64 * 1024);
      while (true) {
        const n = await file.read(buffer);
        if (n === null || n === 0) break;
        offset += n;
        emit(decoder.decode(buffer.subarray(0, n), { stream: true }));
      }
    } finally {
      file.close();
    }
  };
  // Woken by file-system events (inotify/kqueue), not by a timer.
  const dir = path.slice(0, path.lastIndexOf("/"));
  const watcher = Deno.watchFs(dir, { recursive: false });
  await readNew();
  for await (const _event of watcher) await readNew();
  throw new Error("log watcher ended");
}

/**
 * Prints the journal of the systemd unit that runs this home's daemon (it
 * logs to stderr only, which the journal keeps); `null` when `journalctl`
 * cannot read it.
 */
async function fromJournal(unit: string, n: number, ctx: CommandContext): Promise<number | null> {
  const json = ctx.out.json;
  const print = (line: string) => writeStdout(json ? JSON.stringify({ line }) + "\n" : line + "\n");
  if (ctx.values.follow) {
    const { followJournal } = await importLazily<typeof import("../../supervise/logs.ts")>(
      "../../supervise/logs.ts",
      import.meta.url,
    );
    return await followJournal(unit, { lines: n, onLine: print });
  }
  const { SystemdUser } = await importLazily<typeof import("../../service_manager/mod.ts")>(
    "../../service_manager/mod.ts",
    import.meta.url,
  );
  const lines = await new SystemdUser().journal(unit, n);
  if (lines === null) return null;
  if (json) ctx.out.data({ unit, lines });
  else lines.forEach(print);
  if (!json && lines.length === 0 && n > 0) {
    ctx.out.warn(`courier: the journal has no lines of ${unit} (journalctl --user --unit ${unit})`);
  }
  return 0;
}

/** `courier logs`. */
export const logsCommand: Command = {
  name: "logs",
  summary: "print the service log (last lines, or --follow)",
  usage: ["logs [-n N] [--follow]"],
  options: {
    lines: {
      type: "string",
      short: "n",
      valueName: "N",
      description: "how many lines (default 100)",
    },
    follow: { type: "boolean", short: "f", description: "keep printing lines as they are written" },
  },
  async run(ctx) {
    const text = stringOption(ctx.values, "lines");
    const n = text === undefined
      ? 100
      : parseInteger(text, { option: "-n", hint: "courier logs --help", min: 0, max: 1_000_000 });
    const { homeLayout, resolveHome } = await importLazily<typeof import("../../home/mod.ts")>(
      "../../home/mod.ts",
      import.meta.url,
    );
    const { tailLines } = await importLazily<typeof import("../../log/mod.ts")>(
      "../../log/mod.ts",
      import.meta.url,
    );
    const layout = homeLayout(resolveHome(ctx.homeOption));
    const { logSource } = await importLazily<typeof import("../../supervise/logs.ts")>(
      "../../supervise/logs.ts",
      import.meta.url,
    );
    const source = await logSource(layout);
    if (source.kind === "journal") {
      const code = await fromJournal(source.unit, n, ctx);
      if (code !== null) return code;
      ctx.out.warn(`courier: cannot read the journal of ${source.unit}; showing ${layout.logFile}`);
    }
    const lines = await tailLines(layout.logFile, n);
    if (ctx.out.json && !ctx.values.follow) {
      ctx.out.data({ file: layout.logFile, lines });
    } else {
      for (const line of lines) {
        writeStdout(ctx.out.json ? JSON.stringify({ line }) + "\n" : line + "\n");
      }
    }
    if (!ctx.values.follow) return 0;
    await Deno.mkdir(layout.logDir, { recursive: true });
    const size = await Deno.stat(layout.logFile).then((info) => info.size, () => 0);
    return await follow(layout.logFile, size, ctx.out.json);
  },
};
