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
}

export interface StepResult {
  /** SUM over the batch of the per-sample losses. */
  lossSum: number;
  correct: number;
  count: number;
  /** [N] gradient of lossSum w.r.t. every parameter, layout order. */
  grads: Float32Array;
  /** Rows of the embedding gradient that may be non-zero (sorted, unique); others are exactly zero. */
  embeddingRows?: Int32Array;
  /** GPU execution time of this step by phase, in seconds, where the device offers timestamp queries. */
  gpuSeconds?: Partial<Record<GpuPhase, number>>;
}

export interface EvalResult {
  lossSum: number;
  correct: number;
  count: number;
  /** [B] logits (bce) or predictions (mse). */
  outputs: Float32Array;
}

export interface Engine {
  /** The tfjs backend actually running ("wasm", "webgpu", "tensorflow", "cpu"). */
  backend: string;
  layout: ParamLayout;
  step(params: Float32Array, batch: EngineBatch): Promise<StepResult>;
  evaluate(params: Float32Array, batch: EngineBatch): Promise<EvalResult>;
  dispose(): void;
}
