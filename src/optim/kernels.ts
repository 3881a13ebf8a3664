// The coordinator's hot loops over the flat vector (N floats) as WebAssembly SIMD, with plain-JS twins
// that give bit-identical results (the tests compare them). The three of the step:
//
//   fold(acc, part)            acc[i] = f32(acc[i] + part[i])                      (sum in task order)
//   sumsq(acc, scale)          Σ f32(acc[i]·scale)², in double, four lanes i mod 4  (norm of the mean)
//   adam(pIn → pOut, acc, m, v, scale, coef, …)                                    (mean → clip → Adam)
//        g = f32(f32(acc[i]·scale)·coef)  [+ wd·pIn[i]]                  (the mean and the clip, as sumsq)
//        m = β1·m + (1−β1)·g;  v = β2·v + ((1−β2)·g)·g
//        pOut[i] = pIn[i] − (stepSize·m) / (√v / √bc2 + ε)          (torch.optim.Adam's formulation)
//
// `scale` = 1/samples and `coef` = the clip factor (1 when not clipping: x·1 is exact, so the same kernel
// serves the unclipped step) multiply in double, each product rounded to float32, as in sumsq. The update
// itself computes in float32, as torch.optim.Adam does for float32 tensors: every operation rounded to
// float32 (the hyperparameters too), in the order written. The SIMD code (f32x4 lanes, IEEE-rounded) and the
// JS twin (each operation in double, then Math.fround — exact for +, −, ×, ÷ and √) give the same bits.
//
// The products f32(acc·scale) and f32(·coef) cost most of Adam's and sumsq's time in f64 lanes, so the kernels
// pick a cheaper form with the same bits where the values allow: a scale that is a float32 value (1/64 for a
// batch of 64: the product of two float32 values is exact in double, so rounding it is one float32 multiply),
// and a clip factor of 1 (no product). Any other value takes the f64 lanes.
//
// The kernels work on arrays inside one WebAssembly.Memory (an `Arena`). A fourth kernel decodes IEEE half
// floats (the fp16 gradient encoding, src/protocol/gradcodec.ts); the row kernels do the same over a list of
// rows (a row-sparse sum: adding a part's rows, its norm's lane sums, Adam over the rows a task reads, and over
// the rows no part touched without reading their zero sum). The module is written in ./wasm-kernels.ts.

import { decodeHalfJs } from "../protocol/gradcodec.js";
import { G_MODES, buildModule, type GMode } from "./wasm-kernels.js";

/** Memory of the WebAssembly kernels: Float32Arrays allocated in it can be passed to `Kernels`. */
export class Arena {
  readonly memory: WebAssembly.Memory;
  private top = 0;
  /** Room for `floats` float32 values (each array padded to 4 floats). */
  constructor(floats: number) {
    const bytes = floats * 4 + 64;
    this.memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
  }
  /** A zeroed array of n floats (16-byte aligned, 4-float padded). Throws when the arena is full. */
  alloc(n: number): Float32Array {
    const padded = Math.ceil(n / 4) * 4;
    if (this.top + padded * 4 > this.memory.buffer.byteLength) throw new RangeError(`arena full: ${n} floats asked, ${(this.memory.buffer.byteLength - this.top) / 4} left`);
    const a = new Float32Array(this.memory.buffer, this.top, n);
    this.top += padded * 4;
    return a;
  }
  /** True for views of this arena's memory (SIMD loads need no alignment beyond the element's). */
  owns(a: Float32Array): boolean {
    return a.buffer === this.memory.buffer;
  }
  /** An Int32Array of n (row offsets for the kernels that loop over rows). */
  allocInt(n: number): Int32Array {
    const f = this.alloc(n);
    return new Int32Array(f.buffer, f.byteOffset, n);
  }
  /** A Float64Array of n, 16-byte aligned (sumsq's lane sums). */
  allocDouble(n: number): Float64Array {
    const f = this.alloc(2 * n);
    return new Float64Array(f.buffer, f.byteOffset, n);
  }
  /** A Uint16Array over a fresh region of room for n halves. */
  allocHalf(n: number): Uint16Array {
    const f = this.alloc(Math.ceil(n / 2));
    return new Uint16Array(f.buffer, f.byteOffset, n);
  }
  /** Floats needed for arrays of these lengths. */
  static floatsFor(...lengths: number[]): number {
    return lengths.reduce((s, n) => s + Math.ceil(n / 4) * 4, 0);
  }
}

