// Subcommands of this role: the RNN chapter's experiments. src/cli.ts wires them.
import { countOnes } from "./count-ones-command.js";
import { rnnCount } from "./rnn-count-command.js";

export const commands = [rnnCount, countOnes];
