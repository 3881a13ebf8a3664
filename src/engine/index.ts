// The gradient engine's public face (wiring only): createEngine, batchToEngine, dropoutSeed, samplingSeed, predictProbabilities.
// See fused.ts for the classifier, lm.ts for the language model, sgns.ts for skip-gram word vectors, stack.ts
// and recurrent.ts for the hand-written LSTM/GRU forward and backward.
import { taskOf } from "../config.js";
import type { Batch } from "../dataset/batch.js";
import { UsageError } from "../errors.js";
import { useBackend, type BackendLoaders } from "../tfjs.js";
import { cpuEngine } from "./cpu.js";
import { FusedModel } from "./fused.js";
import { LmModel } from "./lm.js";
import { SgnsModel } from "./sgns.js";
import type { Engine, EngineBatch, EngineOptions, EngineParams } from "./types.js";

export type { Engine, EngineBatch, EngineOptions, EngineParams, EvalResult, InputKind, LossKind, RowParams, RowStepResult, StepResult } from "./types.js";
export { batchRows, toFullStep, toRowParams, writeRowParams } from "./rows.js";

/**
 * What tfjs needs from the engine's modules to start its webgpu backend: the WebGPU entry point of
 * src/engine/gpu/device.ts (the `webgpu` package's owner), loaded only when that backend is tried.
 */
export const backendLoaders: BackendLoaders = {
  webgpu: async () => (await import("./gpu/device.js")).webgpuEntry(),
};

/**
 * Builds an engine for `opts.model` and its task. Classifier: with backend "auto" or "webgpu", the WebGPU
 * engine (src/engine/gpu) takes models its kernels cover when a GPU adapter is there (see gpuEngineFor);
 * otherwise the fused engine runs on the tfjs backend started here (once per process). Task lm: the CPU
 * language-model engine, its matmuls on that tfjs backend (the WebGPU engine declines it). Task sgns:
 * typed-array loops only, no tfjs backend (reported as backend "js"). lm and sgns read `opts.counts`.
 */
export async function createEngine(opts: EngineOptions): Promise<Engine> {
  const task = taskOf(opts.model);
  if (task !== "classify") return pretrainingEngine(opts);
  const choice = opts.backend ?? "auto";
  if (choice === "auto" || choice === "webgpu") {
    const { gpuEngineFor } = await import("./gpu/select.js");
    const gpu = await gpuEngineFor(opts);
    if (gpu) return gpu;
  }
  const backend = await useBackend(choice, backendLoaders);
  return cpuEngine(new FusedModel(opts.model, opts.input ?? "tokens", opts.loss ?? "bce", opts.inputDim), backend);
}

async function pretrainingEngine(opts: EngineOptions): Promise<Engine> {
  const task = taskOf(opts.model);
  if ((opts.input ?? "tokens") !== "tokens") throw new UsageError(`task ${task} reads tokens, not dense inputs`);
  if (opts.dropout) throw new UsageError(`task ${task} has no dropout (got rate ${opts.dropout})`);
  const model = task === "lm" ? new LmModel(opts.model, opts.counts) : new SgnsModel(opts.model, opts.counts);
  const backend = task === "lm" ? await useBackend(opts.backend ?? "auto", backendLoaders) : "js";
  return cpuEngine(model, backend);
}

/** The engine's view of a dataset batch (no copies except the labels as floats); `dropout` for the classifier's
 *  training steps, `seed` for the draws of tasks lm and sgns (samplingSeed). */
export function batchToEngine(b: Batch, dropout?: { rate: number; seed: number }, seed?: number): EngineBatch {
  return { size: b.size, maxLen: b.maxLen, lengths: b.lengths, tokens: b.tokens, targets: Float32Array.from(b.labels), ids: b.ids, dropout, seed };
}

/** The dropout seed of an epoch: every epoch draws new masks, the same ones on any worker and after a resume. */
export function dropoutSeed(runSeed: number, epoch: number): number {
  return Math.imul(runSeed ^ 0x3c6ef372, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b);
}

/** The seed of an epoch's lm candidates and sgns draws (EngineBatch.seed): independent of the dropout masks'. */
export function samplingSeed(runSeed: number, epoch: number): number {
  return Math.imul(runSeed ^ 0x1f83d9ab, 0x9e3779b1) ^ Math.imul(epoch + 1, 0xc2b2ae35);
}

/** The epoch whose sampling seed every validation pass of a pretraining task uses (the same draws each time,
 *  so its losses compare across epochs; the coordinator counts the pairs of the same draws). */
export const VALIDATION_SAMPLING_EPOCH = -1;

/** P(positive) for each review of a batch (bce models): σ(logit). */
export async function predictProbabilities(engine: Engine, params: EngineParams, batch: EngineBatch): Promise<Float32Array> {
  const { outputs } = await engine.evaluate(params, batch);
  return outputs.map((z) => 1 / (1 + Math.exp(-z)));
}