export interface AdamHyper {
  beta1: number;
  beta2: number;
  eps: number;
  /** lr / (1 − β1^t) */
  stepSize: number;
  /** √(1 − β2^t) */
  sqrtBc2: number;
  weightDecay: number;
}

// ---- the plain-JS twins (reference; used for arrays outside an arena) ----------------------------------------

export function foldJs(acc: Float32Array, part: Float32Array, start: number, end: number): void {
  for (let i = start; i < end; i++) acc[i] = acc[i]! + part[i]!;
}

/** Σ f32(acc[i]·scale)² over [start, end) (start a multiple of 4): four lane sums over the whole quads,
 *  combined as (s0 + s2) + (s1 + s3), then the tail one by one — the order the SIMD kernel uses. */
export function sumsqJs(acc: Float32Array, start: number, end: number, scale: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const x0 = Math.fround(acc[i]! * scale), x1 = Math.fround(acc[i + 1]! * scale);
    const x2 = Math.fround(acc[i + 2]! * scale), x3 = Math.fround(acc[i + 3]! * scale);
    s0 += x0 * x0; s1 += x1 * x1; s2 += x2 * x2; s3 += x3 * x3;
  }
  return sumsqTail((s0 + s2) + (s1 + s3), acc, i, end, scale);
}

/**
 * The full pass's Σ f32(acc[i]·scale)² over only the given ranges (ascending, disjoint): each value goes to
 * the lane i mod 4 it has in the full pass, and the values past the last whole quad of `acc` are added after
 * the lanes are combined, as sumsqJs and the SIMD kernel do. When every value outside the ranges is zero
 * (adding 0·0 changes no double), this is the full pass's number bit for bit.
 */
export function sumsqLanes(acc: Float32Array, ranges: readonly (readonly [number, number])[], scale: number): number {
  const lanes = [0, 0, 0, 0];
  const q = acc.length - (acc.length % 4);
  const tail: number[] = [];
  for (const [start, end] of ranges) {
    const stop = Math.min(end, q);
    let i = start;
    if ((start & 3) === 0) { // whole quads with the lanes in locals: the same additions in the same order
      let s0 = lanes[0]!, s1 = lanes[1]!, s2 = lanes[2]!, s3 = lanes[3]!;
      for (; i + 4 <= stop; i += 4) {
        const x0 = Math.fround(acc[i]! * scale), x1 = Math.fround(acc[i + 1]! * scale);
        const x2 = Math.fround(acc[i + 2]! * scale), x3 = Math.fround(acc[i + 3]! * scale);
        s0 += x0 * x0; s1 += x1 * x1; s2 += x2 * x2; s3 += x3 * x3;
      }
      lanes[0] = s0; lanes[1] = s1; lanes[2] = s2; lanes[3] = s3;
    }
    for (; i < stop; i++) { const x = Math.fround(acc[i]! * scale); lanes[i & 3] += x * x; }
    for (let j = Math.max(start, q); j < end; j++) tail.push(j);
  }
  return tailSum(acc, tail, scale, (lanes[0]! + lanes[2]!) + (lanes[1]! + lanes[3]!));
}

function tailSum(acc: Float32Array, idx: number[], scale: number, s: number): number {
  for (const i of idx) { const x = Math.fround(acc[i]! * scale); s += x * x; }
  return s;
}

function sumsqTail(s: number, acc: Float32Array, start: number, end: number, scale: number): number {
  for (let i = start; i < end; i++) { const x = Math.fround(acc[i]! * scale); s += x * x; }
  return s;
}

export function adamJs(pIn: Float32Array, pOut: Float32Array, acc: Float32Array, m: Float32Array, v: Float32Array, start: number, end: number, scale: number, coef: number, h: AdamHyper): void {
  const f = Math.fround;
  const b1 = f(h.beta1), c1 = f(1 - h.beta1), b2 = f(h.beta2), c2 = f(1 - h.beta2);
  const ss = f(h.stepSize), sb = f(h.sqrtBc2), eps = f(h.eps), wd = f(h.weightDecay);
  for (let i = start; i < end; i++) {
    const p = pIn[i]!;
    let g = f(f(acc[i]! * scale) * coef); // the mean and the clip as sumsq sees them: scale and coef in double
    if (wd !== 0) g = f(g + f(wd * p));
    const mi = f(f(b1 * m[i]!) + f(c1 * g));
    const vi = f(f(b2 * v[i]!) + f(f(c2 * g) * g));
    m[i] = mi; v[i] = vi;
    pOut[i] = f(p - f(f(ss * mi) / f(f(f(Math.sqrt(vi)) / sb) + eps)));
  }
}

