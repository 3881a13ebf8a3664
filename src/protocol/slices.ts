// A sharded coordinator cuts the flat parameter vector into K slices (the coordinator owns slice 0, a shard
// process each of the others). In the rows forms (gradcodec.ts), a task's gradient and its parameters skip
// the embedding rows it does not touch; a slice's part of such a payload is then one contiguous run of it,
// because the slices are contiguous ranges of the flat vector and their bounds fall on row bounds inside the
// embedding block. So a worker cuts its rows payload into K pieces without copying, and glues the K pieces of
// a task's parameters back together by concatenation, in slice order.
//
//   flat vector   [before | row 0 | row 1 | … | row V−1 | after]          (before is empty for our models)
//   rows payload  [before | touched rows, ascending      | after]
//   slice k       [offset_k, offset_k + length_k)  →  its piece: the same range with the untouched rows left out;
//                 its row ids are local (global id − firstRow_k), and its own block is rows_k rows from local offset
import type { SparseBlock } from "./gradcodec.js";
import { toHalves } from "../optim/half-encoder.js";

export interface SliceBound { offset: number; length: number }

/** A slice as its owner sees it: its bounds, its part of the embedding block (local offsets), the first row. */
export interface SliceView extends SliceBound {
  /** The embedding rows inside the slice, at a local offset; null when the slice holds none. */
  block: SparseBlock | null;
  /** Global id of the slice's first embedding row (0 when it holds none). */
  firstRow: number;
}

/** K slices of a vector of n values, balanced, each starting at a multiple of 4 and, inside the embedding block
 *  `block`, on a row bound (rows are never split between slices). With `rowWeight` (per embedding row, how
 *  often a task reads it: 0 to 1) the slices are balanced in the bytes a task moves rather than in values: a
 *  value outside the block weighs 1, a value of row r rowWeight[r]. */
export function sliceBounds(n: number, k: number, block: SparseBlock | null = null, rowWeight: ArrayLike<number> | null = null): SliceBound[] {
  const out: SliceBound[] = [];
  const rowStep = block ? (block.width % 4 === 0 ? 1 : 4) : 1; // whole rows that end on a multiple of 4
  const cut = rowWeight && block ? weightedCuts(n, k, block, rowWeight) : null;
  let start = 0;
  for (let i = 0; i < k; i++) {
    let end = i === k - 1 ? n : cut ? cut[i]! : Math.round(((i + 1) * n) / k / 4) * 4;
    if (block && i < k - 1 && end > block.offset && end < block.offset + block.rows * block.width) {
      const q = block.width * rowStep;
      end = block.offset + Math.round((end - block.offset) / q) * q;
    }
    end = Math.min(n, Math.max(start, end));
    out.push({ offset: start, length: end - start });
    start = end;
  }
  return out;
}

/** Where the cumulative weight reaches 1/k, 2/k, … of the total (multiples of 4 outside the block; inside it
 *  row bounds, rounded by the caller). */
function weightedCuts(n: number, k: number, block: SparseBlock, rowWeight: ArrayLike<number>): number[] {
  const E = block.width, bs = block.offset, be = bs + block.rows * E;
  let total = n - (be - bs);
  for (let r = 0; r < block.rows; r++) total += (rowWeight[r] ?? 0) * E;
  const cuts: number[] = [];
  let acc = 0, x = 0;
  const reach = (goal: number): number => {
    if (x < bs) { // dense values before the block weigh 1 each
      if (acc + (bs - x) >= goal) return Math.round((x + goal - acc) / 4) * 4;
      acc += bs - x; x = bs;
    }
    while (x < be) {
      const w = (rowWeight[(x - bs) / E] ?? 0) * E;
      if (acc + w >= goal) return acc + w / 2 >= goal ? x : x + E;
      acc += w; x += E;
    }
    return Math.round((x + Math.max(0, goal - acc)) / 4) * 4; // dense values after the block weigh 1 each
  };
  for (let i = 1; i < k; i++) cuts.push(Math.min(n, reach((i * total) / k)));
  return cuts;
}

