import type { Command } from "../command.ts";
import { completionsCommand } from "./completions.ts";
import { doctorCommand } from "./doctor.ts";
import { logsCommand } from "./logs.ts";
import { mailCommand } from "./mail.ts";
import { portCommand } from "./port.ts";
import { serviceCommand } from "./service.ts";
import { daemonCommand, restartCommand, startCommand } from "./start.ts";
import { statusCommand } from "./status.ts";
import { killCommand, stopCommand } from "./stop.ts";
import { tokenCommand } from "./token.ts";

/** Every top-level command, in help order. */
export const COMMANDS: Command[] = [
  startCommand,
  stopCommand,
  restartCommand,
  statusCommand,
  killCommand,
  logsCommand,
  doctorCommand,
  mailCommand,
  tokenCommand,
  portCommand,
  serviceCommand,
  daemonCommand,
  completionsCommand,
];
