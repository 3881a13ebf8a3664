// The `coordinator` role as a program: opens the dataset, runs the Coordinator, checkpoints every epoch and
// at exit, writes the final model (+ TensorFlow.js export) under `out`, and returns the run's report.
import { existsSync, mkdirSync, writeFileSync, appendFileSync, createWriteStream } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { taskOf, type KeepSide, type ModelConfig } from "../config.js";
import { errorMessage, InputError } from "../errors.js";
import { logger } from "../output.js";
import type { Telemetry } from "../telemetry.js";
import type { CurveServerKeys } from "../transport/zmq/index.js";
import type { RemoteShard } from "./shards.js";
import { openTrainingData, trainingSplitFor, type TrainingData, type TrainingSplit } from "../dataset/training.js";
import { loadVocab, loadVocabCounts } from "../dataset/vocab.js";
import { batchRows } from "../engine/rows.js";
import { batchToEngine, samplingSeed, VALIDATION_SAMPLING_EPOCH } from "../engine/index.js";
import { drawPairs, sgnsSettings, sgnsTables } from "../engine/sgns.js";
import { loadModel, saveModel } from "../model/files.js";
import { copyByName, loadGlove, type ParamLayout } from "../model/layout.js";
import { loadForResume, LAST, PREV } from "./checkpoint.js";
import { RunCheckpoints } from "./run-checkpoints.js";
import { Coordinator } from "./coordinator.js";
import { tuneHeapForMessages } from "../heap.js";
import type { CoordinatorEvent, CheckpointState, AppliedStep } from "./types.js";
import { modelFrom, optimFrom, type ModelOptions, type OptimOptions, type TaskOptions } from "./options.js";

const log = logger("coordinator");

export interface TrainReport {
  /** What the run trained (classify, or a pretraining task: lm, sgns). */
  task: string;
  model: string;
  /** Task sgns: the word vectors in GloVe's text format (the classifier's --glove reads them). */
  vectors: string | null;
  epochs: { epoch: number; val_accuracy: number; val_loss: number; train_loss: number; train_accuracy: number; seconds: number; steps: number }[];
  steps: number;
  samples: number;
  seconds: number;
  samples_per_s: number;
  workers: number;
  rejected: Record<string, number>;
  /** Payload bytes of the gradients summed over the run (see --grad-dtype, --embedding-grads). */
  gradient_bytes: number;
  /** Bytes the coordinator's socket sent and received over the run (the busiest link of a run). */
  transport_bytes: { sent: number; received: number };
  evicted: string[];
  /** Coordinator's share of the step time (reduce + optimizer + broadcast) / step. */
  overhead: number;
  phases: Record<string, number>;
  checkpoint: string;
  export: string | null;
  run_id: number;
}

export interface RoleOptions {
  bind: string;
  dataset: string;
  out: string;
  workers: number;
  resume?: string;
  telemetry?: Telemetry;
  onEvent?: (e: CoordinatorEvent) => void;
  signal?: AbortSignal;
  /** Extra step after binding (announce on NATS). */
  onListening?: (endpoint: string, runId: number) => Promise<void> | void;
  /** Skip the TensorFlow.js export. */
  noExport?: boolean;
  /** ZeroMQ CURVE keys of the coordinator (admitted client keys included). */
  curve?: CurveServerKeys;
  /** Called before the coordinator stops its workers (withdraw the announcement, so none joins a run that ends). */
  onClosing?: () => Promise<void>;
  /** Shards on other hosts (--remote-shards): claims n announced shards. */
  remoteShards?: (n: number) => Promise<RemoteShard[]>;
}

/** The dataset's truncation (manifest options): tokens kept and which end ("first" for datasets made before --keep). */
function manifestTruncation(dir: string): { maxLen: number; keep: KeepSide } {
  try {
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { options?: { maxLen?: number; keep?: KeepSide } };
    return { maxLen: Number(m.options?.maxLen ?? 0) || 0, keep: m.options?.keep ?? "first" };
  } catch {
    return { maxLen: 0, keep: "first" };
  }
}

/** The model and optimisation options of a run (`coordinator`'s flags, or what `train` passed on). */
export type RunOptions = ModelOptions & OptimOptions & Partial<TaskOptions> & { autoResume: boolean };

