// Subcommands of this role. Each entry is a CommandSpec (see src/command.ts); src/cli.ts wires them.
import type { CommandSpec } from "../command.js";

export const commands: CommandSpec[] = [];
