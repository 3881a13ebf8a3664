// The shape of a subcommand, declared without any CLI library: each role's `command.ts` exports
// `CommandSpec`s and `src/cli.ts` (the only module that imports the CLI library) turns them into a program.

export type OptionType = "string" | "int" | "float" | "bool" | "list";

export interface OptionSpec {
  /** Long name without dashes, e.g. "batch-size"; read back in camelCase ("batchSize"). */
  name: string;
  /** Value placeholder shown in --help, e.g. "<n>"; omitted for "bool". */
  value?: string;
  type: OptionType;
  description: string;
  default?: string | number | boolean | string[];
  /** Allowed values, checked before the command runs. */
  choices?: string[];
  required?: boolean;
}

export interface CommandSpec {
  /** Path of the command: ["ingest"], ["bench", "ingest"], ["experiment", "rnn-count"]. */
  path: string[];
  summary: string;
  /** Longer text for --help (what it does, what it writes). */
  help?: string;
  /** Positional arguments, e.g. ["<text...>"]. */
  args?: string[];
  options: OptionSpec[];
  /** Example invocations shown in --help. */
  examples?: string[];
  /** Runs the command; resolves to an exit status (default 0). */
  run(opts: Record<string, unknown>, args: string[]): Promise<number | void>;
}

/** Options shared by every long-running command. */
export const JSON_OPTION: OptionSpec = {
  name: "json", type: "bool", description: "print one JSON object with the results as the last line on stdout",
};

/** Ingest truncation side, shared by `ingest`, `train` and `bench scaling`. */
export const KEEP_OPTION: OptionSpec = {
  name: "keep", value: "<first|last>", type: "string", choices: ["first", "last"], default: "last",
  description: "which --max-len tokens of a longer review are kept: the first, or the last (reviews usually end with their verdict)",
};
