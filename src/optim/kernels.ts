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
// The kernels work on arrays inside one WebAssembly.Memory (an `Arena`). A fourth kernel decodes IEEE half
// floats (the fp16 gradient encoding, src/protocol/gradcodec.ts).

import { decodeHalfJs } from "../protocol/gradcodec.js";

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

// ---- a minimal WebAssembly writer ---------------------------------------------------------------------------

function uleb(n: number): number[] {
  const out: number[] = [];
  do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f; n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const str = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

const I32 = 0x7f, F64 = 0x7c, V128 = 0x7b;
const op = {
  get: (i: number) => [0x20, ...uleb(i)], set: (i: number) => [0x21, ...uleb(i)], tee: (i: number) => [0x22, ...uleb(i)],
  i32: (n: number) => [0x41, ...sleb(n)], add32: [0x6a], shl32: [0x74], geU32: [0x4f],
  block: [0x02, 0x40], loop: [0x03, 0x40], end: [0x0b], br: (d: number) => [0x0c, ...uleb(d)], brIf: (d: number) => [0x0d, ...uleb(d)],
  f64add: [0xa0],
  simd: (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm],
};
const load = (off = 0) => op.simd(0x00, 4, ...uleb(off)); //   v128.load align=16
const store = (off = 0) => op.simd(0x0b, 4, ...uleb(off)); //  v128.store align=16
const f64x2Splat = op.simd(0x14);
const promoteLow = op.simd(0x5f); //                            f64x2.promote_low_f32x4
const demote = op.simd(0x5e); //                                f32x4.demote_f64x2_zero
const f32x4Splat = op.simd(0x13);
const f32Demote = [0xb6]; //                                    f32.demote_f64
const [f32x4Sqrt, f32x4Add, f32x4Sub, f32x4Mul, f32x4Div] = [0xe3, 0xe4, 0xe5, 0xe6, 0xe7].map((c) => op.simd(c));
const [f64x2Add, f64x2Mul] = [0xf0, 0xf2].map((c) => op.simd(c));
const extract64 = (lane: number) => op.simd(0x21, lane);
/** i8x16.shuffle of a f32x4 local with itself: lanes 2,3 into lanes 0,1 (for promote_low). */
const highOf = (local: number) => [...op.get(local), ...op.get(local), ...op.simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15)];
/** i8x16.shuffle of two demoted vectors [a,b,0,0],[c,d,0,0] → [a,b,c,d]. */
const joinLow = op.simd(0x0d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);

/** for (i = start·4; i < end·4; i += 16) body — `i` is a byte offset local; start/end are element locals. */
function loop4(iLocal: number, startLocal: number, endLocal: number, body: number[]): number[] {
  return [
    ...op.get(startLocal), ...op.i32(2), ...op.shl32, ...op.set(iLocal),
    ...op.get(endLocal), ...op.i32(2), ...op.shl32, ...op.set(endLocal),
    ...op.block, ...op.loop,
    ...op.get(iLocal), ...op.get(endLocal), ...op.geU32, ...op.brIf(1),
    ...body,
    ...op.get(iLocal), ...op.i32(16), ...op.add32, ...op.set(iLocal),
    ...op.br(0), ...op.end, ...op.end,
  ];
}
const addr = (base: number, i: number) => [...op.get(base), ...op.get(i), ...op.add32];

// fold(acc, part, start, end)
function foldFn(): { type: number[]; locals: number[][]; body: number[] } {
  const [acc, part, start, end, i] = [0, 1, 2, 3, 4];
  const body = loop4(i, start, end, [
    ...addr(acc, i), ...addr(acc, i), ...load(), ...addr(part, i), ...load(), ...f32x4Add, ...store(),
  ]);
  return { type: [0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([])], locals: [[1, I32]], body };
}