type AdamFn = (pIn: number, pOut: number, acc: number, m: number, v: number, start: number, end: number, scale: number, coef: number, b1: number, c1: number, b2: number, c2: number, ss: number, sb: number, eps: number, wd: number) => void;
type AdamRowsFn = (pIn: number, pOut: number, acc: number, m: number, v: number, starts: number, count: number, width: number, scale: number, coef: number, b1: number, c1: number, b2: number, c2: number, ss: number, sb: number, eps: number, wd: number) => void;
type SumsqFn = (acc: number, start: number, end: number, scale: number) => number;
type SumsqRowsFn = (acc: number, starts: number, count: number, width: number, scale: number, lanes: number) => void;
type ScatterFn = (acc: number, part: number, starts: number, count: number, width: number) => void;

interface Exports {
  fold(acc: number, part: number, start: number, end: number): void;
  /** By scale: a float64 one, or one that is a float32 value. */
  sumsq: { d: SumsqFn; f: SumsqFn };
  sumsqRows: { d: SumsqRowsFn; f: SumsqRowsFn };
  /** By g mode, then weight decay (0 or not). */
  adam: Record<GMode, [AdamFn, AdamFn]>;
  adamRows: Record<GMode, [AdamRowsFn, AdamRowsFn]>;
  adamRowsZero: [AdamRowsFn, AdamRowsFn];
  half(dst: number, src: number, start: number, end: number, scale: number): void;
  halfEncode(dst: number, src: number, start: number, end: number, rebase: number, scale: number, specials: number): number;
  maxAbs(src: number, start: number, end: number, out: number): void;
  scatterAdd: ScatterFn;
  scatterCopy: ScatterFn;
  gatherRows: ScatterFn;
  zeroRows: ScatterFn;
}

let compiled: WebAssembly.Module | null = null;

/** The module's functions, each checked to be one (the module is built above, so a miss is a bug here). */
function exportsOf(inst: WebAssembly.Instance): Exports {
  const fn = <F>(name: string): F => {
    const f = inst.exports[name];
    if (typeof f !== "function") throw new Error(`kernel module lacks the function ${name}`);
    return f as F;
  };
  const byMode = <F>(base: string) => Object.fromEntries(G_MODES.map((g) => {
    const suffix = g === "dd" ? "" : `_${g}`;
    return [g, [fn<F>(`${base}${suffix}`), fn<F>(`${base}Wd${suffix}`)]];
  })) as Record<GMode, [F, F]>;
  return {
    fold: fn("fold"), half: fn("half"), halfEncode: fn("halfEncode"), maxAbs: fn("maxAbs"), scatterAdd: fn("scatterAdd"), scatterCopy: fn("scatterCopy"), gatherRows: fn("gatherRows"), zeroRows: fn("zeroRows"),
    sumsq: { d: fn("sumsq"), f: fn("sumsqF") }, sumsqRows: { d: fn("sumsqRows"), f: fn("sumsqRowsF") },
    adam: byMode<AdamFn>("adam"), adamRows: byMode<AdamRowsFn>("adamRows"), adamRowsZero: [fn("adamRowsZero"), fn("adamRowsZeroWd")],
  };
}

/** A scale that is a float32 value: its products with float32 values can be rounded in float32 directly. */
const isF32 = (x: number) => Math.fround(x) === x;

/** The cheapest g mode that gives f32(f32(acc·scale)·coef)'s bits for these values (with a clip factor, the
 *  float32 scale saves nothing measurable: the general form). */
function gMode(scale: number, coef: number): GMode {
  return coef !== 1 ? "dd" : isF32(scale) ? "f1" : "d1";
}

/** The kernels bound to one arena. Ranges are element indices with `start` a multiple of 4; the SIMD code
 *  runs over whole quads and the JS twin does the tail, so the padding is never touched. */