/** The embedding rows of slice `b` (throws RangeError when a bound splits a row). */
export function sliceView(b: SliceBound, block: SparseBlock | null): SliceView {
  if (!block) return { ...b, block: null, firstRow: 0 };
  const E = block.width, bs = block.offset, be = bs + block.rows * E;
  const s = Math.max(b.offset, bs), e = Math.min(b.offset + b.length, be);
  if (e <= s) return { ...b, block: null, firstRow: 0 };
  if ((s - bs) % E !== 0 || (e - bs) % E !== 0) throw new RangeError(`slice [${b.offset}, ${b.offset + b.length}) splits an embedding row`);
  return { ...b, block: { offset: s - b.offset, rows: (e - s) / E, width: E }, firstRow: (s - bs) / E };
}

/** Position in a rows payload of flat index x (x outside the block, or on a row bound inside it); `rows` are
 *  the payload's row ids, ascending. */
function payloadIndex(x: number, rows: ArrayLike<number>, block: SparseBlock): number {
  const E = block.width, bs = block.offset, be = bs + block.rows * E;
  if (x <= bs) return x;
  if (x >= be) return x - (block.rows - rows.length) * E;
  return bs + lowerBound(rows, (x - bs) / E) * E;
}

/** First index i with rows[i] ≥ r. */
function lowerBound(rows: ArrayLike<number>, r: number): number {
  let lo = 0, hi = rows.length;
  while (lo < hi) { const mid = (lo + hi) >>> 1; if (rows[mid]! < r) lo = mid + 1; else hi = mid; }
  return lo;
}

/** The row ids (global, ascending) inside slice `v`, as ids local to it (a view when they need no shift). */
export function localRows(rows: ArrayLike<number>, v: { firstRow: number; block: SparseBlock | null }): Uint32Array {
  if (!v.block) return new Uint32Array(0);
  const r0 = lowerBound(rows, v.firstRow), r1 = lowerBound(rows, v.firstRow + v.block.rows);
  if (v.firstRow === 0 && rows instanceof Uint32Array) return rows.subarray(r0, r1);
  const local = new Uint32Array(r1 - r0);
  for (let i = r0; i < r1; i++) local[i - r0] = rows[i]! - v.firstRow;
  return local;
}

/** Slice `v`'s piece of a rows payload (a view, not a copy) and its row ids, local to the slice. */
export function slicePiece<T extends Float32Array | Uint16Array>(payload: T, rows: ArrayLike<number>, block: SparseBlock, v: SliceView): { values: T; rows: Uint32Array } {
  const a = payloadIndex(v.offset, rows, block), b = payloadIndex(v.offset + v.length, rows, block);
  return { values: payload.subarray(a, b) as T, rows: localRows(rows, v) };
}

/** The rows payload of the whole vector from its K pieces (in slice order, local row ids): the values
 *  concatenated, the row ids made global. */
export function joinPieces(pieces: readonly { values: Float32Array; rows: ArrayLike<number> }[], views: readonly SliceView[]): { values: Float32Array; rows: Int32Array } {
  let n = 0, r = 0;
  for (const p of pieces) { n += p.values.length; r += p.rows.length; }
  const values = new Float32Array(n), rows = new Int32Array(r);
  n = 0; r = 0;
  pieces.forEach((p, k) => {
    values.set(p.values, n); n += p.values.length;
    const first = views[k]!.firstRow;
    for (let i = 0; i < p.rows.length; i++) rows[r++] = p.rows[i]! + first;
  });
  return { values, rows };
}

/** A worker's gradient for a sharded coordinator, one piece per slice as the wire wants it (float32 or half
 *  floats with their scale; row ids, local to the slice, where the slice holds rows and `g` is in rows form).
 *  `g`: the rows form (ids ascending, payload), or the whole vector (rows null). */
export function gradientPieces(g: { rows: ArrayLike<number> | null; values: Float32Array }, views: readonly SliceView[], block: SparseBlock | null, f16: boolean): { values: Float32Array | Uint16Array; rows: Uint32Array | null; scale: number }[] {
  return views.map((v) => {
    let values: Float32Array, rows: Uint32Array | null = null;
    if (g.rows && block) { const p = slicePiece(g.values, g.rows, block, v); values = p.values; rows = v.block ? p.rows : null; }
    else values = g.values.subarray(v.offset, v.offset + v.length);
    if (!f16) return { values, rows, scale: 1 };
    return { ...toHalves(values), rows };
  });
}