// sumsq(acc, start, end, scale) → f64
function sumsqFn(): { type: number[]; locals: number[][]; body: number[] } {
  const [acc, start, end, scale, i, sc, s01, s23, x, y] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  // y = f32(half·scale) as f64x2; its square added to the lane sums
  const half = (hi: boolean, sum: number) => [
    ...op.get(sum),
    ...(hi ? highOf(x) : op.get(x)), ...promoteLow, ...op.get(sc), ...f64x2Mul, ...demote, ...promoteLow,
    ...op.tee(y), ...op.get(y), ...f64x2Mul, ...f64x2Add, ...op.set(sum),
  ];
  const body = [
    ...op.get(scale), ...f64x2Splat, ...op.set(sc),
    ...loop4(i, start, end, [...addr(acc, i), ...load(), ...op.set(x), ...half(false, s01), ...half(true, s23)]),
    // (lane0 + lane2) + (lane1 + lane3), as sumsqJs
    ...op.get(s01), ...extract64(0), ...op.get(s23), ...extract64(0), ...op.f64add,
    ...op.get(s01), ...extract64(1), ...op.get(s23), ...extract64(1), ...op.f64add,
    ...op.f64add,
  ];
  return { type: [0x60, ...vec([[I32], [I32], [I32], [F64]]), ...vec([[F64]])], locals: [[1, I32], [5, V128]], body };
}

// adam(pIn, pOut, acc, m, v, start, end, scale, coef, b1, c1, b2, c2, stepSize, sqrtBc2, eps, wd): g from the
// f64 lanes of scale and coef; the other scalars rounded to f32 once; then four lanes in float32, as adamJs
function adamFn(withWd: boolean): { type: number[]; locals: number[][]; body: number[] } {
  const [pIn, pOut, acc, m, v, start, end] = [0, 1, 2, 3, 4, 5, 6];
  const scalars = ["scale", "coef", "b1", "c1", "b2", "c2", "ss", "sb", "eps", "wd"];
  const P = 7; // first f64 parameter
  const i = P + scalars.length; // i32 local
  // v128 locals: scale and coef in two f64 lanes, the others in four f32 lanes
  const splat = (name: string) => i + 1 + scalars.indexOf(name);
  const [vp, vg, vm, vv] = [i + 1 + scalars.length, i + 2 + scalars.length, i + 3 + scalars.length, i + 4 + scalars.length];
  const S = (n: string) => op.get(splat(n));
  const inF64 = (n: string) => n === "scale" || n === "coef";
  // lanes 0,1 or 2,3 of vg: f32(f32(acc·scale)·coef) in double, demoted to [x, y, 0, 0]
  const gHalf = (hi: boolean) => [
    ...(hi ? highOf(vg) : op.get(vg)), ...promoteLow, ...S("scale"), ...f64x2Mul, ...demote, ...promoteLow, ...S("coef"), ...f64x2Mul, ...demote,
  ];
  const body = [
    ...scalars.flatMap((n, k) => [...op.get(P + k), ...(inF64(n) ? f64x2Splat : [...f32Demote, ...f32x4Splat]), ...op.set(splat(n))]),
    ...loop4(i, start, end, [
      ...addr(pIn, i), ...load(), ...op.set(vp),
      // g = f32(f32(acc·scale)·coef) [+ wd·p]
      ...addr(acc, i), ...load(), ...op.set(vg), ...gHalf(false), ...gHalf(true), ...joinLow,
      ...(withWd ? [...S("wd"), ...op.get(vp), ...f32x4Mul, ...f32x4Add] : []),
      ...op.set(vg),
      // m' = b1·m + c1·g;  v' = b2·v + (c2·g)·g
      ...S("b1"), ...addr(m, i), ...load(), ...f32x4Mul, ...S("c1"), ...op.get(vg), ...f32x4Mul, ...f32x4Add, ...op.set(vm),
      ...S("b2"), ...addr(v, i), ...load(), ...f32x4Mul, ...S("c2"), ...op.get(vg), ...f32x4Mul, ...op.get(vg), ...f32x4Mul, ...f32x4Add, ...op.set(vv),
      ...addr(m, i), ...op.get(vm), ...store(),
      ...addr(v, i), ...op.get(vv), ...store(),
      // p' = p − (ss·m') / (√v' / sb + eps)
      ...addr(pOut, i), ...op.get(vp),
      ...S("ss"), ...op.get(vm), ...f32x4Mul,
      ...op.get(vv), ...f32x4Sqrt, ...S("sb"), ...f32x4Div, ...S("eps"), ...f32x4Add,
      ...f32x4Div, ...f32x4Sub, ...store(),
    ]),
  ];
  const params = [...Array(7).fill([I32]), ...Array(scalars.length).fill([F64])] as number[][];
  return { type: [0x60, ...vec(params), ...vec([])], locals: [[1, I32], [scalars.length + 4, V128]], body };
}