export class Kernels {
  private readonly x: Exports;
  constructor(readonly arena: Arena) {
    compiled ??= new WebAssembly.Module(buildModule());
    this.x = exportsOf(new WebAssembly.Instance(compiled, { env: { memory: arena.memory } }));
  }
  /** True when every array lives in this arena (else use the JS twins). */
  owns(...arrays: Float32Array[]): boolean {
    for (const a of arrays) if (!this.arena.owns(a)) return false;
    return true;
  }
  private check(start: number, end: number, ...arrays: Float32Array[]): number {
    if (start % 4 !== 0) throw new RangeError(`kernel range must start at a multiple of 4, got ${start}`);
    for (const a of arrays) {
      if (!this.arena.owns(a)) throw new RangeError("kernel argument is not an array of this arena");
      if (end > a.length) throw new RangeError(`kernel range end ${end} is past an array of ${a.length}`);
    }
    return Math.max(start, end - (end % 4));
  }
  fold(acc: Float32Array, part: Float32Array, start = 0, end = acc.length): void {
    const q = this.check(start, end, acc, part);
    this.x.fold(acc.byteOffset, part.byteOffset, start, q);
    foldJs(acc, part, q, end);
  }
  sumsq(acc: Float32Array, scale: number, start = 0, end = acc.length): number {
    const q = this.check(start, end, acc);
    return sumsqTail(this.x.sumsq[isF32(scale) ? "f" : "d"](acc.byteOffset, start, q, scale), acc, q, end, scale);
  }
  /** dst[i] = f32(float(src[i])·scale) for IEEE half bits (scale: a power of two). */
  half(dst: Float32Array, src: Uint16Array, scale: number, start = 0, end = src.length): void {
    if (start % 8 !== 0) throw new RangeError(`kernel range must start at a multiple of 8, got ${start}`);
    if (src.buffer !== this.arena.memory.buffer || src.byteOffset % 2 !== 0) throw new RangeError("kernel argument is not an array of this arena");
    const q = this.check(start, end, dst);
    const q8 = Math.max(start, q - (q % 8));
    this.x.half(dst.byteOffset, src.byteOffset, start, q8, scale);
    decodeHalfJs(src, scale, dst, q8, end);
  }
  /** IEEE half bits of src[i]·2^k for i in [start, end) (multiples of 8; |k| ≤ 100), as gradcodec's encodeHalf
   *  gives them, except in the blocks of 8 whose first index this writes to `specials` (they hold an overflow,
   *  NaN or Inf): returns how many. */
  halfEncode(dst: Uint16Array, src: Float32Array, start: number, end: number, k: number, specials: Int32Array): number {
    if (!Number.isInteger(k) || Math.abs(k) > 100) throw new RangeError(`halfEncode's scale must be 2^k with an integer |k| ≤ 100, got k = ${k}`);
    if (start % 8 !== 0 || end % 8 !== 0) throw new RangeError(`halfEncode's range must be whole blocks of 8, got [${start}, ${end})`);
    this.check(start, end, src);
    const mine = (a: ArrayBufferView) => a.buffer === this.arena.memory.buffer && a.byteOffset % 16 === 0;
    if (!mine(dst) || !mine(specials) || dst.length < end || specials.length < (end - start) / 8) throw new RangeError("halfEncode's output is not an array of this arena with room for the range");
    return this.x.halfEncode(dst.byteOffset, src.byteOffset, start, end, (k - 112) * (1 << 23), 2 ** k, specials.byteOffset);
  }
  /** The largest |src[i]|, NaN skipped (0 for none), as halfScale finds it; `out`: 4 floats of scratch. */
  maxAbs(src: Float32Array, out: Float32Array): number {
    this.check(0, src.length, src);
    if (!this.arena.owns(out) || out.length < 4 || out.byteOffset % 16 !== 0) throw new RangeError("maxAbs's scratch is not 4 aligned floats of this arena");
    const q = src.length - (src.length % 16);
    this.x.maxAbs(src.byteOffset, 0, q, out.byteOffset);
    let max = 0;
    for (let j = 0; j < 4; j++) if (out[j]! > max) max = out[j]!;
    for (let i = q; i < src.length; i++) { const a = Math.abs(src[i]!); if (a > max) max = a; }
    return max;
  }
  /** Row starts in this arena: `count` element offsets, each a multiple of 4 (as `width` is), rows inside
   *  every array given. Checked here once for the kernels that loop over rows. */
  private checkRows(starts: Int32Array, count: number, width: number, ...arrays: Float32Array[]): void {
    if (width % 4 !== 0) throw new RangeError(`row width must be a multiple of 4, got ${width}`);
    if (starts.buffer !== this.arena.memory.buffer || starts.byteOffset % 4 !== 0 || count > starts.length) throw new RangeError("row starts are not an array of this arena");
    const limit = Math.min(...arrays.map((a) => a.length)) - width;
    for (let k = 0; k < count; k++) {
      const s = starts[k]!;
      if (s % 4 !== 0 || s < 0 || s > limit) throw new RangeError(`row start ${s} is not a multiple of 4 inside the arrays`);
    }
    for (const a of arrays) if (!this.arena.owns(a)) throw new RangeError("kernel argument is not an array of this arena");
  }
  /** Rows of `part` (row k at k·width) added into acc at starts[k], as `fold` adds. */
  scatterAdd(acc: Float32Array, part: Float32Array, starts: Int32Array, count: number, width: number): void {
    this.scatter(this.x.scatterAdd, acc, part, starts, count, width);
  }
  /** Rows of `part` copied into acc at starts[k], every bit (the first part of a sum). */
  scatterCopy(acc: Float32Array, part: Float32Array, starts: Int32Array, count: number, width: number): void {
    this.scatter(this.x.scatterCopy, acc, part, starts, count, width);
  }
  /** The rows of `src` at starts[k] copied to row k of `out` (contiguous rows), every bit: scatterCopy undone. */
  gatherRows(out: Float32Array, src: Float32Array, starts: Int32Array, count: number, width: number): void {
    this.scatter(this.x.gatherRows, src, out, starts, count, width);
  }
  /** The rows of acc at starts[k] set to +0. */
  zeroRows(acc: Float32Array, starts: Int32Array, count: number, width: number): void {
    this.checkRows(starts, count, width, acc);
    this.x.zeroRows(acc.byteOffset, 0, starts.byteOffset, count, width);
  }
  private scatter(f: ScatterFn, acc: Float32Array, part: Float32Array, starts: Int32Array, count: number, width: number): void {
    this.checkRows(starts, count, width, acc);
    if (!this.arena.owns(part) || part.length < count * width) throw new RangeError("the contiguous rows are not an array of this arena with room for them");
    f(acc.byteOffset, part.byteOffset, starts.byteOffset, count, width);
  }
  /** sumsq's four lane sums (lanes[0..3], in double) continued over rows in ascending order: with the other
   *  ranges given the same way, lanes combine to the full pass's number (sumsqLanes). */
  sumsqRows(acc: Float32Array, starts: Int32Array, count: number, width: number, scale: number, lanes: Float64Array): void {
    this.checkRows(starts, count, width, acc);
    if (lanes.buffer !== this.arena.memory.buffer || lanes.byteOffset % 16 !== 0 || lanes.length < 4) throw new RangeError("lanes are not 4 aligned doubles of this arena");
    this.x.sumsqRows[isF32(scale) ? "f" : "d"](acc.byteOffset, starts.byteOffset, count, width, scale, lanes.byteOffset);
  }
  /** Adam over `count` rows of `width` values starting at the element offsets in `starts`: one kernel call. */
  adamRows(pIn: Float32Array, pOut: Float32Array, acc: Float32Array, m: Float32Array, v: Float32Array, starts: Int32Array, count: number, width: number, scale: number, coef: number, h: AdamHyper, zero = false): void {
    this.checkRows(starts, count, width, pIn, pOut, acc, m, v);
    const wd = h.weightDecay !== 0 ? 1 : 0;
    const f = zero ? this.x.adamRowsZero[wd] : this.x.adamRows[gMode(scale, coef)][wd];
    f(pIn.byteOffset, pOut.byteOffset, acc.byteOffset, m.byteOffset, v.byteOffset, starts.byteOffset, count, width, scale, coef, h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.stepSize, h.sqrtBc2, h.eps, h.weightDecay);
  }
  adam(pIn: Float32Array, pOut: Float32Array, acc: Float32Array, m: Float32Array, v: Float32Array, start: number, end: number, scale: number, coef: number, h: AdamHyper): void {
    const q = this.check(start, end, pIn, pOut, acc, m, v);
    const f = this.x.adam[gMode(scale, coef)][h.weightDecay === 0 ? 0 : 1];
    f(pIn.byteOffset, pOut.byteOffset, acc.byteOffset, m.byteOffset, v.byteOffset, start, q, scale, coef, h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.stepSize, h.sqrtBc2, h.eps, h.weightDecay);
    adamJs(pIn, pOut, acc, m, v, q, end, scale, coef, h);
  }
}
