// What the coordinator is given and what it reports: its options, its events, the state it checkpoints and
// the result of a run.
import type { ModelConfig } from "../config.js";
import type { Telemetry } from "../telemetry.js";
import type { InitOptions, ParamLayout } from "../model/layout.js";
import type { Adam } from "../optim/adam.js";
import type { Schedule } from "../optim/schedule.js";
import type { CurveServerKeys } from "../transport/zmq/index.js";

export interface CoordinatorOptions {
  /** ZeroMQ endpoint to bind, e.g. "tcp://0.0.0.0:5555" or "tcp://127.0.0.1:*". */
  bind: string;
  /** Dataset directory as the workers see it (shared path); sent in Welcome. */
  dataset: string;
  model: ModelConfig;
  /** Training batches per split, as counted by the coordinator. */
  trainBatches: number;
  valBatches: number;
  /** Samples in each batch of an epoch, as the coordinator reads the dataset (reviews; the units of a pretraining
   *  task's loss: lm predictions, sgns pairs): a worker's reported count must match it, and the step's mean divides
   *  by it (absent: benchmarks without a dataset, where a positive count is accepted). */
  batchSamples?: (split: "train" | "val", index: number, epoch: number) => number;
  /** The embedding rows each batch reads (sorted, unique): with it, and --pull rows, a task carries only its
   *  batches' rows and the dense parameters, never the whole vector. */
  batchRows?: (split: "train" | "val", index: number) => Int32Array;
  /** Each training batch's cost (padded tokens): with it, a step's batches are of similar cost (sampler.ts). */
  batchCost?: (index: number) => number;
  /** How workers get parameters: "rows" (default when batchRows is given and the model has an embedding):
   *  each task carries what its batches read; "dense": the whole vector, broadcast in chunks after each step. */
  pull?: "rows" | "dense";
  /** Validate on the first n val batches only (0 = all). */
  maxValBatches?: number;
  /** Workers to wait for before the first step. */
  workers: number;
  /** Batches per step (default: `workers`): the effective batch is this × the dataset's batch size. */
  batchesPerStep?: number;
  epochs: number;
  /** Stop each epoch after this many steps (0 = the whole epoch). */
  maxStepsPerEpoch?: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay?: number;
  clip: number;
  schedule?: Schedule;
  seed: number;
  /** Dropout rate on the classifier's input during training (workers draw the masks; default 0). */
  dropout?: number;
  /** How workers send gradients: float32 or IEEE half ("fp16"); the embedding dense or as touched rows. */
  gradDtype?: "fp32" | "fp16";
  embeddingGrads?: "dense" | "rows";
  /** Split the parameters over this many coordinator processes (this one and K − 1 shard children; shards.ts). */
  coordinatorShards?: number;
  /** Parameters per Params chunk of the broadcast (default PARAM_CHUNK, 1 MiB of float32; tests use less). */
  paramChunk?: number;
  /** Per-step deadline in seconds; 0 = automatic (max(120 s, 5 × the slowest step so far)). */
  stepTimeoutS?: number;
  heartbeatTimeoutS?: number;
  /** How long to wait for the expected workers to join, seconds. */
  joinTimeoutS?: number;
  /** Parameters to start from (tests, resume); default initParams(model, seed). */
  initialParams?: Float32Array;
  /** Initialisation options when no initialParams are given (e.g. the LSTM forget-gate bias). */
  init?: InitOptions;
  telemetry?: Telemetry;
  /** Progress events (the launcher draws them). */
  onEvent?: (e: CoordinatorEvent) => void;
  /** Called every `checkpointEvery` steps, at each epoch end and on exit with the state to checkpoint. */
  onCheckpoint?: (s: CheckpointState) => Promise<void> | void;
  /** Also checkpoint every n applied steps (0 = only at epoch ends and on exit). */
  checkpointEvery?: number;
  /** Called after each applied step with the samples whose gradients it summed (exactly-once accounting). */
  onApplied?: (a: AppliedStep) => void;
  signal?: AbortSignal;
  /** ZeroMQ CURVE: admit only workers holding one of these client keys (see src/security/keys.ts). */
  curve?: CurveServerKeys;
  /** Sharded: the shards run on other hosts; claims n of them (their sockets), instead of starting children. */
  remoteShards?: (n: number) => Promise<{ endpoint: string; control: string }[]>;
}

export type CoordinatorEvent =
  | { type: "listening"; endpoint: string; runId: number }
  | { type: "member"; event: "join" | "leave" | "evict"; worker: string; live: number; reason?: string }
  | { type: "step"; step: number; epoch: number; stepInEpoch: number; stepsInEpoch: number; loss: number; accuracy: number; samples: number; seconds: number; gradNorm: number }
  | { type: "epoch"; epoch: number; trainLoss: number; trainAccuracy: number; valLoss: number; valAccuracy: number; valCount: number; seconds: number }
  | { type: "rejected"; worker: string; reason: string; message: string };

export interface CheckpointState {
  reason: "step" | "epoch" | "exit";
  step: number;
  epoch: number;
  cursor: number;
  /** The step size the epoch's batch order was grouped for (sampler.ts; 1: plain shuffle). */
  orderGroup: number;
  paramVersion: number;
  runId: number;
  layout: ParamLayout;
  params: Float32Array;
  adam: Adam;
  /** Running totals of the epoch in progress (zero at an epoch boundary). */
  epochStats: EpochStats;
}

export interface EpochStats { lossSum: number; correct: number; count: number; steps: number }

/** One applied step: which worker computed which batches (and sample ids, as the worker read them). */
export interface AppliedStep {
  step: number;
  /** 1-based epoch. */
  epoch: number;
  parts: { worker: string; batches: number[]; ids: number[] | null }[];
  /** Each part's task: when it was handed to ZeroMQ, when its worker's Started and its gradient were taken in
   *  (wall-clock ms; started 0: none came), and when the step was applied. */
  timeline: { applied: number; tasks: { task: number; worker: string; queued: number; started: number; gradient: number }[] };
}

export interface EpochSummary { epoch: number; trainLoss: number; trainAccuracy: number; valLoss: number; valAccuracy: number; valCount: number; seconds: number; steps: number }

export interface CoordinatorResult {
  runId: number;
  params: Float32Array;
  layout: ParamLayout;
  steps: number;
  epochs: EpochSummary[];
  rejected: Record<string, number>;
  evicted: string[];
  /** Seconds spent in each phase over the run (coordinator's share of the step). */
  phases: { wait: number; reduce: number; optimizer: number; broadcast: number; step: number };
  samples: number;
  /** Payload bytes of the gradients summed (float32 or half, dense or embedding rows, with the row ids). */
  gradientBytes: number;
  /** Bytes on the coordinator's own link: every message it sent and received (its socket's count). */
  transportBytes: { sent: number; received: number };
}
