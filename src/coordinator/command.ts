// Subcommands of this role: `coordinator`, `train` (the single-machine launcher), `scale`, `coordinator-shard`.
// Implementations are imported when a command runs, so that `--help` stays fast.
import { JSON_OPTION, KEEP_OPTION, METRICS_PORT_OPTION, defineCommand, type OptionSpec, type OptionsOf } from "../command.js";
import { DEFAULTS } from "../config.js";
import { MODEL_OPTIONS, OPTIM_OPTIONS, TASK_OPTIONS, MAX_WORKERS } from "./options.js";
import { CURVE_KEYS_OPTION, INSECURE_OPTION, NATS_AUTH_OPTIONS } from "../security/options.js";
import { BACKEND_CHOICES } from "../backend-choice.js";

const T = DEFAULTS.train;
const AUTO_RESUME_OPTION = { name: "auto-resume", type: "bool", description: "resume from <out>/checkpoints when a checkpoint is there (a restarted coordinator continues its run), else start a new run" } as const satisfies OptionSpec;
const NATS_OPTION = { name: "nats", value: "<url>", type: "string", description: "NATS server of the cluster plane: announce the endpoint and dataset, publish run events" } as const satisfies OptionSpec;

export const COORDINATOR_OPTIONS = [
  { name: "dataset", value: "<dir>", type: "string", required: true, description: "ingested dataset directory (a path the workers can read too)" },
  { name: "bind", value: "<endpoint>", type: "string", default: "tcp://0.0.0.0:5555", description: "ZeroMQ endpoint to bind (tcp://127.0.0.1:* picks a free port)" },
  { name: "workers", value: "<n>", type: "int", default: 1, min: 1, max: MAX_WORKERS, description: "workers to wait for before the first step" },
  { name: "out", value: "<dir>", type: "string", default: "runs/latest", description: "checkpoints and the final model go here" },
  { name: "resume", value: "<checkpoint>", type: "string", description: "continue from a checkpoint file or directory (parameters, Adam state, step, epoch, data cursor); falls back to prev.ckpt when the newest fails its checksum" },
  AUTO_RESUME_OPTION,
  ...TASK_OPTIONS, ...MODEL_OPTIONS, ...OPTIM_OPTIONS,
  { name: "remote-shards", type: "bool", description: "with --coordinator-shards k: the k − 1 shards are `imdb-train coordinator-shard --nats` processes on other hosts (the workers', say), found on --nats, instead of children on this host, so that no one link carries every worker's gradients" },
  METRICS_PORT_OPTION, NATS_OPTION, ...NATS_AUTH_OPTIONS, CURVE_KEYS_OPTION, INSECURE_OPTION, JSON_OPTION,
] as const satisfies readonly OptionSpec[];
export type CoordinatorCliOptions = OptionsOf<typeof COORDINATOR_OPTIONS>;

export const TRAIN_OPTIONS = [
  { name: "data", value: "<path>", type: "string", repeatable: true, description: "aclImdb directory or .tar.gz to ingest first; give it again to read several (e.g. the labelled and the unlabelled archives) (default, without --dataset: the official archive, downloaded once and cached)" },
  { name: "pretrain", value: "<none|vectors|lm>", type: "string", choices: ["none", "vectors", "lm"], default: "none", description: "first pretrain on the training and the unlabelled reviews (train/unsup/ of the inputs; validation never), in <out>/pretrain: lm = the embedding and LSTM as a language model, then fine-tune the classifier from them; vectors = skip-gram word vectors (<out>/pretrain/vectors.txt, GloVe's format) as the classifier's initial embedding" },
  { name: "pretrain-epochs", value: "<n>", type: "int", min: 1, description: `with --pretrain: passes over train + unsup (default: lm ${DEFAULTS.pretrain.lm.epochs}, vectors ${DEFAULTS.pretrain.vectors.epochs})` },
  { name: "pretrain-lr", value: "<x>", type: "float", above: 0, description: `with --pretrain: the pretraining run's Adam learning rate, peak, with the classifier's warm-up and decay (default: lm ${DEFAULTS.pretrain.lm.lr}, vectors ${DEFAULTS.pretrain.vectors.lr})` },
  { name: "dataset", value: "<dir>", type: "string", description: "an already ingested dataset directory (instead of --data)" },
  { name: "out", value: "<dir>", type: "string", default: "runs/latest", description: "output directory (dataset, checkpoints, model)" },
  { name: "workers", value: "<n>", type: "int", default: T.workers, min: 1, max: MAX_WORKERS, description: "worker processes" },
  { name: "resume", value: "<checkpoint>", type: "string", description: "continue from a checkpoint file or a run's <out> (parameters, Adam state, step, epoch, data cursor; mid-epoch too); falls back to prev.ckpt when the newest fails its checksum" },
  AUTO_RESUME_OPTION,
  { name: "gpus", value: "<ids>", type: "list", description: "one worker per listed GPU (sets CUDA_VISIBLE_DEVICES per worker; overrides --workers)" },
  { name: "backend", value: "<name>", type: "string", choices: BACKEND_CHOICES, default: "auto", description: "workers' tfjs backend" },
  { name: "vocab-size", value: "<n>", type: "int", default: DEFAULTS.ingest.vocabSize, min: 1, description: "ingest: vocabulary size" },
  { name: "min-freq", value: "<n>", type: "int", default: DEFAULTS.ingest.minFreq, min: 1, description: "ingest: minimum token count" },
  { name: "batch-size", value: "<n>", type: "int", default: T.batchSize, min: 1, description: "ingest: reviews per batch (per worker per step)" },
  { name: "max-len", value: "<n>", type: "int", default: T.maxLen, min: 0, description: "ingest: tokens kept per review (0 = all)" },
  KEEP_OPTION,
  { name: "val-fraction", value: "<x>", type: "float", default: DEFAULTS.ingest.valFraction, min: 0, below: 1, description: "ingest: validation share of train" },
  { name: "secure", type: "bool", description: "ZeroMQ CURVE between the coordinator and the workers: keys are made in <out>/keys (kept and reused)" },
  ...MODEL_OPTIONS, ...OPTIM_OPTIONS, METRICS_PORT_OPTION, JSON_OPTION,
] as const satisfies readonly OptionSpec[];
export type TrainCliOptions = OptionsOf<typeof TRAIN_OPTIONS>;

