// Command-line options of the training roles, declared once: `coordinator` and `train` share the model and
// optimisation options; the launcher passes the ones the user set on to its coordinator child.
import type { OptionSpec } from "../command.js";
import { DEFAULTS, type ModelConfig, type CellKind } from "../config.js";
import { UsageError } from "../errors.js";
import type { Schedule } from "../optim/schedule.js";

/** Suggested defaults for a full run on 2 cores (see README): truncation keeps an epoch in minutes. */
export const TRAIN_DEFAULTS = {
  maxLen: 400, //        tokens kept per review (p90 of the archive is ~540; 400 keeps ~85% of reviews whole)
  batchSize: 32, //      reviews per batch, per worker per step: 2 workers make a step of 64
  epochs: DEFAULTS.epochs,
  lr: 2e-3,
  clip: DEFAULTS.clip,
  warmupSteps: 50,
  decay: "cosine" as const,
  forgetBias: 1, //      LSTM forget-gate bias at initialisation (0 = PyTorch's init)
  dropout: 0.5, //       on the classifier's input (the final hidden state) during training
};

export const MODEL_OPTIONS: OptionSpec[] = [
  { name: "cell", value: "<lstm|gru>", type: "string", choices: ["lstm", "gru"], default: DEFAULTS.cell, description: "recurrent cell" },
  { name: "embed-dim", value: "<n>", type: "int", default: DEFAULTS.embedDim, description: "embedding width E" },
  { name: "hidden", value: "<n>", type: "int", default: DEFAULTS.hidden, description: "hidden size H" },
  { name: "layers", value: "<n>", type: "int", default: DEFAULTS.layers, description: "stacked recurrent layers (1 or 2)" },
  { name: "bidirectional", type: "bool", description: "bidirectional recurrent layers" },
  { name: "forget-bias", value: "<x>", type: "float", default: TRAIN_DEFAULTS.forgetBias, description: "LSTM forget-gate bias added at initialisation (0 = PyTorch's init; 1 lets early tokens' gradients through)" },
  { name: "glove", value: "<path>", type: "string", description: "initialise the embedding from a GloVe text file (glove.6B.100d.txt format; its width must equal --embed-dim); <unk> and <pad> rows are zero" },
];

export const OPTIM_OPTIONS: OptionSpec[] = [
  { name: "epochs", value: "<n>", type: "int", default: TRAIN_DEFAULTS.epochs, description: "passes over the training split" },
  { name: "max-steps", value: "<n>", type: "int", default: 0, description: "stop each epoch after n steps (0 = full epochs; for short trial runs)" },
  { name: "max-val-batches", value: "<n>", type: "int", default: 0, description: "validate on the first n val batches only (0 = all; for short trial runs)" },
  { name: "batches-per-step", value: "<n>", type: "int", default: 0, description: "batches in one synchronous step (0 = elastic: one per ready worker, counted at each step, so workers added during the run add throughput); the effective batch is this × the ingest batch size" },
  { name: "lr", value: "<x>", type: "float", default: TRAIN_DEFAULTS.lr, description: "Adam learning rate" },
  { name: "beta1", value: "<x>", type: "float", default: DEFAULTS.beta1, description: "Adam β1" },
  { name: "beta2", value: "<x>", type: "float", default: DEFAULTS.beta2, description: "Adam β2" },
  { name: "eps", value: "<x>", type: "float", default: DEFAULTS.eps, description: "Adam ε" },
  { name: "dropout", value: "<p>", type: "float", default: TRAIN_DEFAULTS.dropout, description: "dropout rate on the classifier's input (the final hidden state) in training steps; masks drawn per sample and epoch from --seed, so results do not depend on how samples are spread over workers" },
  { name: "weight-decay", value: "<x>", type: "float", default: 0, description: "L2 penalty added to the gradient" },
  { name: "clip", value: "<x>", type: "float", default: TRAIN_DEFAULTS.clip, description: "clip the mean gradient to this global L2 norm (0 = off)" },
  { name: "warmup-steps", value: "<n>", type: "int", default: TRAIN_DEFAULTS.warmupSteps, description: "linear learning-rate warm-up steps" },
  { name: "decay", value: "<kind>", type: "string", choices: ["none", "linear", "cosine"], default: TRAIN_DEFAULTS.decay, description: "learning-rate decay after warm-up, to 0.1 × lr at the last step" },
  { name: "seed", value: "<n>", type: "int", default: DEFAULTS.seed, description: "seed of the initialisation and of every epoch's batch order" },
  { name: "step-timeout", value: "<s>", type: "float", default: 0, description: "per-step deadline in seconds; a worker that misses it is evicted (0 = automatic: max(120 s, 5 × the slowest step so far))" },
  { name: "heartbeat-timeout", value: "<s>", type: "float", default: 10, description: "an idle worker silent this long is evicted" },
  { name: "join-timeout", value: "<s>", type: "float", default: 300, description: "how long to wait for the expected workers" },
  { name: "checkpoint-every", value: "<n>", type: "int", default: 0, description: "also write <out>/checkpoints/last.ckpt every n steps, mid-epoch included (0 = at epoch ends and on exit only); the previous one is kept as prev.ckpt" },
  { name: "grad-dtype", value: "<fp32|fp16>", type: "string", choices: ["fp32", "fp16"], default: "fp32", description: "gradients on the wire: float32, or IEEE half floats with a per-message power-of-two scale (half the bytes; the coordinator sums in float32)" },
  { name: "embedding-grads", value: "<dense|rows>", type: "string", choices: ["dense", "rows"], default: "dense", description: "send the embedding gradient dense, or only its touched rows (row ids + rows; exact)" },
  { name: "coordinator-shards", value: "<k>", type: "int", default: 1, description: "split the parameters over k coordinator processes (this one and k − 1 shard children on its host): each sums, clips (by the global norm, agreed between them) and updates its slice, so none receives all gradient bytes; dense gradients only" },
  { name: "audit", value: "<file>", type: "string", description: "exactly-once audit: append one JSON line per applied step with the sample ids each worker used ({step, epoch, parts: [{worker, batches, ids}]})" },
];

