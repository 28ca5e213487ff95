/**
 * The command table ({@link COMMAND_TABLE}: names, each command's module
 * loaded on demand) and, for help, completions and tests, every command
 * loaded ({@link COMMANDS}). The CLI imports `./table.ts`, not this module,
 * so that a call loads only the command it runs.
 *
 * @module
 */
import type { Command } from "../command.ts";
import { loadCommands } from "./table.ts";

export { COMMAND_TABLE, type CommandEntry, loadCommands } from "./table.ts";

/** Every top-level command, in help order. */
export const COMMANDS: Command[] = await loadCommands();
