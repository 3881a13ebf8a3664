// Command-line options of the training roles, declared once: `coordinator` and `train` share the model and
// optimisation options; the launcher passes the ones the user set on to its coordinator child. Defaults come
// from the one table in src/config.ts; ranges are checked by src/cli.ts before a command runs.
import type { OptionSpec, OptionsOf } from "../command.js";
import { DEFAULTS, MODEL_TASKS, type ModelConfig, type ModelTask } from "../config.js";
import { UsageError } from "../errors.js";
import type { Schedule } from "../optim/schedule.js";

const M = DEFAULTS.model, T = DEFAULTS.train;

/** Largest --workers a run accepts (a typo such as 2000 would otherwise start 2000 processes). */
export const MAX_WORKERS = 256;

export const MODEL_OPTIONS = [
  { name: "cell", value: "<lstm|gru>", type: "string", choices: ["lstm", "gru"], default: M.cell, description: "recurrent cell" },
  { name: "embed-dim", value: "<n>", type: "int", default: M.embedDim, min: 1, description: "embedding width E" },
  { name: "hidden", value: "<n>", type: "int", default: M.hidden, min: 1, description: "hidden size H" },
  { name: "layers", value: "<n>", type: "int", default: M.layers, min: 1, max: 2, description: "stacked recurrent layers (1 or 2)" },
  { name: "bidirectional", type: "bool", description: "bidirectional recurrent layers" },
  { name: "forget-bias", value: "<x>", type: "float", default: M.forgetBias, description: "LSTM forget-gate bias added at initialisation (0 = PyTorch's init; 1 lets early tokens' gradients through)" },
  { name: "glove", value: "<path>", type: "string", description: "initialise the embedding from a GloVe text file (glove.6B.100d.txt format; its width must equal --embed-dim); <unk> and <pad> rows are zero" },
] as const satisfies readonly OptionSpec[];

export const OPTIM_OPTIONS = [
  { name: "epochs", value: "<n>", type: "int", default: T.epochs, min: 1, description: "passes over the training split" },
  { name: "max-steps", value: "<n>", type: "int", default: 0, min: 0, description: "stop each epoch after n steps (0 = full epochs; for short trial runs)" },
  { name: "max-val-batches", value: "<n>", type: "int", default: 0, min: 0, description: "validate on the first n val batches only (0 = all; for short trial runs)" },
  { name: "batches-per-step", value: "<n>", type: "int", default: 0, min: 0, description: "batches in one synchronous step (0 = elastic: one per ready worker, counted at each step, so workers added during the run add throughput); the effective batch is this × the ingest batch size" },
  { name: "lr", value: "<x>", type: "float", default: T.lr, above: 0, description: "Adam learning rate" },
  { name: "beta1", value: "<x>", type: "float", default: T.beta1, min: 0, below: 1, description: "Adam β1" },
  { name: "beta2", value: "<x>", type: "float", default: T.beta2, min: 0, below: 1, description: "Adam β2" },
  { name: "eps", value: "<x>", type: "float", default: T.eps, min: 0, description: "Adam ε" },
  { name: "dropout", value: "<p>", type: "float", default: T.dropout, min: 0, below: 1, description: "dropout rate on the classifier's input (the final hidden state) in training steps; masks drawn per sample and epoch from --seed, so results do not depend on how samples are spread over workers" },
  { name: "weight-decay", value: "<x>", type: "float", default: T.weightDecay, min: 0, description: "L2 penalty added to the gradient" },
  { name: "clip", value: "<x>", type: "float", default: T.clip, min: 0, description: "clip the mean gradient to this global L2 norm (0 = off)" },
  { name: "warmup-steps", value: "<n>", type: "int", default: T.warmupSteps, min: 0, description: "linear learning-rate warm-up steps" },
  { name: "decay", value: "<kind>", type: "string", choices: ["none", "linear", "cosine"], default: T.decay, description: "learning-rate decay after warm-up, to 0.1 × lr at the last step" },
  { name: "seed", value: "<n>", type: "int", default: DEFAULTS.seed, description: "seed of the initialisation and of every epoch's batch order" },
  { name: "step-timeout", value: "<s>", type: "float", default: 0, min: 0, description: "per-step deadline in seconds; a worker that misses it is evicted (0 = automatic: max(120 s, 5 × the slowest step so far))" },
  { name: "heartbeat-timeout", value: "<s>", type: "float", default: T.heartbeatTimeoutS, min: 0, description: "an idle worker silent this long is evicted" },
  { name: "join-timeout", value: "<s>", type: "float", default: T.joinTimeoutS, min: 0, description: "how long to wait for the expected workers" },
  { name: "checkpoint-every", value: "<n>", type: "int", default: 0, min: 0, description: "also write <out>/checkpoints/last.ckpt every n steps, mid-epoch included (0 = at epoch ends and on exit only); the previous one is kept as prev.ckpt" },
  { name: "grad-dtype", value: "<fp32|fp16>", type: "string", choices: ["fp32", "fp16"], default: "fp32", description: "gradients on the wire: float32, or IEEE half floats with a per-message power-of-two scale (half the bytes; the coordinator sums in float32)" },
  { name: "embedding-grads", value: "<rows|dense>", type: "string", choices: ["rows", "dense"], default: "rows", description: "with --pull dense: send the embedding gradient as its touched rows (row ids + rows; exact), or dense (with --pull rows it always goes as rows)" },
  { name: "pull", value: "<rows|dense>", type: "string", choices: ["rows", "dense"], default: "rows", description: "how workers get parameters: rows = each task carries the dense weights and only the embedding rows its batches read (Adam finishes the other rows while workers compute); dense = the whole vector to every worker after each step" },
  { name: "coordinator-shards", value: "<k>", type: "int", default: 1, min: 1, max: 64, description: "split the parameters over k coordinator processes (this one and k − 1 shard children on its host): each sums, clips (by the global norm, agreed between them) and updates its slice, so none receives all gradient bytes; with row pull and row gradients each slice holds whole embedding rows and moves only the rows a task reads or touches" },
  { name: "audit", value: "<file>", type: "string", description: "exactly-once audit: append one JSON line per applied step with the sample ids each worker used ({step, epoch, parts: [{worker, batches, ids}]})" },
  { name: "timeline", value: "<file>", type: "string", description: "where the round goes: one JSON line per applied step, {step, applied, tasks: [{task, worker, queued, started, gradient}]}, wall-clock ms of when each task went to ZeroMQ, its worker's Started came in (0: none) and its gradient came in (started − queued: the pull plus a small message back, on this clock alone; against workers' clocks: push and pull, as bench cluster reads them)" },
] as const satisfies readonly OptionSpec[];

