import { importLazily } from "../../lazy/mod.ts";
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
  {
    name: "start",
    load: async () =>
      (await importLazily<typeof import("./start.ts")>("./start.ts", import.meta.url)).startCommand,
  },
  {
    name: "stop",
    load: async () =>
      (await importLazily<typeof import("./stop.ts")>("./stop.ts", import.meta.url)).stopCommand,
  },
  {
    name: "restart",
    load: async () =>
      (await importLazily<typeof import("./start.ts")>("./start.ts", import.meta.url))
        .restartCommand,
  },
  {
    name: "status",
    load: async () =>
      (await importLazily<typeof import("./status.ts")>("./status.ts", import.meta.url))
        .statusCommand,
  },
  {
    name: "kill",
    load: async () =>
      (await importLazily<typeof import("./stop.ts")>("./stop.ts", import.meta.url)).killCommand,
  },
  {
    name: "logs",
    load: async () =>
      (await importLazily<typeof import("./logs.ts")>("./logs.ts", import.meta.url)).logsCommand,
  },
  {
    name: "doctor",
    load: async () =>
      (await importLazily<typeof import("./doctor.ts")>("./doctor.ts", import.meta.url))
        .doctorCommand,
  },
  {
    name: "mail",
    load: async () =>
      (await importLazily<typeof import("./mail.ts")>("./mail.ts", import.meta.url)).mailCommand,
  },
  {
    name: "provider",
    load: async () =>
      (await importLazily<typeof import("./provider.ts")>("./provider.ts", import.meta.url))
        .providerCommand,
  },
  {
    name: "token",
    load: async () =>
      (await importLazily<typeof import("./token.ts")>("./token.ts", import.meta.url)).tokenCommand,
  },
  {
    name: "port",
    load: async () =>
      (await importLazily<typeof import("./port.ts")>("./port.ts", import.meta.url)).portCommand,
  },
  {
    name: "service",
    load: async () =>
      (await importLazily<typeof import("./service.ts")>("./service.ts", import.meta.url))
        .serviceCommand,
  },
  {
    name: "daemon",
    hidden: true,
    load: async () =>
      (await importLazily<typeof import("./start.ts")>("./start.ts", import.meta.url))
        .daemonCommand,
  },
  {
    name: "completions",
    load: async () =>
      (await importLazily<typeof import("./completions.ts")>("./completions.ts", import.meta.url))
        .completionsCommand,
  },
];

/** Every command of {@link COMMAND_TABLE}, loaded, in help order. */
export async function loadCommands(): Promise<Command[]> {
  return await Promise.all(COMMAND_TABLE.map((entry) => entry.load()));
}
