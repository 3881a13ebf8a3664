// Adam (bias-corrected, as torch.optim.Adam) and global-norm clipping over one flat parameter buffer.
// Plain loops; N = number of parameters.

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
  private m: Float32Array;
  private v: Float32Array;
  private t = 0;
  constructor(readonly size: number, readonly o: AdamOptions) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /** One update of `params` in place from `grads` (already averaged and clipped). */
  step(params: Float32Array, grads: Float32Array): void {
    if (params.length !== this.size || grads.length !== this.size) {
      throw new RangeError(`Adam: expected ${this.size} parameters and gradients, got ${params.length} and ${grads.length}`);
    }
    const { lr, beta1, beta2, eps } = this.o;
    const wd = this.o.weightDecay ?? 0;
    this.t++;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2 = 1 - Math.pow(beta2, this.t);
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    const m = this.m, v = this.v;
    for (let i = 0; i < params.length; i++) {
      const g = wd === 0 ? grads[i] : grads[i] + wd * params[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      // p -= lr * m̂ / (sqrt(v̂) + eps), with m̂ = m/bc1, v̂ = v/bc2 (PyTorch's formulation)
      params[i] -= stepSize * m[i] / (Math.sqrt(v[i]) / sqrtBc2 + eps);
    }
  }

  /** The optimizer state (live views; copy before sending them elsewhere). */
  state(): AdamState {
    return { m: this.m, v: this.v, t: this.t };
  }

  load(s: AdamState): void {
    if (s.m.length !== this.size || s.v.length !== this.size) {
      throw new RangeError(`Adam: state has ${s.m.length}/${s.v.length} entries, expected ${this.size}`);
    }
    this.m = Float32Array.from(s.m);
    this.v = Float32Array.from(s.v);
    this.t = s.t;
  }
}

/** L2 norm of one or more buffers taken together (accumulated in float64). */
export function globalNorm(...bufs: Float32Array[]): number {
  let s = 0;
  for (const b of bufs) for (let i = 0; i < b.length; i++) s += b[i] * b[i];
  return Math.sqrt(s);
}

/**
 * Scales `grads` in place so that its L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_:
 * factor maxNorm / (norm + 1e-6), applied only when it is < 1). Returns the norm before clipping.
 */
export function clipByGlobalNorm(grads: Float32Array, maxNorm: number): { norm: number; clipped: boolean } {
  const norm = globalNorm(grads);
  if (!(maxNorm > 0) || !Number.isFinite(norm)) return { norm, clipped: false };
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return { norm, clipped: false };
  for (let i = 0; i < grads.length; i++) grads[i] *= coef;
  return { norm, clipped: true };
}
