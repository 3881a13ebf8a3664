// Subcommands of the WebGPU engine: `bench gpu-engine`. Each entry is a CommandSpec (see src/command.ts).
import { JSON_OPTION, defineCommand, type OptionSpec } from "../command.js";
import { DEFAULTS } from "../config.js";
import { TrainingError, UsageError } from "../errors.js";
import { emitJson } from "../output.js";

const OPTIONS = [
  { name: "data", value: "<path>", type: "string", description: "aclImdb directory or .tar.gz (train split is read; default: the official archive, downloaded once and cached)" },
  { name: "batch-sizes", value: "<b,...>", type: "list", default: ["64", "256"], description: "batch sizes to time" },
  { name: "cell", value: "<cell>", type: "string", default: DEFAULTS.model.cell, choices: ["lstm", "gru"], description: "recurrent cell (the anchor is always an LSTM)" },
  { name: "hidden", value: "<n>", type: "int", default: DEFAULTS.model.hidden, min: 1, description: "hidden size H" },
  { name: "embed-dim", value: "<n>", type: "int", default: DEFAULTS.model.embedDim, min: 1, description: "embedding width E" },
  { name: "vocab-size", value: "<n>", type: "int", default: DEFAULTS.ingest.vocabSize, min: 1, description: "most frequent tokens kept (plus <unk>, <pad>)" },
  { name: "count", value: "<n>", type: "int", default: 0, min: 0, description: "reviews read (0: all)" },
  { name: "max-batches", value: "<n>", type: "int", default: 0, min: 0, description: "timed batches per batch size (0: the whole epoch)" },
  { name: "max-seconds", value: "<s>", type: "float", default: 120, above: 0, description: "stop timing a batch size after this long" },
  { name: "adapter", value: "<kind>", type: "string", default: "gpu", choices: ["gpu", "software", "any"], description: "which WebGPU adapter may run it" },
  { name: "check", type: "bool", description: "first compare gradients on one real batch with the CPU engine" },
  { name: "max-check-error", value: "<x>", type: "float", default: 1e-3, description: "with --check: fail when the relative error exceeds this" },
  { name: "skip-baseline", type: "bool", description: "do not run the PyTorch anchor (no ratio)" },
  { name: "python", value: "<exe>", type: "string", default: "python3", description: "Python with torch (CUDA) for the anchor" },
  { name: "torch-anchor", value: "<path>", type: "string", description: "the PyTorch anchor script (torch_imdb_anchor.py; required unless --skip-baseline)" },
  { name: "torch-test", value: "<path>", type: "string", description: "test archive for the anchor's accuracy line (default: --data; speed is unaffected)" },
  { name: "torch-epochs", value: "<n>", type: "int", default: 3, min: 1, description: "anchor epochs at batch 64 (the first is left out of its figure)" },
  { name: "torch-timeout", value: "<s>", type: "int", default: 400, min: 1, description: "give up on the anchor after this many seconds" },
  { name: "out", value: "<dir>", type: "string", default: "bench/results", description: "where the results file is written ('' for none)" },
  { name: "gpu-timestamps", type: "bool", description: "also measure GPU time per phase (forward, BPTT, weight gradients) with timestamp queries" },
  { name: "seed", value: "<n>", type: "int", default: DEFAULTS.seed, description: "shuffling and initialisation seed" },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];