// half(dst, src, start, end, scale): dst[i] = f32(float(src[i])·scale) for IEEE half bits src (u16), i in
// [start, end) with start, end multiples of 8. float(h): (h & 0x7fff) << 13 read as float32 times 2^112 is
// exact for zero, subnormals and normals; exponent 31 (Inf/NaN) is rebuilt; then the sign bit.
function halfFn(): { type: number[]; locals: number[][]; body: number[] } {
  const [dst, src, start, end, scale, i, h, w, em, sc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const i32Splat = (n: number) => [...op.i32(n), ...op.simd(0x11)];
  const f32Splat = (bits: number) => [0x43, bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, (bits >>> 24) & 0xff, ...op.simd(0x13)];
  const [and, or, bitselect, shl, gtS, f32x4Mul] = [op.simd(0x4e), op.simd(0x50), op.simd(0x52), op.simd(0xab), op.simd(0x3b), op.simd(0xe6)];
  const convert = (hi: boolean) => [
    ...op.get(h), ...op.simd(hi ? 0xaa : 0xa9), ...op.set(w), //                  u16 → u32 lanes
    ...op.get(w), ...i32Splat(0x7fff), ...and, ...op.set(em),
    // Inf/NaN: (em << 13) | 0x7f800000; otherwise f32(em << 13) · 2^112
    ...op.get(em), ...op.i32(13), ...shl, ...i32Splat(0x7f800000), ...or,
    ...op.get(em), ...op.i32(13), ...shl, ...f32Splat(0x77800000), ...f32x4Mul,
    ...op.get(em), ...i32Splat(0x7bff), ...gtS, ...bitselect,
    ...op.get(w), ...i32Splat(0x8000), ...and, ...op.i32(16), ...shl, ...or, //   sign
    ...op.get(sc), ...f32x4Mul,
  ];
  const body = [
    ...op.get(scale), 0xb6 /* f32.demote_f64 */, ...op.simd(0x13), ...op.set(sc),
    ...op.get(start), ...op.i32(1), ...op.shl32, ...op.set(i), //                   i: byte offset into src
    ...op.get(end), ...op.i32(1), ...op.shl32, ...op.set(end),
    ...op.block, ...op.loop,
    ...op.get(i), ...op.get(end), ...op.geU32, ...op.brIf(1),
    ...addr(src, i), ...load(), ...op.set(h),
    // dst byte offset = 2·i
    ...op.get(dst), ...op.get(i), ...op.i32(1), ...op.shl32, ...op.add32, ...convert(false), ...store(0),
    ...op.get(dst), ...op.get(i), ...op.i32(1), ...op.shl32, ...op.add32, ...convert(true), ...store(16),
    ...op.get(i), ...op.i32(16), ...op.add32, ...op.set(i),
    ...op.br(0), ...op.end, ...op.end,
  ];
  return { type: [0x60, ...vec([[I32], [I32], [I32], [I32], [F64]]), ...vec([])], locals: [[1, I32], [4, V128]], body };
}

function buildModule(): Uint8Array<ArrayBuffer> {
  const fns = [foldFn(), sumsqFn(), adamFn(false), adamFn(true), halfFn()];
  const names = ["fold", "sumsq", "adam", "adamWd", "half"];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(fns.map((f) => f.type))),
    ...section(2, vec([[...str("env"), ...str("memory"), 0x02, 0x00, 0x01]])), // memory, min 1 page
    ...section(3, vec(fns.map((_, k) => uleb(k)))),
    ...section(7, vec(names.map((n, k) => [...str(n), 0x00, ...uleb(k)]))),
    ...section(10, vec(fns.map((f) => {
      const code = [...vec(f.locals.map(([count, type]) => [...uleb(count!), type!])), ...f.body, ...op.end];
      return [...uleb(code.length), ...code];
    }))),
  ];
  return new Uint8Array(bytes);
}

