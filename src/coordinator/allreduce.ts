// The coordinator's arithmetic of one step, over one WebAssembly arena (kernels.ts):
//
//   add(part) …      acc = f32(… f32(g_1 + g_2) … + g_k)     gradients of the loss SUM, in task order, folded
//                                                             as they arrive (each copied into the arena first)
//   sumsq(1/n)       Σ f32(acc/n)²                            the mean's squared norm, for clipping
//   update(…)        params' = Adam(params, f32(f32(acc/n)·c)) from one parameter buffer into the other,
//                                                             `chunk` values at a time, so that each finished
//                                                             chunk can go on the wire while the next is computed
//
// Two parameter buffers alternate (no snapshot copy): the one a round sends stays untouched until the round
// after next writes it, and by then every worker that answered has received it (one pipe, in order). Only
// a dead or evicted peer's queue can still hold it, and whatever it sends back is rejected as stale.
import { Adam, type AdamOptions } from "./optimizer.js";
import { Arena, Kernels } from "./kernels.js";

/** Parameters per broadcast chunk (1 MiB of float32). */
export const PARAM_CHUNK = 1 << 18;

export class StepArithmetic {
  readonly arena: Arena;
  readonly adam: Adam;
  private readonly k: Kernels;
  private readonly bufs: [Float32Array, Float32Array];
  private turn = 0;
  private readonly acc: Float32Array;
  private readonly staging: Float32Array;
  private parts = 0;

  constructor(readonly size: number, adam: AdamOptions, initial: Float32Array) {
    if (initial.length !== size) throw new RangeError(`initial parameters have ${initial.length} values, expected ${size}`);
    // two parameter buffers, the sum, a staging copy of a part, Adam's two moments
    this.arena = new Arena(Arena.floatsFor(size, size, size, size, size, size));
    this.k = new Kernels(this.arena);
    this.bufs = [this.arena.alloc(size), this.arena.alloc(size)];
    this.acc = this.arena.alloc(size);
    this.staging = this.arena.alloc(size);
    this.adam = new Adam(size, adam, this.arena);
    this.bufs[0].set(initial);
  }

  /** The current parameters (a view into the arena: changes with `update`; copy to keep). */
  get params(): Float32Array { return this.bufs[this.turn]!; }

  /** Forget the sum: the next `add` starts a new one. */
  reset(): void { this.parts = 0; }

  /** Parts folded into the sum since `reset`. */
  get folded(): number { return this.parts; }

  /** Fold one gradient into the sum (callers keep task order: float addition is not associative). */
  add(part: Float32Array): void {
    if (part.length !== this.size) throw new RangeError(`gradient has ${part.length} values, expected ${this.size}`);
    if (this.parts === 0) this.acc.set(part);
    else { this.staging.set(part); this.k.fold(this.acc, this.staging); }
    this.parts++;
  }

  /** Σ f32(acc·scale)² in double (non-finite when any summed value is NaN or ±Inf). */
  sumsq(scale: number): number {
    return this.k.sumsq(this.acc, scale);
  }

  /**
   * One Adam step from the current parameters into the other buffer, `chunk` values at a time: yields each
   * finished range [start, end) of the new parameters; they become `params` when the last range is done.
   */
  *update(scale: number, coef: number, chunk = PARAM_CHUNK): Generator<{ start: number; end: number; params: Float32Array }> {
    const h = this.adam.begin();
    const pIn = this.bufs[this.turn]!, pOut = this.bufs[this.turn ^ 1]!;
    const step = Math.max(4, chunk - (chunk % 4));
    for (let start = 0; start < this.size; start += step) {
      const end = Math.min(this.size, start + step);
      this.adam.apply(h, pIn, pOut, this.acc, start, end, scale, coef);
      yield { start, end, params: pOut };
    }
    this.turn ^= 1;
  }
}