export async function runCoordinatorRole(r: RoleOptions, opts: RunOptions): Promise<TrainReport> {
  const t0 = performance.now();
  const data = await openTrainingData(r.dataset);
  const model = modelFrom(opts, data.vocabSize, opts.task);
  const task = taskOf(model);
  const s = optimFrom(opts);
  // pretraining reads train + unsup and has no dropout (the classifier's default would be refused by its engine)
  const split = trainingSplitFor(task);
  if (task !== "classify") {
    s.dropout = 0;
    if (data.count("unsup") === 0) log.warn(`the dataset has no unlabelled reviews (ingest --unsup): task ${task} reads the train split only`);
  }
  const counts = task === "classify" ? undefined : loadVocabCounts(join(r.dataset, "vocab.json")).counts;
  // resume: the checkpoint is read first, so that its seed (the data order) wins over the command line
  const ckptDir = join(r.out, "checkpoints");
  let resumeFrom = r.resume;
  if (!resumeFrom && opts.autoResume) {
    if (existsSync(join(ckptDir, LAST)) || existsSync(join(ckptDir, PREV))) resumeFrom = ckptDir;
    else log.info(`--auto-resume: no checkpoint in ${ckptDir} yet; starting a new run`);
  }
  const resumed = resumeFrom ? loadForResume(resumeFrom) : null;
  if (resumed?.fallback) log.warn(`${resumed.fallback.problem}: using the previous checkpoint ${resumed.path} instead (step ${resumed.checkpoint.meta.step})`);
  if (resumed && resumed.checkpoint.meta.seed !== s.seed) {
    log.warn(`the checkpoint was written with --seed ${resumed.checkpoint.meta.seed}, not ${s.seed}: using ${resumed.checkpoint.meta.seed} so the data order stays the same`);
    s.seed = resumed.checkpoint.meta.seed;
  }
  const audit = opts.audit ? auditLog(resolve(opts.audit), resumed?.checkpoint.meta.step ?? null) : null;
  const timeline = opts.timeline ? timelineLog(resolve(opts.timeline)) : null;
  const what = task === "sgns" ? `task sgns V=${model.vocabSize} E=${model.embedDim}` : `${task === "lm" ? "task lm, " : ""}model ${model.cell} V=${model.vocabSize} E=${model.embedDim} H=${model.hidden}`;
  log.info(`dataset ${r.dataset}: ${data.count(split)} ${split} batches (${data.samples(split)} reviews), ${data.count("val")} val batches; ${what}`);
  const checkpoints = new RunCheckpoints(ckptDir, {
    epochs: s.epochs, resumedStep: resumed?.checkpoint.meta.step ?? null, telemetry: r.telemetry,
    where: (c) => (c.cursor > 0 ? `epoch ${c.epoch + 1}, ${c.cursor} of ${data.count(split)} batches into it` : `end of epoch ${c.epoch}`),
  });
  const coord = new Coordinator({
    bind: r.bind, dataset: r.dataset, model, trainBatches: data.count(split), valBatches: data.count("val"), maxValBatches: s.maxValBatches,
    // the coordinator deals "train" batches: for pretraining they are the pretrain split's
    batchSamples: unitsOfBatches(data, model, counts, s.seed, split),
    batchRows: rowsOfBatches(data, model.vocabSize, split), pull: s.pull, batchCost: (i) => { const b = data.batch(split, i); return b.size * b.maxLen; },
    workers: r.workers, batchesPerStep: s.batchesPerStep, checkpointEvery: s.checkpointEvery, epochs: s.epochs, maxStepsPerEpoch: s.maxSteps,
    lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay, clip: s.clip, schedule: s.schedule,
    seed: s.seed, stepTimeoutS: s.stepTimeoutS, heartbeatTimeoutS: s.heartbeatTimeoutS, joinTimeoutS: s.joinTimeoutS,
    init: { forgetBias: opts.forgetBias, counts },
    gradDtype: s.gradDtype, embeddingGrads: s.embeddingGrads, coordinatorShards: s.coordinatorShards, dropout: s.dropout,
    telemetry: r.telemetry, onEvent: r.onEvent, signal: r.signal, curve: r.curve, remoteShards: r.remoteShards,
    onApplied: audit || timeline ? (a) => { audit?.(a); timeline?.write(a); } : undefined,
    onCheckpoint: (c: CheckpointState) => checkpoints.write(c, {
      step: c.step, epoch: c.epoch, cursor: c.cursor, orderGroup: c.orderGroup, paramVersion: c.paramVersion, seed: s.seed, runId: c.runId,
      layoutHash: c.layout.hash, adamT: c.adam.state().t, reason: c.reason, epochStats: c.epochStats,
      config: { model, optim: s, dataset: r.dataset, reason: c.reason, seeds: { init: s.seed, sampler: s.seed, order: "Rng(seed).fork(epoch).shuffle, grouped by cost per orderGroup" } },
    }),
  });
  tuneHeapForMessages(coord.layout.size); // its messages carry slices of this vector
  if (opts.init && !resumed) initFrom(resolve(opts.init), data, { layout: coord.layout, params: coord.params });
  if (opts.glove && !resumed) {
    const glove = resolve(opts.glove);
    const { found, total } = await loadGlove(glove, loadVocab(join(r.dataset, "vocab.json")).tokens, coord.params, model);
    log.info(`GloVe ${glove}: ${found} of ${total} vocabulary rows initialised`);
  }
  if (resumed) {
    const ck = resumed.checkpoint;
    if (ck.meta.layoutHash !== coord.layout.hash) throw new InputError(`checkpoint has layout ${ck.meta.layoutHash}; this model is ${coord.layout.hash}`, { path: resumed.path });
    coord.params.set(ck.arrays.params!);
    coord.restore({ adam: { m: ck.arrays.adam_m!, v: ck.arrays.adam_v!, t: ck.meta.adamT }, step: ck.meta.step, epoch: ck.meta.epoch, cursor: ck.meta.cursor, orderGroup: ck.meta.orderGroup, paramVersion: ck.meta.paramVersion, epochStats: ck.meta.epochStats });
    const at = ck.meta.cursor > 0 ? `epoch ${ck.meta.epoch + 1}, ${ck.meta.cursor} of ${data.count(split)} batches into it` : `epoch ${ck.meta.epoch} complete`;
    log.info(`resumed from ${resumed.path}: step ${ck.meta.step}, ${at}`);
  }
  // bound but its shards never came (none claimed, one refused, a child that did not start): the socket closes,
  // or it would keep the process alive after the error
  const endpoint = await coord.listen().catch(async (err: unknown) => { await coord.close("coordinator stopping").catch(() => {}); await timeline?.close(); throw err; });
  let closed = false;
  try {
    await r.onListening?.(endpoint, coord.runId);
    const res = await coord.run().catch((err: unknown) => { throw checkpoints.outcome(err); });
    await r.onClosing?.();
    await coord.close("run finished", true);
    closed = true;
    const modelDir = join(r.out, "model");
    let exported: string | null = null;
    await saveModel(modelDir, {
      model, params: res.params, ...manifestTruncation(r.dataset), vocabPath: join(r.dataset, "vocab.json"), vocabHash: data.vocabHash,
      training: { steps: res.steps, epochs: res.epochs, seed: s.seed, optim: s, dataset: r.dataset, runId: res.runId },
    }, async (tmp) => {
      if (r.noExport || task !== "classify") return; // the export builds the classifier
      try {
        const { exportLayersModel } = await import("../model/export.js");
        const { loadVocab } = await import("../dataset/vocab.js");
        await exportLayersModel(join(tmp, "tfjs"), model, res.params, loadVocab(join(r.dataset, "vocab.json")).tokens);
        exported = join(modelDir, "tfjs");
      } catch (err) {
        log.warn(`TensorFlow.js export skipped: ${errorMessage(err)}`);
      }
    });
    log.info(`model written to ${modelDir}`);
    const vectors = task === "sgns" ? await writeVectors(join(r.out, "vectors.txt"), r.dataset, model, res.params) : null;
    const seconds = (performance.now() - t0) / 1000;
    const ph = res.phases;
    return {
      task, model: modelDir, vectors,
      epochs: res.epochs.map((e) => ({ epoch: e.epoch, val_accuracy: e.valAccuracy, val_loss: e.valLoss, train_loss: e.trainLoss, train_accuracy: e.trainAccuracy, seconds: e.seconds, steps: e.steps })),
      steps: res.steps, samples: res.samples, seconds, samples_per_s: ph.step > 0 ? res.samples / ph.step : 0, workers: r.workers,
      rejected: res.rejected, evicted: res.evicted, gradient_bytes: res.gradientBytes, transport_bytes: res.transportBytes,
      overhead: ph.step > 0 ? (ph.reduce + ph.optimizer + ph.broadcast) / ph.step : 0,
      phases: ph, checkpoint: checkpoints.path, export: exported, run_id: res.runId,
    };
  } finally {
    if (!closed) { await r.onClosing?.().catch(() => {}); await coord.close("coordinator stopping"); }
    await timeline?.close();
  }
}