export const SCALE_OPTIONS = [
  { name: "out", value: "<dir>", type: "string", default: "runs/latest", description: "the running train's --out directory" },
  { name: "workers", value: "<n>", type: "int", min: 1, max: MAX_WORKERS, description: "worker processes to run from now on (≥ 1); omit to list them" },
  { name: "socket", value: "<path>", type: "string", description: "the launcher's control socket (instead of --out)" },
  { name: "wait", value: "<s>", type: "float", default: 60, min: 0, description: "wait this long for a launcher that is still starting (no control socket yet)" },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];
export type ScaleCliOptions = OptionsOf<typeof SCALE_OPTIONS>;

export const SHARD_OPTIONS = [
  { name: "bind", value: "<endpoint>", type: "string", default: "tcp://127.0.0.1:*", description: "ZeroMQ endpoint of the workers' socket (tcp://0.0.0.0:* for other hosts)" },
  { name: "control-bind", value: "<endpoint>", type: "string", description: "ZeroMQ endpoint of the coordinator's socket (default: --bind's host, any free port)" },
  { name: "nats", value: "<url>", type: "string", description: "NATS server of the cluster plane: announce this shard there and serve the coordinator that claims it (started on its own)" },
  ...NATS_AUTH_OPTIONS, CURVE_KEYS_OPTION, INSECURE_OPTION,
  { name: "max-bytes", value: "<n>", type: "int", default: 1 << 30, min: 1024, description: "largest message accepted" },
] as const satisfies readonly OptionSpec[];
export type ShardCliOptions = OptionsOf<typeof SHARD_OPTIONS>;

