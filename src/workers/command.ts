// Subcommands of this role: `worker`, `eval`, `predict`. Implementations load when a command runs.
import { JSON_OPTION, METRICS_PORT_OPTION, defineCommand, type OptionSpec, type OptionsOf } from "../command.js";
import { BACKEND_CHOICES } from "../backend-choice.js";
import { CURVE_KEYS_OPTION, INSECURE_OPTION, NATS_AUTH_OPTIONS } from "../security/options.js";


export const WORKER_OPTIONS = [
  { name: "coordinator", value: "<endpoint>", type: "string", description: "coordinator's ZeroMQ endpoint, e.g. tcp://10.0.0.5:5555" },
  { name: "nats", value: "<url>", type: "string", description: "find the coordinator through this NATS server instead" },
  { name: "name", value: "<id>", type: "string", description: "worker name, unique in the run (default: host-pid)" },
  { name: "dataset", value: "<dir>", type: "string", description: "dataset directory on this machine (default: the coordinator's path)" },
  { name: "backend", value: "<name>", type: "string", choices: BACKEND_CHOICES, default: "auto", description: "tfjs backend" },
  { name: "connect-timeout", value: "<s>", type: "float", default: 120, min: 0, description: "give up after this long without a coordinator" },
  METRICS_PORT_OPTION,
  CURVE_KEYS_OPTION, INSECURE_OPTION, ...NATS_AUTH_OPTIONS,
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];
export type WorkerCliOptions = OptionsOf<typeof WORKER_OPTIONS>;

export const commands = [
  defineCommand({
    path: ["worker"],
    summary: "run a worker: compute LSTM gradients on the batches the coordinator assigns",
    help:
      "Connects to the coordinator (--coordinator tcp://host:port, or discovers it with --nats), reads the dataset\n" +
      "from the shared path the coordinator announces (or --dataset), and answers every step with the gradient of\n" +
      "its batches. Retries with back-off while the coordinator is not there, saying where it tries. Exits 0 when\n" +
      "the run ends. When the coordinator stops before the end (interrupted, to resume from its checkpoint), waits\n" +
      "up to --connect-timeout for it to come back and rejoins. With --metrics-port, also reports the GPUs it sees\n" +
      "(nvidia-smi, where installed: CUDA_VISIBLE_DEVICES, else all).",
    options: WORKER_OPTIONS,
    examples: ["imdb-train worker --coordinator tcp://127.0.0.1:5555 --name w0", "imdb-train worker --nats nats://10.0.0.5:4222"],
    async run(o) {
      const { workerCommand } = await import("./main.js");
      return await workerCommand(o);
    },
  }),
  defineCommand({
    path: ["eval"],
    summary: "accuracy and loss of a saved model over every review of a split",
    help: "Reads an aclImdb directory or .tar.gz and evaluates every review of `test/` when present, else `train/`\n(or --split), with the vocabulary and truncation saved with the model.",
    options: [
      { name: "model", value: "<dir>", type: "string", required: true, description: "model directory (<out>/model of a training run)" },
      { name: "data", value: "<path>", type: "string", description: "aclImdb directory or .tar.gz (default: the official archive, downloaded once and cached)" },
      { name: "split", value: "<name>", type: "string", choices: ["train", "test"], description: "split to evaluate (default test, else train)" },
      { name: "batch-size", value: "<n>", type: "int", default: 64, min: 1, description: "reviews per batch" },
      { name: "limit", value: "<n>", type: "int", min: 1, description: "evaluate only the first n reviews" },
      { name: "backend", value: "<name>", type: "string", choices: BACKEND_CHOICES, default: "auto", description: "tfjs backend" },
      JSON_OPTION,
    ],
    examples: ["imdb-train eval --model runs/full/model --data aclImdb_v1.tar.gz --json"],
    async run(o) {
      const { evaluateModel } = await import("./evaluate.js");
      const { emitJson, logger } = await import("../output.js");
      const data = o.data ?? await (await import("../ingest/index.js")).ensureOfficialArchive();
      const r = await evaluateModel({ model: o.model, data, split: o.split, batchSize: o.batchSize, limit: o.limit, backend: o.backend });
      logger("eval").info(`${r.split}: accuracy ${(r.accuracy * 100).toFixed(2)}%, loss ${r.loss.toFixed(4)} over ${r.n} reviews (${r.seconds.toFixed(1)} s)`);
      if (o.json) emitJson(r);
      else process.stdout.write(`accuracy ${r.accuracy.toFixed(4)} loss ${r.loss.toFixed(4)} n ${r.n}\n`);
    },
  }),
  defineCommand({
    path: ["predict"],
    args: ["<text...>"],
    summary: "positive probability of review text(s) with a saved model",
    options: [
      { name: "model", value: "<dir>", type: "string", required: true, description: "model directory" },
      { name: "backend", value: "<name>", type: "string", choices: BACKEND_CHOICES, default: "auto", description: "tfjs backend" },
      JSON_OPTION,
    ],
    examples: ['imdb-train predict --model runs/full/model "A wonderful, moving film."'],
    async run(o, args) {
      const { predictTexts } = await import("./evaluate.js");
      const { emitJson } = await import("../output.js");
      const texts = args.length > 1 ? args : [args.join(" ")];
      const p = await predictTexts({ model: o.model, texts, backend: o.backend });
      if (o.json) emitJson({ predictions: texts.map((t, i) => ({ text: t, positive: p[i] })) , positive: p[0] });
      else for (const x of p) process.stdout.write(`${x!.toFixed(4)}\n`);
    },
  }),
];