interface Exports {
  fold(acc: number, part: number, start: number, end: number): void;
  sumsq(acc: number, start: number, end: number, scale: number): number;
  adam(pIn: number, pOut: number, acc: number, m: number, v: number, start: number, end: number, scale: number, coef: number, b1: number, c1: number, b2: number, c2: number, ss: number, sb: number, eps: number, wd: number): void;
  adamWd: Exports["adam"];
  half(dst: number, src: number, start: number, end: number, scale: number): void;
}

let compiled: WebAssembly.Module | null = null;

/** The module's functions, each checked to be one (the module is built above, so a miss is a bug here). */
function exportsOf(inst: WebAssembly.Instance): Exports {
  const fn = <K extends keyof Exports>(name: K): Exports[K] => {
    const f = inst.exports[name];
    if (typeof f !== "function") throw new Error(`kernel module lacks the function ${name}`);
    return f as Exports[K];
  };
  return { fold: fn("fold"), sumsq: fn("sumsq"), adam: fn("adam"), adamWd: fn("adamWd"), half: fn("half") };
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
    return sumsqTail(this.x.sumsq(acc.byteOffset, start, q, scale), acc, q, end, scale);
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
  /** Adam over rows of `width` values starting at the given element offsets (each a multiple of 4, as is
   *  `width`): one kernel call a row, the arrays checked once. */
  adamRows(pIn: Float32Array, pOut: Float32Array, acc: Float32Array, m: Float32Array, v: Float32Array, starts: ArrayLike<number>, width: number, scale: number, coef: number, h: AdamHyper): void {
    if (width % 4 !== 0) throw new RangeError(`row width must be a multiple of 4, got ${width}`);
    let last = 0;
    for (let i = 0; i < starts.length; i++) last = Math.max(last, starts[i]! + width);
    this.check(0, last, pIn, pOut, acc, m, v);
    const f = h.weightDecay === 0 ? this.x.adam : this.x.adamWd;
    const [a, b, c, d, e] = [pIn.byteOffset, pOut.byteOffset, acc.byteOffset, m.byteOffset, v.byteOffset];
    const [b1, c1, b2, c2] = [h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2];
    for (let i = 0; i < starts.length; i++) {
      const s = starts[i]!;
      if (s % 4 !== 0) throw new RangeError(`row must start at a multiple of 4, got ${s}`);
      f(a, b, c, d, e, s, s + width, scale, coef, b1, c1, b2, c2, h.stepSize, h.sqrtBc2, h.eps, h.weightDecay);
    }
  }
  adam(pIn: Float32Array, pOut: Float32Array, acc: Float32Array, m: Float32Array, v: Float32Array, start: number, end: number, scale: number, coef: number, h: AdamHyper): void {
    const q = this.check(start, end, pIn, pOut, acc, m, v);
    const f = h.weightDecay === 0 ? this.x.adam : this.x.adamWd;
    f(pIn.byteOffset, pOut.byteOffset, acc.byteOffset, m.byteOffset, v.byteOffset, start, q, scale, coef, h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.stepSize, h.sqrtBc2, h.eps, h.weightDecay);
    adamJs(pIn, pOut, acc, m, v, q, end, scale, coef, h);
  }
}
