import type { Command } from "../command.ts";

/** Every top-level command, in help order. */
export const COMMANDS: Command[] = [];
