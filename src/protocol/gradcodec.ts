// Gradient encodings on the wire (the worker encodes, the coordinator decodes and sums in float32):
//
//   fp16   IEEE 754 half floats (round to nearest, ties to even) of g·s, with s a power of two chosen per
//          message so that max|g|·s ≤ 2^15: the largest values keep 11 significant bits and nothing
//          overflows; the coordinator multiplies by 1/s (exact). Values below max|g|·2^-40 or so become 0.
//   rows   the embedding block [V, E] reduced to the rows with a nonzero value (their ids ascending, then
//          their values); every other value of the vector as it is. Untouched rows are exactly zero in
//          the dense gradient, so this loses nothing.
//
// Layout of a "rows" payload (values): [before the block][R rows × E][after the block].

/** Where the embedding block sits in the flat vector (from the parameter layout). */
export interface SparseBlock {
  /** First value of the block. */
  offset: number;
  /** Rows V and row width E. */
  rows: number;
  width: number;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of x (round to nearest, ties to even; overflow → ±Inf; NaN stays NaN). */
export function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  const m = b & 0x7fffff;
  if (e === 255) return sign | 0x7c00 | (m ? 0x200 : 0);
  const ee = e - 112; // 127 → 15
  if (ee >= 31) return sign | 0x7c00;
  if (ee <= 0) {
    if (ee < -10) return sign;
    const mm = m | 0x800000, shift = 14 - ee;
    let hm = mm >>> shift;
    const rem = mm & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && hm & 1)) hm++;
    return sign | hm;
  }
  let h = sign | (ee << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is right (up to Inf)
  return h;
}

let table: Float32Array | null = null;
/** float32 value of every half (index = bits). */
export function halfTable(): Float32Array {
  if (table) return table;
  const bits = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
    if (e === 31) bits[h] = sign | 0x7f800000 | (m << 13);
    else if (e > 0) bits[h] = sign | ((e + 112) << 23) | (m << 13);
    else if (m === 0) bits[h] = sign;
    else {
      // subnormal half: m · 2^-24, normalised for float32
      let k = 0, mm = m;
      while (!(mm & 0x400)) { mm <<= 1; k++; }
      bits[h] = sign | ((113 - k) << 23) | ((mm & 0x3ff) << 13);
    }
  }
  return (table = new Float32Array(bits.buffer));
}

/** The power of two s with max|g|·s ≤ 2^15 (1 when g is all zero or has a NaN/Inf). */
export function halfScale(g: Float32Array): number {
  let max = 0;
  for (let i = 0; i < g.length; i++) { const a = Math.abs(g[i]!); if (a > max) max = a; }
  return 2 ** halfExponent(max);
}

/** The exponent k of halfScale's 2^k for the largest magnitude (NaN skipped) of the values: |k| ≤ 100. */
export function halfExponent(max: number): number {
  if (!(max > 0) || !Number.isFinite(max)) return 0;
  return Math.max(-100, Math.min(100, 15 - Math.ceil(Math.log2(max))));
}

/** dst[i] = half(src[i]·scale), the bits `toHalf` gives. With a power-of-two scale 2^k (what `halfScale`
 *  chooses), a value whose half is normal is converted on its float32 bits: the scale added to the exponent
 *  (exact), the mantissa rounded to 10 bits (ties to even; a carry into the exponent is right, up to Inf).
 *  Zeros, subnormal halves, overflows, NaN and Inf take `toHalf`. */
export function encodeHalf(src: Float32Array, scale: number, dst = new Uint16Array(src.length)): Uint16Array {
  const k = Math.round(Math.log2(scale));
  if (!(scale > 0) || 2 ** k !== scale || Math.abs(k) > 100) {
    for (let i = 0; i < src.length; i++) dst[i] = toHalf(src[i]! * scale);
    return dst;
  }
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  // the exponent rebased from float32's bias (127) to half's (15) and scaled: |k| ≤ 100 puts float32 zeros,
  // subnormals, Inf and NaN outside the half's normal exponents [1, 30]
  const rebase = (k - 112) * (1 << 23);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!, t = (b & 0x7fffffff) + rebase;
    if ((t - 0x00800000) >>> 0 < 0x0f000000) dst[i] = ((b >>> 16) & 0x8000) | ((t + 0xfff + ((t >>> 13) & 1)) >>> 13);
    else if ((b & 0x7fffffff) === 0) dst[i] = (b >>> 16) & 0x8000;
    else dst[i] = toHalf(src[i]! * scale);
  }
  return dst;
}