export const commands = [
  defineCommand({
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
    options: COORDINATOR_OPTIONS,
    examples: [
      "imdb-train coordinator --dataset runs/ds --bind tcp://0.0.0.0:5555 --workers 2 --out runs/a",
      "imdb-train coordinator --dataset /shared/ds --nats nats://10.0.0.5:4222 --workers 4",
    ],
    async run(o) {
      const { coordinatorCommand } = await import("./main.js");
      return await coordinatorCommand(o);
    },
  }),
  defineCommand({
    path: ["train"],
    summary: "train on one machine: ingest (if needed), then 1 coordinator + N worker processes",
    help:
      "The project's main job. It first ingests into <out>/dataset: --data <aclImdb dir or .tar.gz>, or without it the\n" +
      "official archive (downloaded once into ~/.cache/imdb-train, sha256-checked); --dataset uses an ingested directory. It then starts one coordinator and --workers worker child processes\n" +
      "(with --gpus 0,1,... one worker per GPU), draws one progress bar (step, loss, accuracy, samples/s), validates\n" +
      "after each epoch, checkpoints, and writes the final model to <out>/model. Ctrl-C (or SIGTERM) stops every\n" +
      "child cleanly after an exit checkpoint; if any role fails, all children are stopped.\n" +
      "While it runs, `imdb-train scale --out <out> --workers N` adds or removes workers (a control socket only\n" +
      "its user can reach, named in <out>/control.json); new workers take part from the next step.\n" +
      `Defaults were chosen by validation accuracy (docs/experiments.md): --max-len ${T.maxLen} keeping the last tokens, --batch-size\n` +
      `${T.batchSize} per worker, --lr ${T.lr} with warm-up and cosine decay, --clip ${T.clip}, --forget-bias ${DEFAULTS.model.forgetBias}, --dropout ${T.dropout},\n` +
      `${T.epochs} epochs: about 35 minutes with 2 workers on a 2-core machine (88.4 % validation accuracy on IMDB).\n` +
      "--pretrain lm first trains the embedding and LSTM as a language model on the training and the unlabelled\n" +
      "reviews (train/unsup/ of the inputs: the official archive has 50,000), in <out>/pretrain, then fine-tunes the\n" +
      "classifier from them: about 85 minutes on the same machine (90.2 % validation accuracy). --pretrain vectors\n" +
      "makes skip-gram word vectors instead (<out>/pretrain/vectors.txt, GloVe's text format) for the embedding.",
    options: TRAIN_OPTIONS,
    examples: [
      "imdb-train train --data aclImdb_v1.tar.gz --workers 2 --out runs/full --json",
      "imdb-train train --dataset runs/full/dataset --workers 2 --epochs 1 --max-steps 20   # a short trial",
      "imdb-train train --data aclImdb --gpus 0,1 --out runs/gpu",
      "imdb-train train --data aclImdb_v1.tar.gz --pretrain lm --workers 2 --out runs/lm   # 90 % after pretraining",
    ],
    async run(o) {
      const { runTrain } = await import("./launcher.js");
      return await runTrain(o);
    },
  }),
  defineCommand({
    path: ["scale"],
    summary: "add or remove workers of a running `train` launcher (elastic training)",
    help:
      "Asks the `train` launcher writing to --out to run N worker processes: it starts new ones (w<k>, k counting on\n" +
      "from the last) or stops the newest with SIGTERM (each says Leave; its open batches go to another worker).\n" +
      "A worker that joins gets the current parameters with its first assignment and takes part from the next step;\n" +
      "with the default --batches-per-step 0 each step has one batch per ready worker, so the step grows and shrinks\n" +
      "with the workers. Without --workers it prints the running workers. The launcher listens on a Unix socket in\n" +
      "a private directory (mode 0700) under <out> (or the temp directory for long paths), named in <out>/control.json.",
    options: SCALE_OPTIONS,
    examples: [
      "imdb-train scale --out runs/imdb --workers 4     # add two workers to a 2-worker run",
      "imdb-train scale --out runs/imdb --workers 1     # stop the newest workers; the run goes on",
      "imdb-train scale --out runs/imdb --json          # which workers run now",
    ],
    async run(o) {
      const { scaleCommand } = await import("./scale.js");
      return await scaleCommand(o);
    },
  }),
  defineCommand({
    path: ["coordinator-shard"],
    summary: "one shard of a sharded coordinator: on a worker's host with --nats (or started by `coordinator --coordinator-shards k`)",
    help:
      "Serves one slice of the parameters for a coordinator: sums the workers' gradient slices (their touched\n" +
      "embedding rows, in the default rows form), reports its part of the squared norm, applies Adam to its slice and\n" +
      "sends each worker what its next task reads. It binds two ZeroMQ sockets: the workers' (--bind) and the\n" +
      "coordinator's (--control-bind).\n" +
      "\n" +
      "With --nats it runs on its own, typically beside each worker (`coordinator --coordinator-shards k\n" +
      "--remote-shards` claims k − 1 of them): it announces itself in the NATS KV bucket imdb-train (key shard.<id>,\n" +
      "refreshed every 2 s), serves the coordinator that claims it, and when that run ends (Stop, or 10 s without a\n" +
      "word from the coordinator) announces itself again for the next. With --curve-keys it holds the coordinator's\n" +
      "key pair (server.key and server.pub: copy them to the shard's host), admits the workers' client keys on its\n" +
      "workers' socket and only the coordinator's key on its control socket. A shard that goes away takes the Adam\n" +
      "state of its slice with it: the coordinator stops the run, and its last checkpoint holds the whole state\n" +
      "(resume with --auto-resume once the shards are back).\n" +
      "\n" +
      "Without --nats it is the child of a coordinator (--coordinator-shards k without --remote-shards), which hands\n" +
      "it fresh keys over IPC; it prints {\"endpoint\": …, \"control\": …} and exits when the coordinator stops.",
    options: SHARD_OPTIONS,
    examples: [
      "imdb-train coordinator-shard --nats nats://10.0.0.5:4222 --bind tcp://0.0.0.0:* --curve-keys keys",
      "imdb-train coordinator --dataset /shared/ds --nats nats://10.0.0.5:4222 --workers 4 --coordinator-shards 5 --remote-shards --curve-keys keys",
    ],
    async run(o) {
      const { shardCommand } = await import("./shard-server.js");
      return await shardCommand(o);
    },
  }),
];
