// The `bench` commands: each runs its baseline in the same run and prints the ratio. Implementations load when
// a command runs, so that `--help` stays fast.
import { JSON_OPTION, defineCommand, type OptionSpec, type OptionsOf } from "../command.js";
import { DEFAULTS } from "../config.js";
import { commands as engineCommands } from "./engine-command.js";
import { commands as gpuCommands } from "./gpu-command.js";
import { commands as soakCommands } from "./soak-command.js";

export const ALLREDUCE_OPTIONS = [
  { name: "workers", value: "<list>", type: "list", default: ["1", "2", "4", "8"], description: "worker counts to time" },
  { name: "rounds", value: "<n>", type: "int", default: 20, min: 1, description: "rounds timed per row (after 3 warm-up rounds)" },
  { name: "vocab-size", value: "<n>", type: "int", default: DEFAULTS.ingest.vocabSize + 2, min: 3, description: "embedding rows of the synthetic model" },
  { name: "hidden", value: "<n>", type: "int", default: DEFAULTS.model.hidden, min: 1, description: "hidden size" },
  { name: "scale-workers", value: "<list>", type: "list", default: ["2", "4", "8", "16"], description: "worker counts of the scale-out rows (0 = none)" },
  { name: "variants", value: "<list>", type: "list", default: ["fp16", "fp32-rows", "fp16-rows", "fp32-shards2", "fp32-shards4"], description: "scale-out variants, each timed next to fp32 dense: fp32|fp16, -rows (embedding rows only), -shardsK (K coordinator processes)" },
  { name: "scale-rounds", value: "<n>", type: "int", default: 4, min: 1, description: "rounds timed per scale-out row (after 2 warm-up rounds); each row starts its own worker processes, so the scale-out rows take minutes" },
  { name: "touched-rows", value: "<n>", type: "int", default: 5000, min: 1, description: "embedding rows a simulated worker's gradient touches (a batch of 64 reviews of ≤ 400 tokens touches a few thousand of the 25,002)" },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];
export type AllreduceCliOptions = OptionsOf<typeof ALLREDUCE_OPTIONS>;

export const SCALING_OPTIONS = [
  { name: "dataset", value: "<dir>", type: "string", description: "ingested dataset (default: ingest the shared archive into a temp dir)" },
  { name: "data", value: "<path>", type: "string", description: "archive to ingest when --dataset is not given (default: the official archive, downloaded once and cached)" },
  { name: "steps", value: "<n>", type: "int", default: 10, min: 1, description: "steps per run" },
  { name: "max-len", value: "<n>", type: "int", default: DEFAULTS.train.maxLen, description: "ingest truncation" },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];
export type ScalingCliOptions = OptionsOf<typeof SCALING_OPTIONS>;

/** The WebGPU engine's training speed on an H200 at batch 64 (bench/results/2026-11-28-nvidia-h200-webgpu.json:
 *  3,076–3,207 reviews/s of ~270 tokens): what a synthetic GPU worker computes at. */
const H200_TOKENS_PER_S = 840_000;

export const CLUSTER_OPTIONS = [
  { name: "workers", value: "<list>", type: "list", default: ["1", "2", "4", "8"], description: "worker counts to run" },
  { name: "variants", value: "<list>", type: "list", default: ["dense", "rows", "rows-fp16"], description: "step rounds to time: dense (the whole vector both ways, fp32: the baseline, always run), rows (the default: each task carries the rows it reads, gradients come back as rows), rows-fp16, dense-shards2, rows-shards2 (a shard child beside the coordinator), rows-remote (a coordinator-shard on each worker's host, found through a nats-server it starts: Debian package nats-server)" },
  { name: "tokens-per-s", value: "<n>", type: "float", default: H200_TOKENS_PER_S, above: 0, description: "a synthetic worker's compute speed in padded tokens per second (default: the WebGPU engine on an H200 at batch 64)" },
  { name: "steps", value: "<n>", type: "int", default: 30, min: 2, description: "steps measured per run (one batch per worker per step)" },
  { name: "warmup", value: "<n>", type: "int", default: 15, min: 1, description: "steps each run does before the measured ones (start-up: compilation of the hot code, JavaScript's and WebAssembly's, first buffers and connections)" },
  { name: "link-gbps", value: "<G>", type: "float", above: 0, description: "give every process its own network namespace and a link of G Gb/s each way (root, iproute2, tc); default: loopback" },
  { name: "dataset", value: "<dir>", type: "string", description: "an ingested dataset (default: ingest --data with --batch-size, whole reviews)" },
  { name: "data", value: "<path>", type: "string", description: "archive to ingest when --dataset is not given (default: the official archive, downloaded once and cached)" },
  { name: "batch-size", value: "<n>", type: "int", default: 64, min: 1, description: "reviews per batch when ingesting" },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];
export type ClusterCliOptions = OptionsOf<typeof CLUSTER_OPTIONS>;

const INGEST_OPTIONS = [
  { name: "data", value: "<path>", type: "string", description: "aclImdb directory or .tar.gz (default: the official archive, downloaded once and cached)" },
  { name: "runs", value: "<n>", type: "int", description: "runs of each side (best is reported)", default: 1, min: 1 },
  { name: "threads", value: "<n>", type: "int", description: "tokenizer threads (1 keeps a 2-core machine busiest: main thread reads, one thread tokenizes)", default: 1, min: 1, max: 64 },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];