/**
 * The exactly-once audit (`--audit <file>`): one JSON line per applied step, `{step, epoch, parts: [{worker,
 * batches, ids}]}`, the sample ids being those the worker read from its copy of the dataset. A fresh run
 * starts the file empty; a resumed run drops the lines of steps after its checkpoint (they are done again).
 */
function auditLog(path: string, resumedStep: number | null): (a: AppliedStep) => void {
  mkdirSync(dirname(path), { recursive: true });
  let keep = "";
  if (resumedStep !== null && existsSync(path)) {
    keep = readFileSync(path, "utf8").split("\n").filter((l) => {
      if (!l.trim()) return false;
      try { return (JSON.parse(l) as AppliedStep).step <= resumedStep; } catch { return false; }
    }).map((l) => l + "\n").join("");
  }
  writeFileSync(path, keep);
  log.info(`audit of consumed samples: ${path}`);
  return (a) => appendFileSync(path, JSON.stringify({ step: a.step, epoch: a.epoch, parts: a.parts }) + "\n");
}

/**
 * `--timeline <file>`: one JSON line per applied step, `{step, applied, tasks: [{task, worker, queued, started,
 * gradient}]}` in wall-clock ms — when the step was applied, each task handed to ZeroMQ, its worker's Started
 * taken in (0: none came) and its gradient taken in. Written
 * through a stream (no disk write waits on the round), once the next step's tasks are out; a new file each run.
 */