export const commands = [
  defineCommand({
    path: ["bench", "gpu-engine"],
    summary: "time the WebGPU engine on real IMDB length buckets against PyTorch's cuDNN LSTM on the same card",
    help: [
      "Reads the train split of an aclImdb archive, tokenizes it (vocabulary: the 25,000 most frequent tokens",
      "plus <unk>, <pad>, as the PyTorch anchor) and batches it as torch_imdb_anchor.py does (shuffled pools of",
      "100·B reviews sorted by length, chunks of B). For each --batch-sizes B it times training steps of the",
      "WebGPU engine over those batches (an epoch, or --max-batches / --max-seconds of it): forward and backward",
      "to the full gradient, copied back to the host as a worker needs it (no optimizer: the coordinator runs",
      "Adam). Then, in the same run and on the same card, it runs the PyTorch anchor (Embedding 100 → LSTM 256",
      "→ Linear, cuDNN, Adam; --torch-epochs epochs at batch 64 and one at 256) and prints the ratio per batch",
      "size. PyTorch's figure is the mean over its epochs after the first. With --check the engine's gradients",
      "on one real batch are compared with the CPU engine's first (relative error per tensor), and its rows form",
      "(stepRows given the dense weights and the batch's embedding rows) with its full step (bit for bit).",
      "Each row also times the rows form over the first 20 batches: rows_samples_per_s, rows_unpack_ms,",
      "rows_readback_bytes (per step).",
      "Writes <out>/<date>-<card>-webgpu.json: [{bench:\"gpu-engine\", device, batch, samples_per_s,",
      "baseline_samples_per_s, ratio, tokens_per_s, ...}] (one object per batch size). Without a hardware adapter",
      "it refuses to run unless --adapter software/any is given (llvmpipe: timings mean nothing).",
      "The last stdout line with --json: {rows, check, file, torch}. See bench/gpu/README.md for the GPU machine.",
    ].join("\n"),
    options: OPTIONS,
    examples: [
      "imdb-train bench gpu-engine --check --json",
      "imdb-train bench gpu-engine --batch-sizes 64 --max-seconds 30 --skip-baseline",
      "imdb-train bench gpu-engine --adapter software --count 300 --batch-sizes 8 --max-batches 2 --hidden 16 --skip-baseline --out ''",
    ],
    async run(opts) {
      const batchSizes = opts.batchSizes.map(Number);
      if (batchSizes.length === 0 || batchSizes.some((b) => !(Number.isInteger(b) && b >= 1))) throw new UsageError(`--batch-sizes must be positive integers, got ${opts.batchSizes.join(",")}`);
      if (!opts.skipBaseline && !opts.torchAnchor) throw new UsageError("give --torch-anchor <path to torch_imdb_anchor.py> for the PyTorch baseline, or --skip-baseline");
      const { archiveOrDownload } = await import("./data.js");
      const data = await archiveOrDownload(opts.data);
      const { benchGpu } = await import("./gpu-engine.js");
      const r = await benchGpu({
        data, batchSizes, cell: opts.cell,
        hidden: opts.hidden, embedDim: opts.embedDim, vocabSize: opts.vocabSize,
        count: opts.count, maxBatches: opts.maxBatches, maxSeconds: opts.maxSeconds,
        adapter: opts.adapter, check: opts.check,
        torch: opts.skipBaseline ? undefined : {
          python: opts.python, script: opts.torchAnchor!, test: opts.torchTest ?? data,
          epochs: opts.torchEpochs, timeoutS: opts.torchTimeout,
        },
        out: opts.out || undefined, seed: opts.seed, gpuTimestamps: opts.gpuTimestamps,
      });
      const table = ["batch  engine reviews/s  PyTorch reviews/s  ratio   device"];
      for (const row of r.rows) {
        table.push(`${String(row.batch).padStart(5)}  ${row.samples_per_s.toFixed(1).padStart(16)}  ${(row.baseline_samples_per_s?.toFixed(1) ?? "-").padStart(17)}  ${(row.ratio ? row.ratio.toFixed(2) + "x" : "-").padStart(6)}   ${row.device}`);
      }
      process.stderr.write(table.join("\n") + "\n" + (r.file ? `written ${r.file}\n` : ""));
      if (opts.json) emitJson(r);
      else process.stdout.write(table.join("\n") + "\n");
      if (r.check && r.check.max_rel_err > opts.maxCheckError) {
        throw new TrainingError(`gradient check failed: max relative error ${r.check.max_rel_err.toExponential(2)} > ${opts.maxCheckError}`);
      }
      if (r.check && !r.check.rows_bit_identical) throw new TrainingError("gradient check failed: the rows-form step (stepRows) differs from the full step");
    },
  }),
];