export const commands = [
  defineCommand({
    path: ["bench", "cluster"],
    summary: "N synthetic GPU workers against a real coordinator: samples/s, efficiency, the step's critical path and bytes per step, dense fp32 round as the baseline",
    help:
      "Each worker is a process that speaks the real protocol on the real batches of an ingested dataset, but\n" +
      "\"computes\" by waiting padded tokens ÷ --tokens-per-s (a GPU engine's speed) and sends a gradient of the real\n" +
      "size and sparsity. For every --workers N and --variants round it runs a real `coordinator` for --warmup and\n" +
      "then --steps steps (one batch per worker per step) and reports, over the --steps steps: samples/s,\n" +
      "efficiency = samples/s ÷ (N × one worker's compute-only samples/s), the step split into compute, the\n" +
      "worker's own handling of a task (parameters in, gradient encoded), reduce, clip + Adam and wire (with push\n" +
      "and pull timed per task from both ends: the workers' clocks and the coordinator's --timeline), the\n" +
      "coordinator's turnaround (a step's last gradient to the next step's first task, on its clock alone) and\n" +
      "the bytes per step on the coordinator's link. The dense fp32 round (the baseline) always runs.\n" +
      "Beside each unsharded round, the wire's floor: the same hosts exchange the same bytes over bare ZeroMQ\n" +
      "(one message of a task's pull bytes to each worker, one of its push bytes back, around the same compute)\n" +
      "with no protocol, reduce or Adam; its efficiency is the most a round of those bytes can reach here.\n" +
      "With --link-gbps G (root) each process gets its own network namespace and a G Gb/s\n" +
      "link each way, and the efficiency the measured CPU times plus bytes ÷ G predict is printed beside the\n" +
      "measured one. The last stdout line (--json): {efficiency: {N: …}, baseline_efficiency: {N: …},\n" +
      "floor_efficiency: {N: …}, bytes_per_step: {N: …}, link_gbps, warmup_steps, rows: [...]}.",
    options: CLUSTER_OPTIONS,
    examples: ["imdb-train bench cluster --workers 1,4 --json", "imdb-train bench cluster --workers 2 --link-gbps 1 --json   # as root"],
    async run(o) {
      const { benchCluster } = await import("./cluster.js");
      return await benchCluster(o);
    },
  }),
  defineCommand({
    path: ["bench", "allreduce"],
    summary: "time one reduce + clip + Adam + broadcast round for 1, 2, 4, 8 workers next to raw ZeroMQ; scale-out variants",
    help:
      "Synthetic gradients of the model's size (default V=25002, E=100, H=256). Simulated workers are child processes\n" +
      "that answer each Assign at once with a fixed gradient; the same processes also time a raw ZeroMQ exchange of\n" +
      "the same bytes (parameters out, gradient back) in the same run. Prints bandwidth and the ratio to raw.\n" +
      "Then the scale-out rows: for 2–16 workers, fp16 gradients, embedding rows only and K coordinator shards,\n" +
      "each with its bytes per step and time per round next to the fp32 dense round of the same worker count.",
    options: ALLREDUCE_OPTIONS,
    examples: ["imdb-train bench allreduce --json", "imdb-train bench allreduce --workers 2 --rounds 10 --scale-workers 0", "imdb-train bench allreduce --workers 2 --scale-workers 2,16 --variants fp16-rows,fp32-shards4"],
    async run(o) {
      const { benchAllreduce } = await import("./allreduce.js");
      return await benchAllreduce(o);
    },
  }),
  defineCommand({
    path: ["bench", "scaling"],
    summary: "samples/s of a real 1-worker and 2-worker run on the shared archive; coordinator share of the step",
    help:
      "Runs `train` twice on the same dataset and the same samples (2 batches of 64 per step, --steps steps): once with\n" +
      "1 worker (the baseline) and once with 2. Prints samples/s of each, the speed-up, and the coordinator's share of\n" +
      "the step time (reduce + clip + Adam + broadcast) at 2 workers (target ≤ 5%).",
    options: SCALING_OPTIONS,
    examples: ["imdb-train bench scaling --json", "imdb-train bench scaling --dataset runs/full/dataset --steps 20"],
    async run(o) {
      const { benchScaling } = await import("./scaling.js");
      return await benchScaling(o);
    },
  }),
  defineCommand({
    path: ["bench", "ingest"],
    summary: "time the whole ingest against a single-threaded python3 baseline; prints the ratio",
    help: [
      "Runs bench/ingest-baseline.py (python3 standard library: tarfile, lowercase, <br /> removed, regex",
      "[a-z0-9]+(?:'[a-z]+)?|[^\\sa-z0-9], Counter) and then the whole ingest into a temporary directory, on the",
      "same input, --runs times each; reports the best of each, their ratio (baseline / ingest), the first",
      "ingest's time and ratio (code not yet compiled: what a one-shot `imdb-train ingest` sees), the phases of",
      "the ingest and its padding. Run it on a quiet machine: other processes on the cores distort both.",
    ].join("\n"),
    options: INGEST_OPTIONS,
    examples: ["imdb-train bench ingest --data aclImdb_v1.tar.gz --json"],
    async run(o) {
      const { benchIngest } = await import("./ingest.js");
      const { archiveOrDownload } = await import("./data.js");
      const { emitJson, logger } = await import("../output.js");
      const log = logger("bench");
      const r = await benchIngest({ data: await archiveOrDownload(o.data), runs: o.runs, threads: o.threads });
      log.info(`ingest ${r.seconds.toFixed(3)} s, python baseline ${r.baseline_seconds.toFixed(3)} s: ${r.ratio.toFixed(2)}× ` +
        `(first run ${r.first_seconds.toFixed(3)} s: ${r.first_ratio.toFixed(2)}×; padding ${(r.padding * 100).toFixed(2)}%)`);
      if (o.json) emitJson(r);
    },
  }),
  ...engineCommands, ...gpuCommands, ...soakCommands,
];
