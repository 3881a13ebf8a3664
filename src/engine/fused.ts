// The fused engine: embedding (or dense input) → stacked, optionally bidirectional LSTM/GRU → Linear → loss,
// with a hand-written backward pass. The layers are in stack.ts, the numeric work of the recurrence in recurrent.ts.
//
// Legend: B batch, T time, E/D input width, H hidden, K = dirs·H, L layers. Inputs of layer 0 are the
// embedded tokens X [T*B, E] (time-major); layer l > 0 reads the concatenated outputs [T*B, K] of layer l−1.
import type { ModelConfig } from "../config.js";
import { taskOf } from "../config.js";
import { UsageError } from "../errors.js";
import { paramLayout, view, type ParamLayout } from "../model/layout.js";
import { gather, scatterAdd } from "./embedding.js";
import { batchDropoutMask, headBackward, headForward, lossAndGrad } from "./head.js";
import { RecurrentStack } from "./stack.js";
import type { EngineBatch, EvalResult, InputKind, LossKind, StepResult } from "./types.js";

export class FusedModel {
  readonly layout: ParamLayout;
  private readonly stack: RecurrentStack;
  private readonly K: number;
  private readonly inDim: number;

  constructor(readonly cfg: ModelConfig, readonly input: InputKind, readonly loss: LossKind, inputDim?: number) {
    if (taskOf(cfg) !== "classify") throw new UsageError(`the classifier engine cannot train task ${taskOf(cfg)}`);
    if (input === "dense" && !(inputDim && inputDim > 0)) throw new UsageError("dense input needs inputDim (D) >= 1");
    this.layout = paramLayout(input === "dense" ? { ...cfg, inputDim } : cfg);
    this.inDim = input === "dense" ? inputDim! : cfg.embedDim;
    this.stack = new RecurrentStack(cfg, this.layout, this.inDim);
    this.K = this.stack.K;
  }

  private check(params: Float32Array, batch: EngineBatch): void {
    const { size: B, maxLen: T, lengths } = batch;
    if (params.length !== this.layout.size) throw new UsageError(`expected ${this.layout.size} parameters, got ${params.length}`);
    if (!(B >= 1 && T >= 1)) throw new UsageError(`batch must have size >= 1 and maxLen >= 1 (got ${B}, ${T})`);
    if (lengths.length !== B || batch.targets.length !== B) throw new UsageError(`batch lengths/targets must have ${B} entries`);
    for (let b = 0; b < B; b++) if (!(lengths[b] >= 1 && lengths[b] <= T)) throw new UsageError(`length ${lengths[b]} of row ${b} is outside 1..${T}`);
    if (this.input === "tokens" && batch.tokens?.length !== B * T) throw new UsageError(`batch.tokens must have B*T = ${B * T} entries`);
    if (this.input === "dense" && batch.inputs?.length !== B * T * this.inDim) throw new UsageError(`batch.inputs must have B*T*D = ${B * T * this.inDim} entries`);
  }

  /** Layer-0 input X [T*B, In], time-major. */
  private inputs(params: Float32Array, batch: EngineBatch): Float32Array {
    const { size: B, maxLen: T } = batch;
    if (this.input === "tokens") {
      return gather(view(this.layout, params, "embedding.weight"), this.cfg.vocabSize, this.inDim, batch.tokens!, batch.lengths, B, T);
    }
    const D = this.inDim, src = batch.inputs!;
    const x = new Float32Array(T * B * D);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) x.set(src.subarray((b * T + t) * D, (b * T + t + 1) * D), (t * B + b) * D);
    return x;
  }

  private forward(params: Float32Array, batch: EngineBatch, train: boolean, mask: Float32Array | null = null) {
    const { size: B, maxLen: T, lengths } = batch;
    const run = this.stack.forward(params, this.inputs(params, batch), T, B, lengths, train, false);
    const state = run.final; //                                                 [B, K]
    const feat = mask ? state.map((x, i) => x * mask[i]!) : state; // dropout: a copy, the state stays as it was
    const w = view(this.layout, params, "fc.weight");
    const bias = view(this.layout, params, "fc.bias")[0];
    const out = headForward(feat, B, this.K, w, bias);
    return { run, feat, out };
  }

  evaluate(params: Float32Array, batch: EngineBatch): EvalResult {
    this.check(params, batch);
    const { out } = this.forward(params, batch, false);
    const { lossSum, correct } = lossAndGrad(out, batch.targets, this.loss);
    return { lossSum, correct, count: batch.size, outputs: out };
  }

  step(params: Float32Array, batch: EngineBatch): StepResult {
    this.check(params, batch);
    const { size: B, maxLen: T, lengths } = batch;
    const K = this.K;
    const mask = batchDropoutMask(batch, K);
    const { run, feat, out } = this.forward(params, batch, true, mask);
    const { lossSum, correct, dOut } = lossAndGrad(out, batch.targets, this.loss);
    const grads = new Float32Array(this.layout.size);
    const w = view(this.layout, params, "fc.weight");
    const hb = headBackward(feat, B, K, w, dOut);
    if (mask) for (let i = 0; i < hb.dFeat.length; i++) hb.dFeat[i]! *= mask[i]!;
    view(this.layout, grads, "fc.weight").set(hb.dw);
    view(this.layout, grads, "fc.bias")[0] = hb.db;
    // The head reads only the final state: its gradient enters the top layer there.
    const dx = this.stack.backward(params, run, T, B, lengths, hb.dFeat, undefined, grads, this.input === "tokens");
    if (this.input !== "tokens") return { lossSum, correct, count: B, grads };
    const embeddingRows = scatterAdd(view(this.layout, grads, "embedding.weight"), this.inDim, dx!, batch.tokens!, lengths, B, T);
    return { lossSum, correct, count: B, grads, embeddingRows, touched: { "embedding.weight": embeddingRows } };
  }
}
