// The coordinator's kernels (./kernels.ts) as one WebAssembly module, written out here byte by byte (no
// toolchain): a minimal writer of the binary format, then each function's code. Every function works on
// arrays inside the memory it imports (an Arena) and walks them four float32 lanes at a time (v128).
//
//   fold, sumsq(F), adam(Wd), half,      over a range [start, end) of element indices
//   halfEncode, maxAbs
//   scatterAdd, scatterCopy, gatherRows, over rows: `count` element offsets (an i32 array in the memory) of
//   zeroRows, sumsqRows(F), adamRows(Wd), rows of `width` values each (…Zero: rows whose sum is +0, not read)
//   adamRowsZero(Wd)
//
// The adam kernels come in three g modes (GMode below; `adam_f1` …), sumsq in two: cheaper forms of the same
// products for a scale that is a float32 value and a clip factor of 1, chosen in ./kernels.ts.
//
// Each computes what its plain-JS twin in ./kernels.ts computes, bit for bit (the tests compare them).

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
  i32: (n: number) => [0x41, ...sleb(n)], add32: [0x6a], mul32: [0x6c], shl32: [0x74], geU32: [0x4f],
  load32: [0x28, 2, 0], //                                      i32.load align=4
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

/** Locals of rowLoop: the byte pointer into the starts, its end, and a row's first and last element. */
interface RowLocals { kb: number; kend: number; rs: number; re: number }
/** for each of `count` rows (element offsets at `starts`, an i32 array): rs = start, re = start + width, body
 *  (which may loop4 over [rs, re)). */
function rowLoop(starts: number, count: number, width: number, l: RowLocals, body: number[]): number[] {
  return [
    ...op.get(starts), ...op.set(l.kb),
    ...op.get(starts), ...op.get(count), ...op.i32(2), ...op.shl32, ...op.add32, ...op.set(l.kend),
    ...op.block, ...op.loop,
    ...op.get(l.kb), ...op.get(l.kend), ...op.geU32, ...op.brIf(1),
    ...op.get(l.kb), ...op.load32, ...op.tee(l.rs), ...op.get(width), ...op.add32, ...op.set(l.re),
    ...body,
    ...op.get(l.kb), ...op.i32(4), ...op.add32, ...op.set(l.kb),
    ...op.br(0), ...op.end, ...op.end,
  ];
}

// fold(acc, part, start, end)
function foldFn(): { type: number[]; locals: number[][]; body: number[] } {
  const [acc, part, start, end, i] = [0, 1, 2, 3, 4];
  const body = loop4(i, start, end, [
    ...addr(acc, i), ...addr(acc, i), ...load(), ...addr(part, i), ...load(), ...f32x4Add, ...store(),
  ]);
  return { type: [0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([])], locals: [[1, I32]], body };
}

/** sumsq's loop body at byte offset `i` of acc: x = four floats; y = f32(x·scale) in two f64x2 halves, their
 *  squares added to the lane sums s01 (lanes 0, 1) and s23 (lanes 2, 3). */
function sumsqQuad(l: { acc: number; i: number; sc: number; s01: number; s23: number; x: number; y: number }, f32Scale: boolean): number[] {
  // f32Scale: `sc` holds the scale as four float32 lanes (it is a float32 value): x·scale rounded once in float32
  // is the double product rounded to float32 (that product is exact), so the squares are the same
  const scaled = (hi: boolean) => f32Scale
    ? [...(hi ? highOf(l.x) : op.get(l.x)), ...promoteLow]
    : [...(hi ? highOf(l.x) : op.get(l.x)), ...promoteLow, ...op.get(l.sc), ...f64x2Mul, ...demote, ...promoteLow];
  const half = (hi: boolean, sum: number) => [
    ...op.get(sum), ...scaled(hi), ...op.tee(l.y), ...op.get(l.y), ...f64x2Mul, ...f64x2Add, ...op.set(sum),
  ];
  const x = f32Scale ? [...load(), ...op.get(l.sc), ...f32x4Mul] : load();
  return [...addr(l.acc, l.i), ...x, ...op.set(l.x), ...half(false, l.s01), ...half(true, l.s23)];
}

/** The scale's splat: two float64 lanes, or four float32 lanes (f32Scale). */
const scaleSplat = (f32Scale: boolean) => (f32Scale ? [...f32Demote, ...f32x4Splat] : f64x2Splat);