/** What the run trains: the classifier, or one of the pretraining tasks (which `train --pretrain` runs first). */
export const TASK_OPTIONS = [
  { name: "task", value: "<classify|lm|sgns>", type: "string", choices: MODEL_TASKS, default: "classify", description: "classify: the sentiment classifier; lm: pretrain the embedding and LSTM as a next-token language model (sampled softmax); sgns: skip-gram word vectors (written to <out>/vectors.txt in GloVe's format). lm and sgns read train + unsup (ingest --unsup), never validation, and use no dropout" },
  { name: "init", value: "<model dir>", type: "string", description: "start from the tensors of a saved model that this model has too, by name and shape (e.g. a task lm model's embedding and LSTM into the classifier); the model must have the dataset's vocabulary" },
] as const satisfies readonly OptionSpec[];

/** Options of `coordinator` that `train` passes on when the user set them. */
export const PASS_ON: readonly OptionSpec[] = [...MODEL_OPTIONS, ...OPTIM_OPTIONS];

export type ModelOptions = OptionsOf<typeof MODEL_OPTIONS>;
export type OptimOptions = OptionsOf<typeof OPTIM_OPTIONS>;

export type TaskOptions = OptionsOf<typeof TASK_OPTIONS>;

/** The model of a run; `task` absent or "classify" gives the classifier's config (no task field: its layout hash). */
export function modelFrom(o: ModelOptions, vocabSize: number, task: ModelTask = "classify"): ModelConfig {
  const m: ModelConfig = { cell: o.cell, vocabSize, embedDim: o.embedDim, hidden: o.hidden, layers: o.layers, bidirectional: o.bidirectional };
  return task === "classify" ? m : { ...m, task };
}

/** The optimisation settings of a run (saved with every checkpoint and model). */
export interface OptimSettings {
  epochs: number; maxSteps: number; maxValBatches: number; batchesPerStep: number; lr: number; beta1: number; beta2: number; eps: number;
  weightDecay: number; clip: number; schedule: Schedule; seed: number; stepTimeoutS: number; heartbeatTimeoutS: number; joinTimeoutS: number;
  checkpointEvery: number;
  dropout: number;
  gradDtype: "fp32" | "fp16"; embeddingGrads: "dense" | "rows"; pull: "rows" | "dense"; coordinatorShards: number;
}

export function optimFrom(o: OptimOptions): OptimSettings {
  if (!Number.isFinite(o.lr)) throw new UsageError(`--lr must be a finite number, got ${o.lr}`);
  return {
    epochs: o.epochs, maxSteps: o.maxSteps, maxValBatches: o.maxValBatches, batchesPerStep: o.batchesPerStep,
    lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, clip: o.clip,
    schedule: { warmupSteps: o.warmupSteps, decay: o.decay, minFactor: 0.1 },
    seed: o.seed | 0,
    stepTimeoutS: o.stepTimeout, heartbeatTimeoutS: o.heartbeatTimeout, joinTimeoutS: o.joinTimeout,
    checkpointEvery: o.checkpointEvery, dropout: o.dropout,
    gradDtype: o.gradDtype, embeddingGrads: o.embeddingGrads, pull: o.pull, coordinatorShards: o.coordinatorShards,
  };
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** argv for the options of `specs` present in `o` (as parsed: camelCase keys); false bools are left out. */
export function toArgv(specs: readonly OptionSpec[], o: object): string[] {
  const out: string[] = [];
  const values = new Map(Object.entries(o));
  for (const s of specs) {
    const v: unknown = values.get(camel(s.name));
    if (v === undefined || v === null) continue;
    if (s.type === "bool") { if (v === true) out.push(`--${s.name}`); continue; }
    out.push(`--${s.name}`, Array.isArray(v) ? v.join(",") : String(v));
  }
  return out;
}
