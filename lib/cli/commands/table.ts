import type { Command } from "../command.ts";

/** One command of the table: its name, and how to load its module (options, usage, help, run). */
export interface CommandEntry {
  /** The command's name (`start`). */
  name: string;
  /** Hidden from help, completions and suggestions (internal commands). */
  hidden?: boolean;
  /** Loads the command: the module holding it, which itself imports only light modules. */
  load(): Promise<Command>;
}

/**
 * Every top-level command, in help order. A call of courier loads the
 * module of the one command it runs (help and completions load them all):
 * the table itself is names. A new command: its module here, with `load`.
 */
export const COMMAND_TABLE: readonly CommandEntry[] = [
  { name: "start", load: async () => (await import("./start.ts")).startCommand },
  { name: "stop", load: async () => (await import("./stop.ts")).stopCommand },
  { name: "restart", load: async () => (await import("./start.ts")).restartCommand },
  { name: "status", load: async () => (await import("./status.ts")).statusCommand },
  { name: "kill", load: async () => (await import("./stop.ts")).killCommand },
  { name: "logs", load: async () => (await import("./logs.ts")).logsCommand },
  { name: "doctor", load: async () => (await import("./doctor.ts")).doctorCommand },
  { name: "mail", load: async () => (await import("./mail.ts")).mailCommand },
  { name: "provider", load: async () => (await import("./provider.ts")).providerCommand },
  { name: "token", load: async () => (await import("./token.ts")).tokenCommand },
  { name: "port", load: async () => (await import("./port.ts")).portCommand },
  { name: "service", load: async () => (await import("./service.ts")).serviceCommand },
  {
    name: "daemon",
    hidden: true,
    load: async () => (await import("./start.ts")).daemonCommand,
  },
  {
    name: "completions",
    load: async () => (await import("./completions.ts")).completionsCommand,
  },
];

/** Every command of {@link COMMAND_TABLE}, loaded, in help order. */
export async function loadCommands(): Promise<Command[]> {
  return await Promise.all(COMMAND_TABLE.map((entry) => entry.load()));
}