// sumsq(acc, start, end, scale) → f64; sumsqF: the same for a scale that is a float32 value
function sumsqFn(f32Scale = false): { type: number[]; locals: number[][]; body: number[] } {
  const [acc, start, end, scale, i, sc, s01, s23, x, y] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const body = [
    ...op.get(scale), ...scaleSplat(f32Scale), ...op.set(sc),
    ...loop4(i, start, end, sumsqQuad({ acc, i, sc, s01, s23, x, y }, f32Scale)),
    // (lane0 + lane2) + (lane1 + lane3), as sumsqJs
    ...op.get(s01), ...extract64(0), ...op.get(s23), ...extract64(0), ...op.f64add,
    ...op.get(s01), ...extract64(1), ...op.get(s23), ...extract64(1), ...op.f64add,
    ...op.f64add,
  ];
  return { type: [0x60, ...vec([[I32], [I32], [I32], [F64]]), ...vec([[F64]])], locals: [[1, I32], [5, V128]], body };
}

// scatterAdd(acc, part, starts, count, width): row k of `part` (contiguous rows of `width`) added into acc at
// starts[k] (acc = f32(acc + part), as fold); scatterCopy: copied there instead (acc = part, every bit);
// gatherRows: the other way, the row at starts[k] of acc copied to row k of `part`; zeroRows: the rows of acc
// set to +0 (`part` unused)
function scatterFn(mode: "add" | "copy" | "gather" | "zero"): { type: number[]; locals: number[][]; body: number[] } {
  const [acc, part, starts, count, width, i, pp, kb, kend, rs, re] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const value = { add: [...addr(acc, i), ...load(), ...op.get(pp), ...load(), ...f32x4Add], copy: [...op.get(pp), ...load()], zero: [...op.i32(0), ...op.simd(0x11)], gather: [] }[mode];
  const move = mode === "gather" ? [...op.get(pp), ...addr(acc, i), ...load(), ...store()] : [...addr(acc, i), ...value, ...store()];
  const body = [
    ...op.get(part), ...op.set(pp),
    ...rowLoop(starts, count, width, { kb, kend, rs, re }, loop4(i, rs, re, [
      ...move,
      ...op.get(pp), ...op.i32(16), ...op.add32, ...op.set(pp),
    ])),
  ];
  return { type: [0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), ...vec([])], locals: [[6, I32]], body };
}

// sumsqRows(acc, starts, count, width, scale, lanes): the four lane sums of sumsq (two f64x2 at `lanes`) go on
// over the rows, in ascending order of their starts; sumsqRowsF: for a scale that is a float32 value
function sumsqRowsFn(f32Scale = false): { type: number[]; locals: number[][]; body: number[] } {
  const [acc, starts, count, width, scale, lanes, i, kb, kend, rs, re, sc, s01, s23, x, y] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
  const body = [
    ...op.get(scale), ...scaleSplat(f32Scale), ...op.set(sc),
    ...op.get(lanes), ...load(), ...op.set(s01), ...op.get(lanes), ...load(16), ...op.set(s23),
    ...rowLoop(starts, count, width, { kb, kend, rs, re }, loop4(i, rs, re, sumsqQuad({ acc, i, sc, s01, s23, x, y }, f32Scale))),
    ...op.get(lanes), ...op.get(s01), ...store(), ...op.get(lanes), ...op.get(s23), ...store(16),
  ];
  return { type: [0x60, ...vec([[I32], [I32], [I32], [I32], [F64], [I32]]), ...vec([])], locals: [[5, I32], [5, V128]], body };
}

/** How a kernel forms g = f32(f32(acc·scale)·coef) (double products, each rounded to float32). "dd": both
 *  products in f64 lanes (any scale and coef). The others give the same bits with less work, for the values
 *  they are chosen for (kernels.ts): a coef of 1 (x·1 = x: no product), and "f1" also a scale that is a float32
 *  value (a product of two float32 values is exact in double, so rounding it once is one float32 multiply). */
export type GMode = "dd" | "d1" | "f1";