function timelineLog(path: string): { write(a: AppliedStep): void; close(): Promise<void> } {
  mkdirSync(dirname(path), { recursive: true });
  const out = createWriteStream(path);
  out.on("error", (err) => log.warn(`--timeline ${path}: ${errorMessage(err)}`));
  log.info(`timeline of the steps: ${path}`);
  return {
    // after the next step's tasks are out: the record is not on the path from a step's gradients to its successor
    write: (a) => { setImmediate(() => out.write(JSON.stringify({ step: a.step, ...a.timeline }) + "\n")); },
    close: () => new Promise<void>((res) => out.end(res)),
  };
}

/** `--init <model dir>`: the saved model's tensors that this model has too (same name and shape) replace the
 *  initialisation; the model must have been trained on this dataset's vocabulary (its rows are token ids). */
function initFrom(dir: string, data: TrainingData, to: { layout: ParamLayout; params: Float32Array }): void {
  const from = loadModel(dir);
  if (from.vocabHash !== data.vocabHash) throw new InputError(`--init: the model's vocabulary (${from.vocabHash}) is not the dataset's (${data.vocabHash}); pretrain on the same dataset`, { path: dir });
  const copied = copyByName(from, to);
  if (copied.length === 0) throw new InputError(`--init: the model (task ${taskOf(from.model)}) has no tensor of this model's names and shapes`, { path: dir });
  log.info(`initialised ${copied.join(", ")} from ${dir} (task ${taskOf(from.model)}); the other tensors start from --seed`);
}

/** Task sgns: its input vectors as a GloVe text file, what `--glove` reads. */
async function writeVectors(path: string, dataset: string, model: ModelConfig, params: Float32Array): Promise<string> {
  const { writeGloveText } = await import("../model/vectors.js");
  const { written, dim } = await writeGloveText(path, loadVocab(join(dataset, "vocab.json")).tokens, params, model);
  log.info(`word vectors written to ${path} (${written} tokens × ${dim}, GloVe's text format)`);
  return path;
}

/**
 * The count a worker must report for a batch (what the step's mean divides by): its reviews for the classifier;
 * for task lm its predictions (a review of n tokens predicts n − 1); for task sgns its (centre, context) pairs,
 * found by making the batch's draws as the worker's engine does (seeded by the run's seed, the epoch and the
 * reviews' ids: the same pairs on every side). Validation uses the draws of VALIDATION_SAMPLING_EPOCH, as workers do.
 */
function unitsOfBatches(data: TrainingData, model: ModelConfig, counts: Float64Array | undefined, seed: number, trainSplit: TrainingSplit): (split: "train" | "val", index: number, epoch: number) => number {
  const batchOf = (split: "train" | "val", index: number) => data.batch(split === "train" ? trainSplit : split, index);
  const task = taskOf(model);
  if (task === "classify") return (split, index) => batchOf(split, index).size;
  if (task === "lm") {
    return (split, index) => {
      const b = batchOf(split, index);
      let n = 0;
      for (let i = 0; i < b.size; i++) n += Math.max(0, b.lengths[i]! - 1);
      return n;
    };
  }
  const settings = sgnsSettings(model);
  const tables = sgnsTables(counts, model.vocabSize, settings.subsample);
  return (split, index, epoch) => {
    const b = batchOf(split, index);
    return drawPairs(batchToEngine(b, undefined, samplingSeed(seed, split === "val" ? VALIDATION_SAMPLING_EPOCH : epoch)), settings, tables).contexts.length;
  };
}

/** The embedding rows each batch reads (cached: a batch is dealt once an epoch, its rows never change); the
 *  coordinator's "train" batches are those of `trainSplit`. */
function rowsOfBatches(data: TrainingData, vocabSize: number, trainSplit: TrainingSplit): (split: "train" | "val", index: number) => Int32Array {
  const cache = new Map<string, Int32Array>();
  return (split, index) => {
    const key = `${split}/${index}`;
    let rows = cache.get(key);
    if (!rows) {
      const b = data.batch(split === "train" ? trainSplit : split, index);
      rows = batchRows({ size: b.size, maxLen: b.maxLen, lengths: b.lengths, tokens: b.tokens, targets: new Float32Array(b.size) }, vocabSize);
      cache.set(key, rows);
    }
    return rows;
  };
}
