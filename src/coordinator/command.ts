// Subcommands of this role: `coordinator`, `train` (the single-machine launcher), `bench allreduce`, `bench scaling`.
// Implementations are imported when a command runs, so that `--help` stays fast.
import type { CommandSpec, OptionSpec } from "../command.js";
import { JSON_OPTION, KEEP_OPTION } from "../command.js";
import { DEFAULTS } from "../config.js";
import { MODEL_OPTIONS, OPTIM_OPTIONS, TRAIN_DEFAULTS } from "./options.js";
import { CURVE_KEYS_OPTION, NATS_AUTH_OPTIONS } from "../security/options.js";

const METRICS_OPTION: OptionSpec = { name: "metrics-port", value: "<n>", type: "int", description: "serve Prometheus /metrics on this port (0 = any free port; default off)" };
const AUTO_RESUME_OPTION: OptionSpec = { name: "auto-resume", type: "bool", description: "resume from <out>/checkpoints when a checkpoint is there (a restarted coordinator continues its run), else start a new run" };
const NATS_OPTION: OptionSpec = { name: "nats", value: "<url>", type: "string", description: "NATS server of the cluster plane: announce the endpoint and dataset, publish run events" };

export const commands: CommandSpec[] = [
  {
    path: ["coordinator"],
    summary: "run the coordinator: all-reduce workers' gradients over ZeroMQ, clip, Adam, send parameters back",
    help:
      "Binds a ZeroMQ ROUTER socket, waits for --workers workers (started with `imdb-train worker`), then runs\n" +
      "synchronous data-parallel SGD: each step deals batch indices to the live workers, sums their gradients\n" +
      "weighted by sample count, clips by global norm, applies Adam and sends the new parameters back.\n" +
      "Validation after every epoch (sharded across workers). Writes <out>/checkpoints/last.ckpt at every epoch end,\n" +
      "every --checkpoint-every steps and on exit (the previous one kept as prev.ckpt), and the final model in\n" +
      "<out>/model (params, config, vocabulary, TensorFlow.js export). --resume <file or dir> continues mid-epoch with\n" +
      "the same data order; a checkpoint that fails its checksum is reported and the previous one is used.\n" +
      "Elastic: workers may join at any time (they take part from the next step) and leave, die or freeze; one that\n" +
      "misses the step deadline, stops sending heartbeats or loses its connection is evicted and named (log and\n" +
      "metric imdb_train_evictions_total / imdb_train_eviction_late_seconds), its batches go to another worker once,\n" +
      "and a frozen worker that wakes up is told its gradient is stale and joins again. --audit <file> records the\n" +
      "sample ids of every applied step, so that each epoch can be checked to use every sample exactly once.",
    options: [
      { name: "dataset", value: "<dir>", type: "string", required: true, description: "ingested dataset directory (a path the workers can read too)" },
      { name: "bind", value: "<endpoint>", type: "string", default: "tcp://0.0.0.0:5555", description: "ZeroMQ endpoint to bind (tcp://127.0.0.1:* picks a free port)" },
      { name: "workers", value: "<n>", type: "int", default: 1, description: "workers to wait for before the first step" },
      { name: "out", value: "<dir>", type: "string", default: "runs/latest", description: "checkpoints and the final model go here" },
      { name: "resume", value: "<checkpoint>", type: "string", description: "continue from a checkpoint file or directory (parameters, Adam state, step, epoch, data cursor); falls back to prev.ckpt when the newest fails its checksum" },
      AUTO_RESUME_OPTION,
      ...MODEL_OPTIONS, ...OPTIM_OPTIONS, METRICS_OPTION, NATS_OPTION, ...NATS_AUTH_OPTIONS, CURVE_KEYS_OPTION, JSON_OPTION,
    ],
    examples: [
      "imdb-train coordinator --dataset runs/ds --bind tcp://0.0.0.0:5555 --workers 2 --out runs/a",
      "imdb-train coordinator --dataset /shared/ds --nats nats://10.0.0.5:4222 --workers 4",
    ],
    async run(o) {
      const { coordinatorCommand } = await import("./main.js");
      return await coordinatorCommand(o);
    },
  },
  {
    path: ["train"],
    summary: "train on one machine: ingest (if needed), then 1 coordinator + N worker processes",
    help:
      "The project's main job. With --data <aclImdb dir or .tar.gz> it first ingests into <out>/dataset; with\n" +
      "--dataset it uses an ingested directory. It then starts one coordinator and --workers worker child processes\n" +
      "(with --gpus 0,1,... one worker per GPU), draws one progress bar (step, loss, accuracy, samples/s), validates\n" +
      "after each epoch, checkpoints, and writes the final model to <out>/model. Ctrl-C (or SIGTERM) stops every\n" +
      "child cleanly after an exit checkpoint; if any role fails, all children are stopped.\n" +
      "While it runs, `imdb-train scale --out <out> --workers N` adds or removes workers (control socket\n" +
      "<out>/control.sock, recorded in <out>/control.json); new workers take part from the next step.\n" +
      `Defaults were chosen by validation accuracy (README, "Accuracy"): --max-len ${TRAIN_DEFAULTS.maxLen} keeping the last tokens, --batch-size\n` +
      `${TRAIN_DEFAULTS.batchSize} per worker, --lr ${TRAIN_DEFAULTS.lr} with warm-up and cosine decay, --clip ${TRAIN_DEFAULTS.clip}, --forget-bias ${TRAIN_DEFAULTS.forgetBias}, --dropout ${TRAIN_DEFAULTS.dropout},\n` +
      `${TRAIN_DEFAULTS.epochs} epochs: about 1.3 hours with 2 workers on a 2-core machine (89.3 % validation accuracy on IMDB).`,
    options: [
      { name: "data", value: "<path>", type: "string", description: "aclImdb directory or .tar.gz to ingest first" },
      { name: "dataset", value: "<dir>", type: "string", description: "an already ingested dataset directory (instead of --data)" },
      { name: "out", value: "<dir>", type: "string", default: "runs/latest", description: "output directory (dataset, checkpoints, model)" },
      { name: "workers", value: "<n>", type: "int", default: 2, description: "worker processes" },
      { name: "resume", value: "<checkpoint>", type: "string", description: "continue from a checkpoint file or a run's <out> (parameters, Adam state, step, epoch, data cursor; mid-epoch too); falls back to prev.ckpt when the newest fails its checksum" },
      AUTO_RESUME_OPTION,
      { name: "gpus", value: "<ids>", type: "list", description: "one worker per listed GPU (sets CUDA_VISIBLE_DEVICES per worker; overrides --workers)" },
      { name: "backend", value: "<name>", type: "string", choices: ["auto", "wasm", "webgpu", "tensorflow", "cpu"], default: "auto", description: "workers' tfjs backend" },
      { name: "vocab-size", value: "<n>", type: "int", default: DEFAULTS.vocabSize, description: "ingest: vocabulary size" },
      { name: "min-freq", value: "<n>", type: "int", default: DEFAULTS.minFreq, description: "ingest: minimum token count" },
      { name: "batch-size", value: "<n>", type: "int", default: TRAIN_DEFAULTS.batchSize, description: "ingest: reviews per batch (per worker per step)" },
      { name: "max-len", value: "<n>", type: "int", default: TRAIN_DEFAULTS.maxLen, description: "ingest: tokens kept per review (0 = all)" },
      KEEP_OPTION,
      { name: "val-fraction", value: "<x>", type: "float", default: DEFAULTS.valFraction, description: "ingest: validation share of train" },
      { name: "secure", type: "bool", description: "ZeroMQ CURVE between the coordinator and the workers: keys are made in <out>/keys (kept and reused)" },
      ...MODEL_OPTIONS, ...OPTIM_OPTIONS, METRICS_OPTION, JSON_OPTION,
    ],
    examples: [
      "imdb-train train --data ../shared/data/aclImdb-train.tar.gz --workers 2 --out runs/full --json",
      "imdb-train train --dataset runs/full/dataset --workers 2 --epochs 1 --max-steps 20   # a short trial",
      "imdb-train train --data aclImdb --gpus 0,1 --out runs/gpu",
    ],
    async run(o) {
      const { runTrain } = await import("./launcher.js");
      return await runTrain(o);
    },
  },
  {
    path: ["scale"],
    summary: "add or remove workers of a running `train` launcher (elastic training)",
    help:
      "Asks the `train` launcher writing to --out to run N worker processes: it starts new ones (w<k>, k counting on\n" +
      "from the last) or stops the newest with SIGTERM (each says Leave; its open batches go to another worker).\n" +
      "A worker that joins gets the current parameters with its first assignment and takes part from the next step;\n" +
      "with the default --batches-per-step 0 each step has one batch per ready worker, so the step grows and shrinks\n" +
      "with the workers. Without --workers it prints the running workers. The launcher listens on a Unix socket,\n" +
      "<out>/control.sock (or a temp path for long directories), named in <out>/control.json.",
    options: [
      { name: "out", value: "<dir>", type: "string", default: "runs/latest", description: "the running train's --out directory" },
      { name: "workers", value: "<n>", type: "int", description: "worker processes to run from now on (≥ 1); omit to list them" },
      { name: "socket", value: "<path>", type: "string", description: "the launcher's control socket (instead of --out)" },
      { name: "wait", value: "<s>", type: "float", default: 60, description: "wait this long for a launcher that is still starting (no control socket yet)" },
      JSON_OPTION,
    ],
    examples: [
      "imdb-train scale --out runs/imdb --workers 4     # add two workers to a 2-worker run",
      "imdb-train scale --out runs/imdb --workers 1     # stop the newest workers; the run goes on",
      "imdb-train scale --out runs/imdb --json          # which workers run now",
    ],
    async run(o) {
      const { scaleCommand } = await import("./scale.js");
      return await scaleCommand(o);
    },
  },
  {
    path: ["coordinator-shard"],
    summary: "one shard of a sharded coordinator (started by `coordinator --coordinator-shards k`; not run by hand)",
    help:
      "Binds a ZeroMQ ROUTER, prints {\"endpoint\": …} and serves one slice of the parameters for the coordinator that\n" +
      "started it: sums the workers' gradient slices, reports its part of the squared norm, applies Adam to its slice\n" +
      "and sends the new values to every worker. Exits when the coordinator says Stop or goes away.",
    options: [
      { name: "bind", value: "<endpoint>", type: "string", default: "tcp://127.0.0.1:*", description: "ZeroMQ endpoint to bind" },
      { name: "max-bytes", value: "<n>", type: "int", default: 1 << 30, description: "largest message accepted" },
    ],
    examples: ["imdb-train coordinator-shard --bind tcp://127.0.0.1:*"],
    async run(o) {
      const { shardCommand } = await import("./shards.js");
      return await shardCommand(o);
    },
  },
  {
    path: ["bench", "allreduce"],
    summary: "time one reduce + clip + Adam + broadcast round for 1, 2, 4, 8 workers next to raw ZeroMQ; scale-out variants",
    help:
      "Synthetic gradients of the model's size (default V=25002, E=100, H=256). Simulated workers are child processes\n" +
      "that answer each Assign at once with a fixed gradient; the same processes also time a raw ZeroMQ exchange of\n" +
      "the same bytes (parameters out, gradient back) in the same run. Prints bandwidth and the ratio to raw.\n" +
      "Then the scale-out rows: for 2–16 workers, fp16 gradients, embedding rows only and K coordinator shards,\n" +
      "each with its bytes per step and time per round next to the fp32 dense round of the same worker count.",
    options: [
      { name: "workers", value: "<list>", type: "list", default: ["1", "2", "4", "8"], description: "worker counts to time" },
      { name: "rounds", value: "<n>", type: "int", default: 20, description: "rounds timed per row (after 3 warm-up rounds)" },
      { name: "vocab-size", value: "<n>", type: "int", default: DEFAULTS.vocabSize + 2, description: "embedding rows of the synthetic model" },
      { name: "hidden", value: "<n>", type: "int", default: DEFAULTS.hidden, description: "hidden size" },
      { name: "scale-workers", value: "<list>", type: "list", default: ["2", "4", "8", "16"], description: "worker counts of the scale-out rows (0 = none)" },
      { name: "variants", value: "<list>", type: "list", default: ["fp16", "fp32-rows", "fp16-rows", "fp32-shards2", "fp32-shards4"], description: "scale-out variants, each timed next to fp32 dense: fp32|fp16, -rows (embedding rows only), -shardsK (K coordinator processes)" },
      { name: "scale-rounds", value: "<n>", type: "int", default: 4, description: "rounds timed per scale-out row (after 2 warm-up rounds); each row starts its own worker processes, so the scale-out rows take minutes" },
      { name: "touched-rows", value: "<n>", type: "int", default: 5000, description: "embedding rows a simulated worker's gradient touches (a batch of 64 reviews of ≤ 400 tokens touches a few thousand of the 25,002)" },
      JSON_OPTION,
    ],
    examples: ["imdb-train bench allreduce --json", "imdb-train bench allreduce --workers 2 --rounds 10 --scale-workers 0", "imdb-train bench allreduce --workers 2 --scale-workers 2,16 --variants fp16-rows,fp32-shards4"],
    async run(o) {
      const { benchAllreduce } = await import("../bench/allreduce.js");
      return await benchAllreduce(o);
    },
  },
  {
    path: ["bench", "scaling"],
    summary: "samples/s of a real 1-worker and 2-worker run on the shared archive; coordinator share of the step",
    help:
      "Runs `train` twice on the same dataset and the same samples (2 batches of 64 per step, --steps steps): once with\n" +
      "1 worker (the baseline) and once with 2. Prints samples/s of each, the speed-up, and the coordinator's share of\n" +
      "the step time (reduce + clip + Adam + broadcast) at 2 workers (target ≤ 5%).",
    options: [
      { name: "dataset", value: "<dir>", type: "string", description: "ingested dataset (default: ingest the shared archive into a temp dir)" },
      { name: "data", value: "<path>", type: "string", default: "../shared/data/aclImdb-train.tar.gz", description: "archive to ingest when --dataset is not given" },
      { name: "steps", value: "<n>", type: "int", default: 10, description: "steps per run" },
      { name: "max-len", value: "<n>", type: "int", default: TRAIN_DEFAULTS.maxLen, description: "ingest truncation" },
      JSON_OPTION,
    ],
    examples: ["imdb-train bench scaling --json", "imdb-train bench scaling --dataset runs/full/dataset --steps 20"],
    async run(o) {
      const { benchScaling } = await import("../bench/allreduce.js");
      return await benchScaling(o);
    },
  },
];