/** dst[i] = f32(float(h[i])·scale) — the coordinator's decoding (its SIMD kernel gives the same bits). */
export function decodeHalfJs(src: Uint16Array, scale: number, dst: Float32Array, start = 0, end = src.length): void {
  const t = halfTable();
  const s = Math.fround(scale);
  for (let i = start; i < end; i++) dst[i] = t[src[i]!]! * s;
}

/** The rows encoding of a dense gradient: ids of the block's rows with a nonzero value, and the values. */
export function encodeRows(g: Float32Array, b: SparseBlock): { rows: Uint32Array; values: Float32Array } {
  const ids: number[] = [];
  for (let r = 0; r < b.rows; r++) {
    const s = b.offset + r * b.width;
    for (let j = 0; j < b.width; j++) if (g[s + j] !== 0) { ids.push(r); break; }
  }
  const end = b.offset + b.rows * b.width;
  const values = new Float32Array(g.length - (b.rows - ids.length) * b.width);
  values.set(g.subarray(0, b.offset), 0);
  let o = b.offset;
  for (const r of ids) { values.set(g.subarray(b.offset + r * b.width, b.offset + (r + 1) * b.width), o); o += b.width; }
  values.set(g.subarray(end), o);
  return { rows: Uint32Array.from(ids), values };
}

/** Values a payload of `rowCount` rows must hold for a vector of `size` (dense when `b` is null). */
export function payloadValues(size: number, b: SparseBlock | null, rowCount: number | null): number {
  return rowCount === null || !b ? size : size - (b.rows - rowCount) * b.width;
}

/** The embedding block of a parameter layout ("embedding.weight", [V, E]), or null when it has none. */
export function sparseBlockOf(layout: { entries: readonly { name: string; offset: number; shape: readonly number[] }[] }): SparseBlock | null {
  const e = layout.entries.find((x) => x.name === "embedding.weight");
  return e && e.shape.length === 2 ? { offset: e.offset, rows: e.shape[0]!, width: e.shape[1]! } : null;
}

/** A worker's gradient as it goes on the wire: dense or embedding rows, float32 or half floats (with the
 *  power-of-two scale the halves carry). */
export function encodeGradient(g: Float32Array, o: { f16: boolean; block: SparseBlock | null }): { values: Float32Array | Uint16Array; rows: Uint32Array | null; scale: number } {
  let values = g, rows: Uint32Array | null = null;
  if (o.block) ({ rows, values } = encodeRows(g, o.block));
  if (!o.f16) return { values, rows, scale: 1 };
  const scale = halfScale(values);
  return { values: encodeHalf(values, scale), rows, scale };
}

/** Index of the first row id that is not ascending or not below `max`, or −1 when all are fine. */
export function firstBadRow(rows: ArrayLike<number>, max: number): number {
  for (let i = 0; i < rows.length; i++) if (rows[i]! >= max || (i > 0 && rows[i]! <= rows[i - 1]!)) return i;
  return -1;
}

/** The rows layout of parameters `src` (a vector of `size`): the values before the block, the rows `rows`
 *  (ascending) of the block, the values after it — written into `into` (a new array when not given). */
export function gatherRows(src: Float32Array, size: number, b: SparseBlock, rows: ArrayLike<number>, into?: Float32Array): Float32Array {
  const E = b.width, end = b.offset + b.rows * E;
  const out = into ?? new Float32Array(size - (b.rows - rows.length) * E);
  out.set(src.subarray(0, b.offset), 0);
  for (let k = 0; k < rows.length; k++) out.set(src.subarray(b.offset + rows[k]! * E, b.offset + (rows[k]! + 1) * E), b.offset + k * E);
  out.set(src.subarray(end, size), b.offset + rows.length * E);
  return out;
}
