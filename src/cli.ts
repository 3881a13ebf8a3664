// The `imdb-train` program: collects every role's CommandSpecs and runs one. Owner of `commander`.
import { Command, Option, InvalidArgumentError, CommanderError } from "commander";
import type { CommandSpec, OptionSpec } from "./command.js";
import { AbortedError, ImdbTrainError, UsageError, errorMessage } from "./errors.js";
import { logger, setQuiet, setVerbose } from "./output.js";
import { commands as ingestCommands } from "./ingest/command.js";
import { commands as workerCommands } from "./workers/command.js";
import { commands as coordinatorCommands } from "./coordinator/command.js";
import { commands as experimentCommands } from "./experiments/command.js";
import { commands as metricsCommands } from "./metrics/command.js";
import { commands as securityCommands } from "./security/command.js";
import { commands as benchCommands } from "./bench/command.js";

const GROUPS: Record<string, string> = {
  bench: "benchmarks that run the baseline in the same run and print the ratio",
  experiment: "the RNN chapter's small experiments",
};

export function allCommands(): CommandSpec[] {
  return [...ingestCommands, ...coordinatorCommands, ...workerCommands, ...metricsCommands, ...securityCommands, ...experimentCommands, ...benchCommands];
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parserFor(spec: OptionSpec): ((v: string) => unknown) | undefined {
  switch (spec.type) {
    case "int":
      return (v) => {
        if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`expected an integer, got "${v}"`);
        return Number(v);
      };
    case "float":
      return (v) => {
        const x = Number(v);
        if (v.trim() === "" || !Number.isFinite(x)) throw new InvalidArgumentError(`expected a number, got "${v}"`);
        return x;
      };
    case "list":
      return (v) => v.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
    default:
      return undefined;
  }
}

/** A value outside the option's declared range stops the command before it runs (exit status 2). */
function checkRange(spec: OptionSpec, v: unknown): void {
  if (typeof v !== "number") return;
  const { min, max, below } = spec;
  const ok = (min === undefined || v >= min) && (max === undefined || v <= max) && (below === undefined || v < below);
  if (!ok) throw new UsageError(`--${spec.name} must be ${rangeText(min, max, below)}, got ${v}`);
}

/** The declared range in words: "a positive number" (min Number.MIN_VALUE), "in [0, 1)", "≥ 1", ... */
function rangeText(min: number | undefined, max: number | undefined, below: number | undefined): string {
  const upper = below !== undefined ? `${below})` : max !== undefined ? `${max}]` : undefined;
  if (min === Number.MIN_VALUE && upper === undefined) return "a positive number";
  if (min !== undefined && upper !== undefined) return `in [${min}, ${upper}`;
  if (min !== undefined) return `≥ ${min}`;
  return below !== undefined ? `< ${below}` : `≤ ${max}`;
}

function toOption(spec: OptionSpec): Option {
  const flags = spec.type === "bool" ? `--${spec.name}` : `--${spec.name} ${spec.value ?? "<value>"}`;
  const opt = new Option(flags, spec.description);
  const parse = parserFor(spec);
  if (parse) opt.argParser(parse);
  if (spec.choices) opt.choices([...spec.choices]);
  if (spec.default !== undefined) opt.default(Array.isArray(spec.default) ? [...spec.default] : spec.default);
  if (spec.required) opt.makeOptionMandatory(true);
  return opt;
}

export function buildProgram(specs: CommandSpec[]): Command {
  const program = new Command("imdb-train")
    .description(
      "Train LSTM/GRU sentiment classifiers on IMDB with data-parallel workers.\n" +
        "Ingest → Arrow batches → workers compute gradients → coordinator all-reduces over ZeroMQ and applies Adam.",
    )
    .option("-q, --quiet", "only warnings and errors on stderr")
    .option("-v, --verbose", "debug logging on stderr")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  program.hook("preAction", () => {
    const g = program.opts();
    if (g.quiet) setQuiet(true);
    if (g.verbose) setVerbose(true);
  });
  const groups = new Map<string, Command>();
  for (const spec of specs) {
    let parent = program;
    for (const part of spec.path.slice(0, -1)) {
      let g = groups.get(part);
      if (!g) {
        g = program.command(part).description(GROUPS[part] ?? part).exitOverride();
        groups.set(part, g);
      }
      parent = g;
    }
    const name = spec.path[spec.path.length - 1]!;
    const cmd = parent.command([name, ...(spec.args ?? [])].join(" ")).description(spec.summary).exitOverride();
    for (const o of spec.options) cmd.addOption(toOption(o));
    const extra: string[] = [];
    if (spec.help) extra.push("\n" + spec.help);
    if (spec.examples?.length) extra.push("\nExamples:\n" + spec.examples.map((e) => "  $ " + e).join("\n"));
    if (extra.length) cmd.addHelpText("after", extra.join("\n"));
    cmd.action(async (...params: unknown[]) => {
      const command = params[params.length - 1] as Command;
      const opts = command.opts() as Record<string, unknown>;
      const args = (params.slice(0, -2) as (string | string[])[]).flat();
      const normalized: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(opts)) normalized[camel(k)] = v;
      for (const o of spec.options) checkRange(o, normalized[camel(o.name)]);
      for (const o of spec.options) if (o.type === "bool") normalized[camel(o.name)] = normalized[camel(o.name)] === true;
      const code = await spec.run(normalized as Parameters<CommandSpec["run"]>[0], args);
      process.exitCode = typeof code === "number" ? code : 0;
    });
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // `imdb-train ... | head` closes stdout early: that ends the output, not the program with a stack trace.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
  const program = buildProgram(allCommands());
  if (argv.length <= 2) {
    program.outputHelp();
    return;
  }
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    const log = logger("imdb-train");
    if (err instanceof ImdbTrainError) {
      // a stop the user (or a launcher scaling down) asked for is not an error: a warning, status 130
      if (err instanceof AbortedError) log.warn(err.message);
      else log.error(err.message);
      if (err.cause && process.env.IMDB_TRAIN_DEBUG === "1") log.error(String((err.cause as Error).stack ?? err.cause));
      process.exitCode = err.exitCode;
    } else {
      log.error(errorMessage(err));
      if (err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
      process.exitCode = 1;
    }
  }
}
