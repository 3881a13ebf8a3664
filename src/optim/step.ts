// The coordinator's arithmetic of one step, over one WebAssembly arena (kernels.ts):
//
//   add(part) …      acc = f32(… f32(g_1 + g_2) … + g_k)     gradients of the loss SUM, in task order, folded
//                                                             as they arrive (each copied into the arena first;
//                                                             fp16 parts decoded, embedding rows scattered)
//   sumsq(1/n)       Σ f32(acc/n)²                            the mean's squared norm, for clipping
//   update(…)        params' = Adam(params, f32(f32(acc/n)·c)) from one parameter buffer into the other,
//                                                             `chunk` values at a time, so that each finished
//                                                             chunk can go on the wire while the next is computed
//
// Two parameter buffers alternate (no snapshot copy): the one a round sends stays untouched until the round
// after next writes it, and by then every worker that answered has received it (one pipe, in order). Only
// a dead or evicted peer's queue can still hold it, and whatever it sends back is rejected as stale.
import { Adam, type AdamOptions } from "./adam.js";
import { Arena, Kernels } from "./kernels.js";
import type { SparseBlock } from "../protocol/gradcodec.js";

/** One worker's gradient as it arrived (views of the received frames). */
export interface GradPart {
  /** float32 values, or IEEE half bits (multiplied by `scale` when decoded). */
  values: Float32Array | Uint16Array;
  /** 1 for float32; 1 / the sender's power-of-two scale for fp16. */
  scale: number;
  /** The embedding rows `values` carries (gradcodec.ts's rows layout), or null when it is dense. */
  rows: Uint32Array | null;
}

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
  private readonly half: Uint16Array;
  private parts = 0;

  constructor(readonly size: number, adam: AdamOptions, initial: Float32Array, readonly sparse: SparseBlock | null = null) {
    if (initial.length !== size) throw new RangeError(`initial parameters have ${initial.length} values, expected ${size}`);
    // two parameter buffers, the sum, a staging copy of a part (and of its half floats), Adam's two moments
    this.arena = new Arena(Arena.floatsFor(size, size, size, size, size, size, Math.ceil(size / 2)));
    this.k = new Kernels(this.arena);
    this.bufs = [this.arena.alloc(size), this.arena.alloc(size)];
    this.acc = this.arena.alloc(size);
    this.staging = this.arena.alloc(size);
    this.half = this.arena.allocHalf(size);
    this.adam = new Adam(size, adam, this.arena);
    this.bufs[0].set(initial);
  }

  /** The current parameters (a view into the arena: changes with `update`; copy to keep). */
  get params(): Float32Array { return this.bufs[this.turn]!; }

  /** Forget the sum: the next `add` starts a new one. */
  reset(): void { this.parts = 0; }

  /** Parts folded into the sum since `reset`. */
  get folded(): number { return this.parts; }

  /** Fold one gradient into the sum (callers keep task order: float addition is not associative). A plain
   *  Float32Array is a dense float32 gradient. */
  add(part: GradPart | Float32Array): void {
    const p: GradPart = part instanceof Float32Array ? { values: part, scale: 1, rows: null } : part;
    const first = this.parts === 0;
    const n = p.values.length;
    const want = p.rows && this.sparse ? this.size - (this.sparse.rows - p.rows.length) * this.sparse.width : this.size;
    if (n !== want || (p.rows && !this.sparse)) throw new RangeError(`gradient has ${n} values${p.rows ? ` with ${p.rows.length} rows` : ""}, expected ${want}`);
    let vals: Float32Array;
    if (p.values instanceof Uint16Array) {
      this.half.set(p.values);
      const direct = first && !p.rows; // the first dense part decodes straight into the sum
      this.k.half(direct ? this.acc : this.staging, this.half.subarray(0, n), p.scale, 0, n);
      this.parts++;
      if (direct) return;
      vals = this.staging.subarray(0, n);
    } else {
      vals = p.values;
      this.parts++;
    }
    if (!p.rows) {
      if (first) this.acc.set(vals);
      else this.foldAt(0, vals);
      return;
    }
    // rows: the values before and after the embedding block are dense; the block has R rows of E
    const b = this.sparse!, E = b.width, end = b.offset + b.rows * E, rows = p.rows, tail = b.offset + rows.length * E;
    if (first) {
      this.acc.set(vals.subarray(0, b.offset), 0);
      this.acc.set(vals.subarray(tail), end);
      this.acc.fill(0, b.offset, end);
      for (let r = 0; r < rows.length; r++) this.acc.set(vals.subarray(b.offset + r * E, b.offset + (r + 1) * E), b.offset + rows[r]! * E);
      return;
    }
    if (b.offset > 0) this.foldAt(0, vals.subarray(0, b.offset));
    this.foldAt(end, vals.subarray(tail));
    const acc = this.acc;
    for (let r = 0; r < rows.length; r++) {
      const d = b.offset + rows[r]! * E, s = b.offset + r * E;
      for (let j = 0; j < E; j++) acc[d + j] = acc[d + j]! + vals[s + j]!;
    }
  }

  /** acc[at + i] = f32(acc[at + i] + src[i]) — SIMD when src is in the arena (else copied there first). */
  private foldAt(at: number, src: Float32Array): void {
    const n = src.length;
    if (!this.arena.owns(src)) { this.staging.set(src); src = this.staging.subarray(0, n); }
    this.k.fold(this.acc.subarray(at, at + n), src, 0, n);
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
