// Adam (bias-corrected, as torch.optim.Adam) and global-norm clipping over one flat parameter buffer.
// N = number of parameters. The update itself is in kernels.ts (WebAssembly SIMD for arrays in an arena,
// a bit-identical JS loop otherwise); this file keeps the state and the step count.
import { Arena, Kernels, adamJs, type AdamHyper } from "./kernels.js";

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 penalty added to the gradient (torch.optim.Adam's weight_decay, not AdamW). Default 0. */
  weightDecay?: number;
}

export interface AdamState {
  m: Float32Array; // [N] first moment
  v: Float32Array; // [N] second moment
  t: number; //       steps taken
}

export class Adam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private t = 0;
  private readonly kernels: Kernels | null;
  /** With an `arena`, the moments live in it and updates of arena arrays run the SIMD kernel. */
  constructor(readonly size: number, readonly o: AdamOptions, arena?: Arena) {
    this.kernels = arena ? new Kernels(arena) : null;
    this.m = arena ? arena.alloc(size) : new Float32Array(size);
    this.v = arena ? arena.alloc(size) : new Float32Array(size);
  }

  /** One update of `params` in place from `grads` (already averaged and clipped). */
  step(params: Float32Array, grads: Float32Array): void {
    if (params.length !== this.size || grads.length !== this.size) {
      throw new RangeError(`Adam: expected ${this.size} parameters and gradients, got ${params.length} and ${grads.length}`);
    }
    this.apply(this.begin(), params, params, grads, 0, this.size, 1, 1);
  }

  /** Start the next step: t + 1 and its bias corrections (then `apply` over every range once). */
  begin(): AdamHyper {
    this.t++;
    return this.hyper(this.t);
  }

  /** What `begin` would return now, without taking the step. */
  peek(): AdamHyper {
    return this.hyper(this.t + 1);
  }

  private hyper(t: number): AdamHyper {
    const { lr, beta1, beta2, eps } = this.o;
    const bc1 = 1 - Math.pow(beta1, t);
    const bc2 = 1 - Math.pow(beta2, t);
    return { beta1, beta2, eps, stepSize: lr / bc1, sqrtBc2: Math.sqrt(bc2), weightDecay: this.o.weightDecay ?? 0 };
  }

  /**
   * Update parameters [start, end) of the step `h` began: pOut = pIn − Adam(g) with the gradient
   * g = f32(f32(acc·scale)·coef) (scale: 1/samples, coef: the clip factor). pOut may be pIn.
   */
  apply(h: AdamHyper, pIn: Float32Array, pOut: Float32Array, acc: Float32Array, start: number, end: number, scale: number, coef: number): void {
    if (this.kernels && start % 4 === 0 && this.kernels.owns(pIn, pOut, acc)) this.kernels.adam(pIn, pOut, acc, this.m, this.v, start, end, scale, coef, h);
    else adamJs(pIn, pOut, acc, this.m, this.v, start, end, scale, coef, h);
  }

  /** Update the first `count` rows of `width` values starting at `starts` (as `apply` would each [start,
   *  start + width)): one kernel call when the starts are in the kernels' arena and every row is aligned.
   *  `zero`: the sum is +0 in these rows (no gradient touched them), so that kernel need not read it — the same
   *  bits; elsewhere the sum is read as usual. */
  applyRows(h: AdamHyper, pIn: Float32Array, pOut: Float32Array, acc: Float32Array, starts: Int32Array, count: number, width: number, scale: number, coef: number, zero = false): void {
    const aligned = () => { for (let k = 0; k < count; k++) if (starts[k]! % 4 !== 0) return false; return true; };
    if (this.kernels && width % 4 === 0 && this.kernels.owns(pIn, pOut, acc) && this.kernels.arena.memory.buffer === starts.buffer && aligned()) {
      this.kernels.adamRows(pIn, pOut, acc, this.m, this.v, starts, count, width, scale, coef, h, zero);
      return;
    }
    for (let k = 0; k < count; k++) this.apply(h, pIn, pOut, acc, starts[k]!, starts[k]! + width, scale, coef);
  }

  /** The optimizer state (live views; copy before sending them elsewhere). */
  state(): AdamState {
    return { m: this.m, v: this.v, t: this.t };
  }

  load(s: AdamState): void {
    if (s.m.length !== this.size || s.v.length !== this.size) {
      throw new RangeError(`Adam: state has ${s.m.length}/${s.v.length} entries, expected ${this.size}`);
    }
    this.m.set(s.m);
    this.v.set(s.v);
    this.t = s.t;
  }
}

/** L2 norm of one or more buffers taken together (accumulated in float64). */
export function globalNorm(...bufs: Float32Array[]): number {
  let s = 0;
  for (const b of bufs) for (let i = 0; i < b.length; i++) s += b[i] * b[i];
  return Math.sqrt(s);
}

/** torch.nn.utils.clip_grad_norm_'s factor: maxNorm / (norm + 1e-6) when that is < 1, else 1 (also for a
 *  non-finite norm or no limit). */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(norm)) return 1;
  const coef = maxNorm / (norm + 1e-6);
  return coef < 1 ? coef : 1;
}

/**
 * Scales `grads` in place so that its L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_:
 * factor maxNorm / (norm + 1e-6), applied only when it is < 1). Returns the norm before clipping.
 */
export function clipByGlobalNorm(grads: Float32Array, maxNorm: number): { norm: number; clipped: boolean } {
  const norm = globalNorm(grads);
  const coef = clipCoefficient(norm, maxNorm);
  if (coef === 1) return { norm, clipped: false };
  for (let i = 0; i < grads.length; i++) grads[i] *= coef;
  return { norm, clipped: true };
}
