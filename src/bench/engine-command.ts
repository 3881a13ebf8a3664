// Subcommands of the gradient engine: `bench engine`. Each entry is a CommandSpec (see src/command.ts).
import { JSON_OPTION, defineCommand, type OptionsOf, type OptionSpec } from "../command.js";
import { DEFAULTS } from "../config.js";
import { UsageError } from "../errors.js";
import { emitJson } from "../output.js";
import { BACKEND_CHOICES } from "../backend-choice.js";

const OPTIONS = [
  { name: "data", value: "<path>", type: "string", description: "aclImdb directory or .tar.gz (train split is read; default: the official archive, downloaded once and cached)" },
  { name: "batch-size", value: "<n>", type: "int", default: DEFAULTS.ingest.batchSize, min: 1, description: "reviews per batch" },
  { name: "quantiles", value: "<q,...>", type: "list", default: ["0.5", "0.9"], description: "review-length quantiles of the archive to time at" },
  { name: "steps", value: "<n>", type: "int", default: 3, min: 1, description: "timed engine steps per batch (after one warm-up step)" },
  { name: "baseline-quantiles", value: "<q,...>", type: "list", description: "quantiles at which tf.layers runs too (default: all of --quantiles)" },
  { name: "baseline-steps", value: "<n>", type: "int", default: 2, min: 1, description: "tf.layers steps per batch (the first is left out when > 1)" },
  { name: "backend", value: "<name>", type: "string", default: "auto", choices: BACKEND_CHOICES, description: "tfjs backend for both (auto: tensorflow, then a GPU via webgpu, else wasm)" },
  { name: "cell", value: "<cell>", type: "string", default: DEFAULTS.model.cell, choices: ["lstm", "gru"], description: "recurrent cell" },
  { name: "hidden", value: "<n>", type: "int", default: DEFAULTS.model.hidden, min: 1, description: "hidden size H" },
  { name: "embed-dim", value: "<n>", type: "int", default: DEFAULTS.model.embedDim, min: 1, description: "embedding width E" },
  { name: "vocab-size", value: "<n>", type: "int", default: DEFAULTS.ingest.vocabSize, min: 1, description: "most frequent tokens kept (plus <unk>, <pad>)" },
  { name: "skip-check", type: "bool", description: "skip the loss/accuracy check against the slow reference" },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];

export type BenchEngineCliOptions = OptionsOf<typeof OPTIONS>;

export const commands = [
  defineCommand({
    path: ["bench", "engine"],
    summary: "time the fused LSTM/GRU engine against tf.layers trained by tfjs autodiff (same backend, same batches)",
    help: [
      "Reads the train split of an aclImdb archive, tokenizes it and builds a vocabulary of the most frequent",
      "tokens, then picks real length-bucketed batches (the --batch-size reviews nearest to each --quantiles",
      "length of the archive: median and 90th percentile by default). For each batch it times training steps",
      "(forward + backward to the full gradient, no optimizer) of the fused engine and of the same model built",
      "from tf.layers (Embedding → LSTM/GRU → Dense, no masking) differentiated by tfjs autodiff, on the same",
      "backend in the same process, and prints samples/s and the ratio. The engine's loss and accuracy on each",
      "batch are also checked against the slow op-by-op reference (--skip-check to skip).",
      "The last stdout line with --json: {bench:\"engine\", backend, samples_per_s, baseline_samples_per_s, ratio,",
      "samples_per_s_all_cases, batch_size, model, cases:[{quantile, length, samples_per_s, tokens_per_s,",
      "baseline_samples_per_s, ratio, ...}]}. The baseline is slow (minutes per step at 200 tokens on wasm,",
      "LSTM(256)): its first step includes graph building and is left out when",
      "--baseline-steps > 1. The engine runs all its batches first; the baseline then runs shortest first, and a",
      "baseline step that fails (tf.layers' autodiff tape can exhaust wasm's memory at long lengths) is reported",
      "in that case's `baseline_error`. The top-level samples_per_s, baseline_samples_per_s and ratio cover the",
      "cases where both ran (ratio = samples_per_s / baseline_samples_per_s); samples_per_s_all_cases every case.",
    ].join("\n"),
    options: OPTIONS,
    examples: [
      "imdb-train bench engine --json",
      "imdb-train bench engine --quantiles 0.5 --steps 2 --baseline-steps 1",
      "imdb-train bench engine --cell gru --backend wasm",
    ],
    async run(opts) {
      const quantiles = opts.quantiles.map(Number);
      if (quantiles.some((q) => !(q >= 0 && q <= 1))) throw new UsageError(`--quantiles must be numbers in 0..1, got ${opts.quantiles.join(",")}`);
      const { benchEngine } = await import("./engine.js");
      const { archiveOrDownload } = await import("./data.js");
      const r = await benchEngine({
        data: await archiveOrDownload(opts.data), batchSize: opts.batchSize, quantiles,
        steps: opts.steps, baselineSteps: opts.baselineSteps,
        baselineQuantiles: opts.baselineQuantiles ? opts.baselineQuantiles.map(Number) : quantiles,
        backend: opts.backend, cell: opts.cell,
        hidden: opts.hidden, embedDim: opts.embedDim, vocabSize: opts.vocabSize,
        check: !opts.skipCheck,
      });
      const line = `engine ${r.samples_per_s.toFixed(1)} samples/s; tf.layers ` +
        (r.baseline_samples_per_s === null ? "did not run" : `${r.baseline_samples_per_s.toFixed(2)} samples/s; ratio ${r.ratio!.toFixed(1)}x`) + ` (${r.backend})`;
      if (opts.json) { process.stderr.write(line + "\n"); emitJson(r); }
      else process.stdout.write(line + "\n");
    },
  }),
];