/** Options of `coordinator` that `train` passes on when the user set them. */
export const PASS_ON: OptionSpec[] = [...MODEL_OPTIONS, ...OPTIM_OPTIONS];

function posInt(v: unknown, name: string, min = 1): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${String(v)}`);
  return n;
}

function nonNeg(v: unknown, name: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number ≥ 0, got ${String(v)}`);
  return n;
}

export function modelFrom(o: Record<string, unknown>, vocabSize: number): ModelConfig {
  return {
    cell: (o.cell as CellKind) ?? DEFAULTS.cell,
    vocabSize,
    embedDim: posInt(o.embedDim ?? DEFAULTS.embedDim, "embed-dim"),
    hidden: posInt(o.hidden ?? DEFAULTS.hidden, "hidden"),
    layers: posInt(o.layers ?? DEFAULTS.layers, "layers"),
    bidirectional: Boolean(o.bidirectional),
  };
}

/** --forget-bias (LSTM initialisation), a finite number. */
export function forgetBiasFrom(o: Record<string, unknown>): number {
  const x = Number(o.forgetBias ?? TRAIN_DEFAULTS.forgetBias);
  if (!Number.isFinite(x)) throw new UsageError(`--forget-bias must be a number, got ${String(o.forgetBias)}`);
  return x;
}

export interface OptimSettings {
  epochs: number; maxSteps: number; maxValBatches: number; batchesPerStep: number; lr: number; beta1: number; beta2: number; eps: number;
  weightDecay: number; clip: number; schedule: Schedule; seed: number; stepTimeoutS: number; heartbeatTimeoutS: number; joinTimeoutS: number;
  checkpointEvery: number;
  dropout: number;
  gradDtype: "fp32" | "fp16"; embeddingGrads: "dense" | "rows"; coordinatorShards: number;
}

function dropoutFrom(v: unknown): number {
  const p = Number(v);
  if (!(p >= 0 && p < 1)) throw new UsageError(`--dropout must be in [0, 1), got ${String(v)}`);
  return p;
}

export function optimFrom(o: Record<string, unknown>): OptimSettings {
  const lr = nonNeg(o.lr ?? TRAIN_DEFAULTS.lr, "lr");
  if (!(lr > 0)) throw new UsageError("--lr must be > 0");
  return {
    epochs: posInt(o.epochs ?? TRAIN_DEFAULTS.epochs, "epochs"),
    maxSteps: posInt(o.maxSteps ?? 0, "max-steps", 0),
    maxValBatches: posInt(o.maxValBatches ?? 0, "max-val-batches", 0),
    batchesPerStep: posInt(o.batchesPerStep ?? 0, "batches-per-step", 0),
    lr,
    beta1: nonNeg(o.beta1 ?? DEFAULTS.beta1, "beta1"),
    beta2: nonNeg(o.beta2 ?? DEFAULTS.beta2, "beta2"),
    eps: nonNeg(o.eps ?? DEFAULTS.eps, "eps"),
    weightDecay: nonNeg(o.weightDecay ?? 0, "weight-decay"),
    clip: nonNeg(o.clip ?? TRAIN_DEFAULTS.clip, "clip"),
    schedule: { warmupSteps: posInt(o.warmupSteps ?? 0, "warmup-steps", 0), decay: (o.decay as Schedule["decay"]) ?? "none", minFactor: 0.1 },
    seed: Number(o.seed ?? DEFAULTS.seed) | 0,
    stepTimeoutS: nonNeg(o.stepTimeout ?? 0, "step-timeout"),
    heartbeatTimeoutS: nonNeg(o.heartbeatTimeout ?? 10, "heartbeat-timeout"),
    joinTimeoutS: nonNeg(o.joinTimeout ?? 300, "join-timeout"),
    checkpointEvery: posInt(o.checkpointEvery ?? 0, "checkpoint-every", 0),
    dropout: dropoutFrom(o.dropout ?? TRAIN_DEFAULTS.dropout),
    gradDtype: o.gradDtype === "fp16" ? "fp16" : "fp32",
    embeddingGrads: o.embeddingGrads === "rows" ? "rows" : "dense",
    coordinatorShards: posInt(o.coordinatorShards ?? 1, "coordinator-shards"),
  };
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** argv for the options of `specs` present in `o` (as parsed: camelCase keys). */
export function toArgv(specs: OptionSpec[], o: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const s of specs) {
    const v = o[camel(s.name)];
    if (v === undefined || v === null) continue;
    if (s.type === "bool") { if (v === true) out.push(`--${s.name}`); continue; }
    out.push(`--${s.name}`, Array.isArray(v) ? v.join(",") : String(v));
  }
  return out;
}
