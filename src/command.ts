// The shape of a subcommand, declared without any CLI library: each role's `command.ts` exports
// `CommandSpec`s and `src/cli.ts` (the only module that imports the CLI library) turns them into a program.
//
// Options are declared once, as data, and their parsed values are typed from that declaration:
//
//   const OPTIONS = [
//     { name: "out", value: "<dir>", type: "string", required: true, description: "…" },
//     { name: "workers", value: "<n>", type: "int", default: 2, min: 1, max: 256, description: "…" },
//   ] as const satisfies readonly OptionSpec[];
//   defineCommand({ path: ["x"], options: OPTIONS, run(o) { o.out /* string */; o.workers /* number */ } });
//
// src/cli.ts parses, converts and range-checks every value (min, max, choices) before `run` is called, so
// a command's code reads typed values and never converts them again.

export type OptionType = "string" | "int" | "float" | "bool" | "list";

export interface OptionSpec {
  /** Long name without dashes, e.g. "batch-size"; read back in camelCase ("batchSize"). */
  name: string;
  /** Value placeholder shown in --help, e.g. "<n>"; omitted for "bool". */
  value?: string;
  type: OptionType;
  description: string;
  default?: string | number | boolean | readonly string[];
  /** Allowed values, checked before the command runs. */
  choices?: readonly string[];
  required?: boolean;
  /** Inclusive bounds of an "int" or "float" value, checked before the command runs. */
  min?: number;
  max?: number;
  /** Exclusive bounds: the value must be strictly above / below. */
  above?: number;
  below?: number;
  /** A "string" option that may be given more than once: its value is every one given, in order (string[]). */
  repeatable?: boolean;
}

/** "batch-size" → "batchSize". */
export type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;

type ValueOf<O extends OptionSpec> =
  O extends { repeatable: true } ? string[] :
  O["type"] extends "int" | "float" ? number :
  O["type"] extends "bool" ? boolean :
  O["type"] extends "list" ? string[] :
  O extends { choices: readonly (infer C extends string)[] } ? C : string;

/** A bool is false when absent; an option with a default or that is required always has a value. */
type AlwaysSet<O extends OptionSpec> =
  O["type"] extends "bool" ? true : O extends { default: string | number | boolean | readonly string[] } ? true : O extends { required: true } ? true : false;

/** The parsed options of a command whose options are `S`, camelCase keys, typed by the declaration. */
export type OptionsOf<S extends readonly OptionSpec[]> = {
  [O in S[number] as Camel<O["name"]>]: AlwaysSet<O> extends true ? ValueOf<O> : ValueOf<O> | undefined;
};

export interface CommandSpec<S extends readonly OptionSpec[] = readonly OptionSpec[]> {
  /** Path of the command: ["ingest"], ["bench", "ingest"], ["experiment", "rnn-count"]. */
  path: string[];
  summary: string;
  /** Longer text for --help (what it does, what it writes). */
  help?: string;
  /** Positional arguments, e.g. ["<text...>"]. */
  args?: string[];
  options: S;
  /** Example invocations shown in --help. */
  examples?: string[];
  /** Runs the command with its parsed, checked options; resolves to an exit status (default 0). */
  run(opts: OptionsOf<S>, args: string[]): Promise<number | void>;
}

/** A command whose `run` sees its options typed from their declaration. */
export function defineCommand<const S extends readonly OptionSpec[]>(spec: CommandSpec<S>): CommandSpec {
  return spec as CommandSpec;
}

/** `--json`, shared by every command with a machine-readable result. */
export const JSON_OPTION = {
  name: "json", type: "bool", description: "print one JSON object with the results as the last line on stdout",
} as const satisfies OptionSpec;

/** Ingest truncation side, shared by `ingest`, `train` and `bench scaling`. */
export const KEEP_OPTION = {
  name: "keep", value: "<first|last>", type: "string", choices: ["first", "last"], default: "last",
  description: "which --max-len tokens of a longer review are kept: the first, or the last (reviews usually end with their verdict)",
} as const satisfies OptionSpec;

/** `--metrics-port`, shared by every long-running role. */
export const METRICS_PORT_OPTION = {
  name: "metrics-port", value: "<n>", type: "int", min: 0, max: 65535, description: "serve Prometheus /metrics on this port (0 = any free port; default off)",
} as const satisfies OptionSpec;
