// The engine contract: what a worker hands the gradient engine and what it gets back.
// Legend: B batch size, T padded length, D dense input width, N = layout.size parameters.
import type { ModelConfig } from "../config.js";
import type { ParamLayout } from "../model/layout.js";
import type { BackendChoice } from "../tfjs.js";

export type LossKind = "bce" | "mse";
/** Phases of a step whose GPU execution time an engine may measure (WebGPU timestamp queries). */
export type GpuPhase = "forward" | "backward" | "readback";
export type InputKind = "tokens" | "dense";

export interface EngineOptions {
  model: ModelConfig;
  /** "tokens" (default): an embedding table; "dense": float inputs of width `inputDim`. */
  input?: InputKind;
  /** D, for input "dense". */
  inputDim?: number;
  /** "bce" (default): BCE-with-logits on 0/1 labels; "mse": squared error on regression targets. */
  loss?: LossKind;
  backend?: BackendChoice;
  /** Dropout rate the training batches will ask for (engines without dropout decline the model). */
  dropout?: number;
  /**
   * Token counts of the vocabulary, id order (vocab.json `counts`, see loadVocabCounts in src/dataset/vocab.ts).
   * Task lm with sampler "unigram" draws its candidates from counts^0.75; task sgns draws negatives from
   * counts^0.75 and subsamples frequent tokens by them; either refuses to start without them.
   */
  counts?: ArrayLike<number>;
}

export interface EngineBatch {
  size: number; //            B
  maxLen: number; //          T
  lengths: Int32Array; //     [B], each in 1..T
  tokens?: Int32Array; //     [B*T] row-major token ids, for input "tokens"
  inputs?: Float32Array; //   [B*T*D] row-major, for input "dense"
  targets: Float32Array; //   [B] labels 0/1 (bce) or regression targets (mse)
  /** [B] sample ids: they key the dropout masks (a sample gets the same mask on any worker, in any batch). */
  ids?: Int32Array;
  /** Training only: dropout on the classifier's input (the final hidden state); masks from `seed` and `ids`. */
  dropout?: { rate: number; seed: number };
  /**
   * Tasks lm and sgns: the seed of every draw (lm: the batch's softmax candidates, keyed by the set of `ids`;
   * sgns: each review's subsampling, windows and negatives, keyed by its id), e.g. samplingSeed(runSeed, epoch).
   * Absent: 0. Without `ids` the draws are keyed by row position instead.
   */
  seed?: number;
}

/**
 * What lossSum, correct and count mean for each task:
 *   classify  count = reviews; lossSum = Σ BCE (or squared error); correct = right side of 0.
 *   lm        count = predicted tokens (a review of n tokens gives n−1); lossSum = Σ sampled-softmax cross-
 *             entropy over the target and the batch's candidates (corrected by −log Q, see lm.ts: an estimate
 *             of the full softmax's loss, lower than it); correct = predictions whose target's logit beats
 *             every candidate's (a ranking accuracy against ≤ S draws, not top-1 over the vocabulary).
 *   sgns      count = (centre, context) pairs; lossSum = Σ −log σ(u·v_o) − Σ_neg log σ(−u·v_n);
 *             correct = pairs whose context scores above each of their negatives.
 */
export interface StepResult {
  /** SUM over the batch of the per-sample (per-prediction, per-pair) losses. */
  lossSum: number;
  correct: number;
  count: number;
  /** [N] gradient of lossSum w.r.t. every parameter, layout order. */
  grads: Float32Array;
  /** Rows of the embedding gradient that may be non-zero (sorted, unique); others are exactly zero. */
  embeddingRows?: Int32Array;
  /**
   * For every rowSparse entry of the layout (token input): the rows of its gradient that may be non-zero,
   * sorted and unique; every other row is exactly zero. touched["embedding.weight"] equals embeddingRows.
   */
  touched?: Record<string, Int32Array>;
  /** GPU execution time of this step by phase, in seconds, where the device offers timestamp queries. */
  gpuSeconds?: Partial<Record<GpuPhase, number>>;
}

/**
 * Parameters as a step reads them when only part of the embedding table travels: the dense tensors whole
 * and some embedding rows. `rows` must hold every token id the batch reads (ids at t < length, <pad>
 * included where a review holds it: batchRows in rows.ts); the engine reads no other row, so the rest of
 * the table need not exist on this side. A batch reading a row not given is an InputError.
 */
export interface RowParams {
  /** [N − V·E] every parameter after embedding.weight, layout order (= full.subarray(V·E)). */
  dense: Float32Array;
  /** [R] embedding row ids, ascending, unique, in 0..V−1 (empty for dense-input models). */
  rows: Int32Array;
  /** [R·E] row rows[i] at values[i·E .. (i+1)·E). */
  values: Float32Array;
}

/** A full parameter vector [N] or its rows form. */
export type EngineParams = Float32Array | RowParams;

/**
 * A training step's result with the gradient in rows form: the same numbers as StepResult (bit for bit),
 * without the [N] vector. Every embedding row not in `rows` has a gradient of exactly zero.
 */
export interface RowStepResult {
  lossSum: number;
  correct: number;
  count: number;
  /** [N − V·E] gradient of lossSum w.r.t. the dense parameters. */
  dense: Float32Array;
  /** [R] touched rows: the batch's token ids except <pad>, ascending, unique (= StepResult.embeddingRows). */
  rows: Int32Array;
  /** [R·E] their gradient, row rows[i] at values[i·E .. (i+1)·E). */
  values: Float32Array;
  /** GPU execution time of this step by phase, in seconds, where the device offers timestamp queries. */
  gpuSeconds?: Partial<Record<GpuPhase, number>>;
}

export interface EvalResult {
  lossSum: number;
  correct: number;
  count: number;
  /** [B] classify: logits (bce) or predictions (mse); lm and sgns: each review's share of lossSum. */
  outputs: Float32Array;
}

export interface Engine {
  /** The tfjs backend actually running ("wasm", "webgpu", "tensorflow", "cpu"). */
  backend: string;
  layout: ParamLayout;
  step(params: Float32Array, batch: EngineBatch): Promise<StepResult>;
  /** The same step as `step`, parameters in either form, gradient in rows form (only what it touched). */
  stepRows(params: EngineParams, batch: EngineBatch): Promise<RowStepResult>;
  evaluate(params: EngineParams, batch: EngineBatch): Promise<EvalResult>;
  dispose(): void;
}