// adam(pIn, pOut, acc, m, v, start, end, scale, coef, b1, c1, b2, c2, stepSize, sqrtBc2, eps, wd): g from the
// f64 lanes of scale and coef (or as `g` says); the other scalars rounded to f32 once; then four lanes in float32,
// as adamJs
// adamRows(pIn, pOut, acc, m, v, starts, count, width, scale, …): the same over `count` rows of `width`
// adamRowsZero(…): adamRows where the sum is +0 (rows no gradient touched): g = +0 without reading acc — the
// same bits
function adamFn(withWd: boolean, rows = false, zero = false, g: GMode = "dd"): { type: number[]; locals: number[][]; body: number[] } {
  const [pIn, pOut, acc, m, v, start, end] = [0, 1, 2, 3, 4, 5, 6];
  const [starts, count, width] = [5, 6, 7];
  const scalars = ["scale", "coef", "b1", "c1", "b2", "c2", "ss", "sb", "eps", "wd"];
  const P = rows ? 8 : 7; // first f64 parameter
  const i = P + scalars.length; // i32 locals: i (and the row loop's)
  const rl: RowLocals = { kb: i + 1, kend: i + 2, rs: i + 3, re: i + 4 };
  const V = i + (rows ? 5 : 1); // first v128 local
  // v128 locals: scale and coef in two f64 lanes, the others in four f32 lanes
  const splat = (name: string) => V + scalars.indexOf(name);
  const [vp, vg, vm, vv] = [V + scalars.length, V + 1 + scalars.length, V + 2 + scalars.length, V + 3 + scalars.length];
  const S = (n: string) => op.get(splat(n));
  const inF64 = (n: string) => (n === "scale" && g !== "f1") || n === "coef";
  // lanes 0,1 or 2,3 of vg (acc): f32(acc·scale), then f32(·coef) unless "d1", in double, demoted to [x, y, 0, 0]
  const gHalf = (hi: boolean) => [
    ...(hi ? highOf(vg) : op.get(vg)), ...promoteLow, ...S("scale"), ...f64x2Mul, ...demote,
    ...(g === "dd" ? [...promoteLow, ...S("coef"), ...f64x2Mul, ...demote] : []),
  ];
  // "f1": one float32 multiply (the scale in four float32 lanes)
  const gOf = g === "f1"
    ? [...addr(acc, i), ...load(), ...S("scale"), ...f32x4Mul]
    : [...addr(acc, i), ...load(), ...op.set(vg), ...gHalf(false), ...gHalf(true), ...joinLow];
  const each = (from: number, to: number, inner: number[]) => (rows ? rowLoop(starts, count, width, rl, loop4(i, rl.rs, rl.re, inner)) : loop4(i, from, to, inner));
  const body = [
    ...scalars.flatMap((n, k) => [...op.get(P + k), ...(inF64(n) ? f64x2Splat : [...f32Demote, ...f32x4Splat]), ...op.set(splat(n))]),
    ...each(start, end, [
      ...addr(pIn, i), ...load(), ...op.set(vp),
      // g = f32(f32(acc·scale)·coef) [+ wd·p]
      ...(zero ? [...op.i32(0), ...op.simd(0x11)] : gOf),
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
  const params = [...Array(P).fill([I32]), ...Array(scalars.length).fill([F64])] as number[][];
  return { type: [0x60, ...vec(params), ...vec([])], locals: [[rows ? 5 : 1, I32], [scalars.length + 4, V128]], body };
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

// halfEncode(dst, src, start, end, rebase, scale, specials) → count: for i in [start, end) (multiples of 8), the
// IEEE half bits of src[i]·scale (scale = 2^k, rebase = (k − 112)·2^23) that gradcodec's encodeHalf gives. A value
// whose half is normal gets its sign, the rebased exponent and the mantissa rounded to 10 bits on the float32
// bits (ties to even, a carry into the exponent included). Below that (a subnormal half, zero): the product
// (exact, or a float32 subnormal that rounds to a zero half either way) plus 0.5, whose float32 rounding to a
// multiple of 2^-24 is the half's rounding, less 0.5's bits. A block of 8 with a value above the halves (an
// overflow, NaN, Inf) is left to the caller: its first index goes to `specials` (an i32 array), and the number
// of such blocks is returned.
function halfEncodeFn(): { type: number[]; locals: number[][]; body: number[] } {
  const [dst, src, start, end, rebase, scale, specials, i, n, rbv, scv, b, a, t, sg, r0, r1, ok0, ok1] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];
  const splat = (x: number) => [...op.i32(x), ...op.simd(0x11)];
  const [and, or, bitselect, ltS, ltU, add, sub] = [0x4e, 0x50, 0x52, 0x39, 0x3a, 0xae, 0xb1].map((c) => op.simd(c));
  const shrU = (k: number) => [...op.i32(k), ...op.simd(0xad)];
  const HALF = 0x3f000000; //                                                 0.5 as float32 bits
  const quad = (off: number, res: number, ok: number) => [
    ...addr(src, i), ...load(off), ...op.set(b),
    ...op.get(b), ...splat(0x7fffffff), ...and, ...op.set(a),
    ...op.get(a), ...op.get(rbv), ...add, ...op.set(t),
    ...op.get(b), ...shrU(16), ...splat(0x8000), ...and, ...op.set(sg),
    // a normal half: sign | (t + 0xfff + ((t >>> 13) & 1)) >>> 13
    ...op.get(sg), ...op.get(t), ...splat(0xfff), ...add, ...op.get(t), ...shrU(13), ...splat(1), ...and, ...add, ...shrU(13), ...or,
    // below: sign | (bits(f32(f32(|x|·scale) + 0.5)) − bits(0.5))
    ...op.get(sg), ...op.get(a), ...op.get(scv), ...f32x4Mul, ...splat(HALF), ...f32x4Add, ...splat(HALF), ...sub, ...or,
    ...op.get(t), ...splat(0x00800000), ...sub, ...splat(0x0f000000), ...ltU, ...op.tee(ok),
    ...bitselect, ...op.set(res),
    ...op.get(ok), ...op.get(t), ...splat(0x00800000), ...ltS, ...or, ...op.set(ok),
  ];
  const body = [
    ...op.get(rebase), ...op.simd(0x11), ...op.set(rbv),
    ...op.get(scale), ...f32Demote, ...f32x4Splat, ...op.set(scv),
    ...op.get(start), ...op.i32(2), ...op.shl32, ...op.set(i), //                   i: byte offset into src
    ...op.get(end), ...op.i32(2), ...op.shl32, ...op.set(end),
    ...op.block, ...op.loop,
    ...op.get(i), ...op.get(end), ...op.geU32, ...op.brIf(1),
    ...quad(0, r0, ok0), ...quad(16, r1, ok1),
    ...op.get(dst), ...op.get(i), ...op.i32(1), 0x76 /* i32.shr_u */, ...op.add32, //  dst byte offset = i / 2
    ...op.get(r0), ...op.get(r1), ...op.simd(0x86) /* i16x8.narrow_i32x4_u */, ...store(),
    ...op.get(ok0), ...op.get(ok1), ...and, ...op.simd(0xa3) /* i32x4.all_true */, 0x45 /* i32.eqz */, 0x04, 0x40, // if
    ...op.get(specials), ...op.get(n), ...op.i32(2), ...op.shl32, ...op.add32, ...op.get(i), ...op.i32(2), 0x76, 0x36, 2, 0, // i32.store
    ...op.get(n), ...op.i32(1), ...op.add32, ...op.set(n),
    ...op.end,
    ...op.get(i), ...op.i32(32), ...op.add32, ...op.set(i),
    ...op.br(0), ...op.end, ...op.end,
    ...op.get(n),
  ];
  return { type: [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [F64], [I32]]), ...vec([[I32]])], locals: [[2, I32], [10, V128]], body };
}

// maxAbs(src, start, end, out): four lanes of the largest |src[i]| over [start, end) (multiples of 16: four
// running maxima, so that no iteration waits on the last), NaN skipped (pmax keeps the running value against a
// NaN), stored at `out`
function maxAbsFn(): { type: number[]; locals: number[][]; body: number[] } {
  const [src, start, end, out, i, m0, m1, m2, m3] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const ms = [m0, m1, m2, m3];
  const pmax = op.simd(0xeb), abs = op.simd(0xe0); //                        f32x4.pmax, f32x4.abs
  const body = [
    ...op.get(start), ...op.i32(2), ...op.shl32, ...op.set(i),
    ...op.get(end), ...op.i32(2), ...op.shl32, ...op.set(end),
    ...op.block, ...op.loop,
    ...op.get(i), ...op.get(end), ...op.geU32, ...op.brIf(1),
    ...ms.flatMap((m, q) => [...op.get(m), ...addr(src, i), ...load(16 * q), ...abs, ...pmax, ...op.set(m)]),
    ...op.get(i), ...op.i32(64), ...op.add32, ...op.set(i),
    ...op.br(0), ...op.end, ...op.end,
    ...op.get(out), ...op.get(m0), ...op.get(m1), ...pmax, ...op.get(m2), ...op.get(m3), ...pmax, ...pmax, ...store(),
  ];
  return { type: [0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([])], locals: [[1, I32], [4, V128]], body };
}

/** The Adam kernels' export names: adam, adamWd, adamRows, adamRowsWd, then each with its g mode (adam_f1, …). */
export const G_MODES: readonly GMode[] = ["dd", "d1", "f1"];
const adamName = (rows: boolean, wd: boolean, g: GMode) => `adam${rows ? "Rows" : ""}${wd ? "Wd" : ""}${g === "dd" ? "" : `_${g}`}`;

export function buildModule(): Uint8Array<ArrayBuffer> {
  const fns = [foldFn(), sumsqFn(), halfFn(), scatterFn("add"), sumsqRowsFn(), adamFn(false, true, true), adamFn(true, true, true), scatterFn("copy"), scatterFn("gather"),
    scatterFn("zero"), sumsqFn(true), sumsqRowsFn(true), halfEncodeFn(), maxAbsFn()];
  const names = ["fold", "sumsq", "half", "scatterAdd", "sumsqRows", "adamRowsZero", "adamRowsZeroWd", "scatterCopy", "gatherRows", "zeroRows", "sumsqF", "sumsqRowsF", "halfEncode", "maxAbs"];
  for (const g of G_MODES) for (const rows of [false, true]) for (const wd of [false, true]) { fns.push(adamFn(wd, rows, false, g)); names.push(adamName(rows, wd, g)); }
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
