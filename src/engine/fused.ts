// The fused engine: embedding (or dense input) → stacked, optionally bidirectional LSTM/GRU → Linear → loss,
// with a hand-written backward pass. Numeric work of the recurrence is in recurrent.ts.
//
// Legend: B batch, T time, E/D input width, H hidden, K = dirs·H, L layers. Inputs of layer 0 are the
// embedded tokens X [T*B, E] (time-major); layer l > 0 reads the concatenated outputs [T*B, K] of layer l−1.
import type { ModelConfig } from "../config.js";
import { UsageError } from "../errors.js";
import { directionsOf, paramLayout, rnnPrefix, view, type ParamLayout } from "../model/layout.js";
import { gather, scatterAdd } from "./embedding.js";
import { batchDropoutMask, headBackward, headForward, lossAndGrad } from "./head.js";
import { Direction, type DirForward, type DirWeights } from "./recurrent.js";
import type { EngineBatch, EvalResult, InputKind, LossKind, StepResult } from "./types.js";

export class FusedModel {
  readonly layout: ParamLayout;
  private readonly dirs: Direction[][]; // [L][dirs]
  private readonly K: number;
  private readonly inDim: number;

  constructor(readonly cfg: ModelConfig, readonly input: InputKind, readonly loss: LossKind, inputDim?: number) {
    if (input === "dense" && !(inputDim && inputDim > 0)) throw new UsageError("dense input needs inputDim (D) >= 1");
    this.layout = paramLayout(input === "dense" ? { ...cfg, inputDim } : cfg);
    this.inDim = input === "dense" ? inputDim! : cfg.embedDim;
    const nd = directionsOf(cfg);
    this.K = nd * cfg.hidden;
    this.dirs = [];
    for (let l = 0; l < cfg.layers; l++) {
      const inD = l === 0 ? this.inDim : this.K;
      this.dirs.push(Array.from({ length: nd }, (_, d) => new Direction(cfg.cell, inD, cfg.hidden, d === 1)));
    }
  }

  private weights(params: Float32Array, l: number, d: number): DirWeights {
    const p = rnnPrefix(l, d === 1);
    const v = (n: string) => view(this.layout, params, `${p}.${n}`);
    return { wih: v("w_ih"), whh: v("w_hh"), bih: v("b_ih"), bhh: v("b_hh") };
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
    const H = this.cfg.hidden, nd = this.dirs[0].length;
    const xs: Float32Array[] = [this.inputs(params, batch)]; // input of each layer
    const runs: DirForward[][] = [];
    for (let l = 0; l < this.dirs.length; l++) {
      const last = l === this.dirs.length - 1;
      const r = this.dirs[l].map((dir, d) => dir.forward(this.weights(params, l, d), xs[l], T, B, lengths, { train, keepOutputs: !last }));
      runs.push(r);
      if (!last) xs.push(interleave(r.map((x) => x.outputs!), T * B, H));
    }
    const state = interleave(runs[runs.length - 1].map((x) => x.final), B, H); // [B, K]
    const feat = mask ? state.map((x, i) => x * mask[i]!) : state; // dropout: a copy, the state stays as it was
    const w = view(this.layout, params, "fc.weight");
    const bias = view(this.layout, params, "fc.bias")[0];
    const out = headForward(feat, B, nd * H, w, bias);
    return { xs, runs, feat, out };
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
    const H = this.cfg.hidden, K = this.K, nd = this.dirs[0].length;
    const mask = batchDropoutMask(batch, K);
    const { xs, runs, feat, out } = this.forward(params, batch, true, mask);
    const { lossSum, correct, dOut } = lossAndGrad(out, batch.targets, this.loss);
    const grads = new Float32Array(this.layout.size);
    const w = view(this.layout, params, "fc.weight");
    const hb = headBackward(feat, B, K, w, dOut);
    if (mask) for (let i = 0; i < hb.dFeat.length; i++) hb.dFeat[i]! *= mask[i]!;
    view(this.layout, grads, "fc.weight").set(hb.dw);
    view(this.layout, grads, "fc.bias")[0] = hb.db;

    // Top layer: gradient w.r.t. each direction's final state; lower layers: w.r.t. every output.
    let dFinal: (Float32Array | undefined)[] = deinterleave(hb.dFeat, B, H, nd);
    let dOutputs: (Float32Array | undefined)[] = Array(nd).fill(undefined);
    let dx: Float32Array | undefined;
    for (let l = this.dirs.length - 1; l >= 0; l--) {
      const needDx = l > 0 || this.input === "tokens";
      const inD = l === 0 ? this.inDim : K;
      dx = needDx ? new Float32Array(T * B * inD) : undefined;
      for (let d = 0; d < nd; d++) {
        const wts = this.weights(params, l, d);
        const r = this.dirs[l][d].backward(wts, xs[l], runs[l][d].tape!, T, B, lengths, dFinal[d], dOutputs[d], needDx);
        const p = rnnPrefix(l, d === 1);
        view(this.layout, grads, `${p}.w_ih`).set(r.grads.wih);
        view(this.layout, grads, `${p}.w_hh`).set(r.grads.whh);
        view(this.layout, grads, `${p}.b_ih`).set(r.grads.bih);
        view(this.layout, grads, `${p}.b_hh`).set(r.grads.bhh);
        if (dx && r.dx) for (let i = 0; i < dx.length; i++) dx[i] += r.dx[i];
      }
      if (l > 0) {
        dOutputs = deinterleave(dx!, T * B, H, nd);
        dFinal = Array(nd).fill(undefined);
      }
    }
    let embeddingRows: Int32Array | undefined;
    if (this.input === "tokens") {
      embeddingRows = scatterAdd(view(this.layout, grads, "embedding.weight"), this.inDim, dx!, batch.tokens!, lengths, B, T);
    }
    return { lossSum, correct, count: B, grads, embeddingRows };
  }
}

/** [rows, nd*H] from nd arrays of [rows, H] (concatenation along the feature axis). */
function interleave(parts: Float32Array[], rows: number, H: number): Float32Array {
  if (parts.length === 1) return parts[0];
  const nd = parts.length;
  const out = new Float32Array(rows * nd * H);
  for (let r = 0; r < rows; r++) for (let d = 0; d < nd; d++) out.set(parts[d].subarray(r * H, r * H + H), (r * nd + d) * H);
  return out;
}

/** The inverse of `interleave`. */
function deinterleave(x: Float32Array, rows: number, H: number, nd: number): Float32Array[] {
  if (nd === 1) return [x];
  const parts = Array.from({ length: nd }, () => new Float32Array(rows * H));
  for (let r = 0; r < rows; r++) for (let d = 0; d < nd; d++) parts[d].set(x.subarray((r * nd + d) * H, (r * nd + d + 1) * H), r * H);
  return parts;
}
