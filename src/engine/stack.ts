// The recurrent part shared by every task: stacked, optionally bidirectional LSTM/GRU layers over time-major
// inputs, forward and BPTT. The classifier reads the top layer's final state; the language model reads the
// top layer's output at every step and feeds a gradient back into each.
//
// Legend: B batch, T time, In input width of layer 0, H hidden, K = dirs·H, L layers. Inputs of layer 0 are
// X [T*B, In] (time-major); layer l > 0 reads the concatenated outputs [T*B, K] of layer l−1.
import type { ModelConfig } from "../config.js";
import { directionsOf, rnnPrefix, view, type ParamLayout } from "../model/layout.js";
import { Direction, type DirForward, type DirWeights } from "./recurrent.js";

export interface StackForward {
  /** Input of each layer: xs[0] = X [T*B, In], xs[l] [T*B, K]. */
  xs: Float32Array[];
  runs: DirForward[][]; //     [L][dirs]
  /** [B, K] final state of the top layer (each direction's state at its last processed token). */
  final: Float32Array;
  /** [T*B, K] the top layer's output at each step, when asked for. */
  outputs?: Float32Array;
}

export class RecurrentStack {
  private readonly dirs: Direction[][]; // [L][dirs]
  readonly K: number;
  private readonly H: number;
  private readonly nd: number;

  constructor(cfg: ModelConfig, private readonly layout: ParamLayout, private readonly inDim: number) {
    this.nd = directionsOf(cfg);
    this.H = cfg.hidden;
    this.K = this.nd * cfg.hidden;
    this.dirs = [];
    for (let l = 0; l < cfg.layers; l++) {
      const inD = l === 0 ? inDim : this.K;
      this.dirs.push(Array.from({ length: this.nd }, (_, d) => new Direction(cfg.cell, inD, cfg.hidden, d === 1)));
    }
  }

  private weights(params: Float32Array, l: number, d: number): DirWeights {
    const p = rnnPrefix(l, d === 1);
    const v = (n: string) => view(this.layout, params, `${p}.${n}`);
    return { wih: v("w_ih"), whh: v("w_hh"), bih: v("b_ih"), bhh: v("b_hh") };
  }

  /** All layers over X [T*B, In]; `train` keeps the tapes for backward, `keepTop` the top layer's outputs. */
  forward(params: Float32Array, x: Float32Array, T: number, B: number, lengths: Int32Array, train: boolean, keepTop: boolean): StackForward {
    const H = this.H;
    const xs: Float32Array[] = [x];
    const runs: DirForward[][] = [];
    for (let l = 0; l < this.dirs.length; l++) {
      const last = l === this.dirs.length - 1;
      const r = this.dirs[l].map((dir, d) => dir.forward(this.weights(params, l, d), xs[l], T, B, lengths, { train, keepOutputs: !last || keepTop }));
      runs.push(r);
      if (!last) xs.push(interleave(r.map((x) => x.outputs!), T * B, H));
    }
    const top = runs[runs.length - 1];
    const final = interleave(top.map((x) => x.final), B, H); // [B, K]
    const outputs = keepTop ? interleave(top.map((x) => x.outputs!), T * B, H) : undefined;
    return { xs, runs, final, outputs };
  }

  /**
   * BPTT through every layer, top to bottom. dFinal [B, K]: gradient w.r.t. the top layer's final state;
   * dOutputs [T*B, K]: w.r.t. its output at each step (either may be undefined). Writes the recurrent
   * weights' gradients into `grads` (layout order) and returns dX [T*B, In] when `needDx`.
   */
  backward(params: Float32Array, f: StackForward, T: number, B: number, lengths: Int32Array,
           dFinal: Float32Array | undefined, dOutputs: Float32Array | undefined, grads: Float32Array, needDx: boolean): Float32Array | undefined {
    const { H, K, nd } = this;
    let dF: (Float32Array | undefined)[] = dFinal ? deinterleave(dFinal, B, H, nd) : Array(nd).fill(undefined);
    let dO: (Float32Array | undefined)[] = dOutputs ? deinterleave(dOutputs, T * B, H, nd) : Array(nd).fill(undefined);
    let dx: Float32Array | undefined;
    for (let l = this.dirs.length - 1; l >= 0; l--) {
      const wantDx = l > 0 || needDx;
      const inD = l === 0 ? this.inDim : K;
      dx = wantDx ? new Float32Array(T * B * inD) : undefined;
      for (let d = 0; d < nd; d++) {
        const r = this.dirs[l][d].backward(this.weights(params, l, d), f.xs[l], f.runs[l][d].tape!, T, B, lengths, dF[d], dO[d], wantDx);
        const p = rnnPrefix(l, d === 1);
        view(this.layout, grads, `${p}.w_ih`).set(r.grads.wih);
        view(this.layout, grads, `${p}.w_hh`).set(r.grads.whh);
        view(this.layout, grads, `${p}.b_ih`).set(r.grads.bih);
        view(this.layout, grads, `${p}.b_hh`).set(r.grads.bhh);
        if (dx && r.dx) for (let i = 0; i < dx.length; i++) dx[i] += r.dx[i];
      }
      if (l > 0) {
        dO = deinterleave(dx!, T * B, H, nd);
        dF = Array(nd).fill(undefined);
      }
    }
    return dx;
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
