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
// Row-sparse steps (every part carries only its touched embedding rows) never touch the rest of the table:
// the sum zeroes and fills only the rows the parts carry, the norm visits only those rows and the dense
// parameters (in index order and lane by lane, so it is the full pass's number bit for bit: the skipped
// values are zeros), and Adam runs in phases — `ahead` for rows no part of the step should touch, while its
// workers compute; `begin` and the dense parameters once the sum is in, then `ensureRows` for the rows the next
// tasks read, then `finish` for all other rows, off the critical path. Adam is elementwise: each value is
// updated once per step with the same hyperparameters, so the order changes no bit.
//
// Two parameter buffers alternate (no snapshot copy): the one a round sends stays untouched until the round
// after next writes it, and by then every worker that answered has received it (one pipe, in order). Only
// a dead or evicted peer's queue can still hold it, and whatever it sends back is rejected as stale.
import { Adam, type AdamOptions } from "./adam.js";
import type { AdamHyper } from "./kernels.js";
import { Arena, Kernels, sumsqLanes } from "./kernels.js";
import type { SparseBlock } from "../protocol/gradcodec.js";
import { RowSet } from "./rowset.js";

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
  /** Row offsets for the kernels that loop over rows (one per embedding row), and sumsq's four lane sums. */
  private readonly starts: Int32Array;
  private readonly lanes: Float64Array;
  private parts = 0;
  /** The rows `acc` holds: those of the sum being built (or, before its first part, of the last one). */
  private readonly sumRows: RowSet | null;
  /** An Adam step begun and not finished: its hyperparameters, and the rows already updated. */
  private pending: { h: AdamHyper; scale: number; coef: number; done: Uint8Array } | null = null;
  /** Rows updated ahead of the coming step's sum (`ahead`): that step's hyperparameters, the rows (each one's
   *  slot in `saved`) and, in `saved`, their moments as they were before. */
  private early: { h: AdamHyper; rows: number[]; done: Uint8Array } | null = null;
  private readonly saved = { slot: new Int32Array(0), m: new Float32Array(0), v: new Float32Array(0) };

  constructor(readonly size: number, adam: AdamOptions, initial: Float32Array, readonly sparse: SparseBlock | null = null) {
    if (initial.length !== size) throw new RangeError(`initial parameters have ${initial.length} values, expected ${size}`);
    // two parameter buffers, the sum, a staging copy of a part (and of its half floats), Adam's two moments,
    // the row offsets and the lane sums
    const rows = sparse?.rows ?? 0;
    this.arena = new Arena(Arena.floatsFor(size, size, size, size, size, size, Math.ceil(size / 2), rows, 8));
    this.k = new Kernels(this.arena);
    this.bufs = [this.arena.alloc(size), this.arena.alloc(size)];
    this.acc = this.arena.alloc(size);
    this.staging = this.arena.alloc(size);
    this.half = this.arena.allocHalf(size);
    this.adam = new Adam(size, adam, this.arena);
    this.starts = this.arena.allocInt(rows);
    this.lanes = this.arena.allocDouble(4);
    this.bufs[0].set(initial);
    this.sumRows = sparse ? new RowSet(sparse.rows) : null;
  }

  /** The current parameters (a view into the arena: changes with `update`/`finish`; copy to keep). */
  get params(): Float32Array { return this.bufs[this.turn]!; }

  /** Where the newest values live: the next version's buffer while an Adam step is under way (its dense
   *  part and the rows `ensureRows` was given are final there), else `params`. */
  get readable(): Float32Array { return this.pending ? this.bufs[this.turn ^ 1]! : this.params; }

  /** Forget the sum: the next `add` starts a new one. */
  reset(): void { this.parts = 0; }

  /** Parts folded into the sum since `reset`. */
  get folded(): number { return this.parts; }

  /** Fold one gradient into the sum (callers keep task order: float addition is not associative). A plain
   *  Float32Array is a dense float32 gradient. */
  add(part: GradPart | Float32Array): void {
    const p: GradPart = part instanceof Float32Array ? { values: part, scale: 1, rows: null } : part;
    this.finish(); // a step begun must end before its sum is replaced (its other rows read it)
    const first = this.parts === 0;
    const n = p.values.length;
    const want = p.rows && this.sparse ? this.size - (this.sparse.rows - p.rows.length) * this.sparse.width : this.size;
    if (n !== want || (p.rows && !this.sparse)) throw new RangeError(`gradient has ${n} values${p.rows ? ` with ${p.rows.length} rows` : ""}, expected ${want}`);
    if (first) this.startSum();
    let vals: Float32Array;
    if (p.values instanceof Uint16Array) {
      this.half.set(p.values);
      const direct = first && !p.rows; // the first dense part decodes straight into the sum
      this.k.half(direct ? this.acc : this.staging, this.half.subarray(0, n), p.scale, 0, n);
      this.parts++;
      if (direct) { if (this.sumRows) this.sumRows.all = true; return; }
      vals = this.staging.subarray(0, n);
    } else {
      vals = p.values;
      this.parts++;
    }
    if (!p.rows) {
      if (this.sumRows) this.sumRows.all = true;
      if (first) this.acc.set(vals);
      else this.foldAt(0, vals);
      return;
    }
    this.addRows(vals, p.rows, first);
  }

  /** The first part of a sum: the rows the previous sum filled go back to zero (only those; a finished step's
   *  row-sparse sum was zeroed by `finish`). */
  private startSum(): void {
    const b = this.sparse, rows = this.sumRows;
    if (!b || !rows) return;
    if (rows.all) this.acc.fill(0, b.offset, b.offset + b.rows * b.width);
    else this.zeroSumRows();
    rows.clear();
  }

  /** The embedding rows of the sum back to +0, and the sum emptied (its dense values are overwritten by the next
   *  sum's first part). */
  private zeroSumRows(): void {
    const b = this.sparse!, rows = this.sumRows!, list = rows.list;
    if (this.rowKernels) {
      const starts = this.starts;
      for (let k = 0; k < list.length; k++) starts[k] = b.offset + list[k]! * b.width;
      this.k.zeroRows(this.acc, starts, list.length, b.width);
    } else for (const r of list) this.acc.fill(0, b.offset + r * b.width, b.offset + (r + 1) * b.width);
    rows.clear();
    this.parts = 0;
  }

  /** A rows-layout part: the values before and after the embedding block are dense; the block has R rows of
   *  E. The first part's rows are copied, later parts' rows added (as a dense sum would). */
  private addRows(vals: Float32Array, rows: Uint32Array, first: boolean): void {
    const b = this.sparse!, E = b.width, end = b.offset + b.rows * E, tail = b.offset + rows.length * E;
    const acc = this.acc, mark = this.sumRows!;
    // the dense values first (the first part's copied where they go, later parts' added: foldAt may stage them)
    if (first) {
      acc.set(vals.subarray(0, b.offset), 0);
      acc.set(vals.subarray(tail), end);
    } else {
      if (b.offset > 0) this.foldAt(0, vals.subarray(0, b.offset));
      this.foldAt(end, vals.subarray(tail));
    }
    const starts = this.starts;
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r]!;
      mark.add(row);
      starts[r] = b.offset + row * E;
    }
    // then the rows, through the kernels, from the arena (the block copied into it once)
    let block = vals.subarray(b.offset, tail);
    if (this.rowKernels && !this.arena.owns(block)) { this.staging.set(block); block = this.staging.subarray(0, block.length); }
    if (this.rowKernels && first) return this.k.scatterCopy(acc, block, starts, rows.length, E);
    if (this.rowKernels) return this.k.scatterAdd(acc, block, starts, rows.length, E);
    for (let r = 0; r < rows.length; r++) { // unaligned rows: the same, one value at a time
      const d = starts[r]!, s = r * E;
      if (first) acc.set(block.subarray(s, s + E), d);
      else for (let j = 0; j < E; j++) acc[d + j] = acc[d + j]! + block[s + j]!;
    }
  }

  /** What a task of these embedding rows reads, in the rows layout ([before][rows][after]) of the newest values
   *  (`readable`), into `into` (its length: the dense values and the rows, or the rows alone). */
  gatherRows(rows: Uint32Array, into: Float32Array): Float32Array {
    const b = this.sparse;
    if (!b) throw new RangeError("gatherRows: the parameters have no embedding rows");
    const E = b.width, R = rows.length, src = this.readable, end = b.offset + b.rows * E;
    const only = into.length === R * E; // the rows alone
    if (!only && into.length !== this.size - (b.rows - R) * E) throw new RangeError(`gatherRows: ${into.length} values for ${R} rows, expected ${this.size - (b.rows - R) * E} or ${R * E}`);
    const starts = this.starts;
    for (let k = 0; k < R; k++) starts[k] = b.offset + rows[k]! * E; // the kernel checks each start is in range
    if (only) { this.copyRows(src, starts, R, into); return into; }
    into.set(src.subarray(0, b.offset), 0);
    this.copyRows(src, starts, R, into, b.offset);
    into.set(src.subarray(end), b.offset + R * E);
    return into;
  }

  /** into[at + k·E …] = the row of `from` that starts at starts[k], for k < count: gathered by the kernels into
   *  the staging array (free between calls), then copied out at once; row by row where rows are not in quads. */
  private copyRows(from: Float32Array, starts: Int32Array, count: number, into: Float32Array, at = 0): void {
    const E = this.sparse!.width;
    if (!this.rowKernels) { for (let k = 0; k < count; k++) into.set(from.subarray(starts[k]!, starts[k]! + E), at + k * E); return; }
    this.k.gatherRows(this.staging, from, starts, count, E);
    into.set(this.staging.subarray(0, count * E), at);
  }

  /** Rows start on multiples of 4 (the kernels' quads): the row loops run in WebAssembly. */
  private get rowKernels(): boolean {
    const b = this.sparse;
    return b !== null && b.offset % 4 === 0 && b.width % 4 === 0;
  }

  /** acc[at + i] = f32(acc[at + i] + src[i]) — SIMD when src is in the arena (else copied there first). */
  private foldAt(at: number, src: Float32Array): void {
    const n = src.length;
    if (!this.arena.owns(src)) { this.staging.set(src); src = this.staging.subarray(0, n); }
    this.k.fold(this.acc.subarray(at, at + n), src, 0, n);
  }

  /** The embedding rows in the sum (sorted), or null when every row may be (a dense part was folded). */
  touchedRows(): number[] | null {
    const rows = this.sumRows;
    return !rows || rows.all ? null : rows.sorted();
  }

  /** Σ f32(acc·scale)² in double (non-finite when any summed value is NaN or ±Inf). A row-sparse sum visits
   *  only its rows and the dense values, giving the full pass's number bit for bit. */
  sumsq(scale: number): number {
    const rows = this.touchedRows(), b = this.sparse;
    if (!rows || !b) return this.k.sumsq(this.acc, scale);
    if (this.rowKernels) return this.sumsqRows(rows, scale);
    const ranges: [number, number][] = [];
    if (b.offset > 0) ranges.push([0, b.offset]);
    for (const r of rows) ranges.push([b.offset + r * b.width, b.offset + (r + 1) * b.width]);
    ranges.push([b.offset + b.rows * b.width, this.size]);
    return sumsqLanes(this.acc, ranges, scale);
  }

  /** sumsq of a row-sparse sum in the kernels: the dense values before the block, the rows in order and the
   *  dense quads after it continue the same four lane sums; then the tail past the last quad, as the full pass. */
  private sumsqRows(rows: number[], scale: number): number {
    const b = this.sparse!, E = b.width, lanes = this.lanes, starts = this.starts, acc = this.acc;
    const q = this.size - (this.size % 4), end = b.offset + b.rows * E;
    lanes.fill(0);
    if (b.offset > 0) { starts[0] = 0; this.k.sumsqRows(acc, starts, 1, b.offset, scale, lanes); }
    for (let k = 0; k < rows.length; k++) starts[k] = b.offset + rows[k]! * E;
    this.k.sumsqRows(acc, starts, rows.length, E, scale, lanes);
    if (q > end) { starts[0] = end; this.k.sumsqRows(acc, starts, 1, q - end, scale, lanes); }
    let s = (lanes[0]! + lanes[2]!) + (lanes[1]! + lanes[3]!);
    for (let i = q; i < this.size; i++) { const x = Math.fround(acc[i]! * scale); s += x * x; } // the tail, one by one
    return s;
  }

  /**
   * One Adam step from the current parameters into the other buffer, `chunk` values at a time: yields each
   * finished range [start, end) of the new parameters; they become `params` when the last range is done.
   */
  *update(scale: number, coef: number, chunk = PARAM_CHUNK): Generator<{ start: number; end: number; params: Float32Array }> {
    this.finish();
    this.discardAhead();
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

  // ---- Adam in phases (row-sparse steps) ------------------------------------------------------------------

  /**
   * Adam ahead of the coming step's sum, over embedding rows that none of its parts should touch (rows its
   * batches do not read) and that the step after it will read: with a sum of +0 there, their update needs no
   * gradient (the moments decay), so it is done now, while the workers compute, instead of on the critical path
   * between the last gradient and the next tasks. The same kernel and hyperparameters as `finish` gives them:
   * the same bits. Each row's moments are kept as they were: a part that does carry one of these rows puts
   * that row back at `begin` (it is then updated with its gradient), and a step that does not begin (every
   * part refused, the run stopped, a checkpoint taken meanwhile) puts them all back (`discardAhead`).
   */
  ahead(rows: ArrayLike<number>): void {
    this.discardAhead();
    const b = this.sparse;
    if (!b || this.pending || rows.length === 0) return;
    const E = b.width, st = this.adam.state(), starts = this.starts, sv = this.saved;
    if (sv.slot.length !== b.rows) sv.slot = new Int32Array(b.rows);
    if (sv.m.length < rows.length * E) { sv.m = new Float32Array(rows.length * E); sv.v = new Float32Array(rows.length * E); }
    const done = new Uint8Array(b.rows), list: number[] = [];
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (done[r]) continue;
      done[r] = 1;
      sv.slot[r] = list.length;
      starts[list.length] = b.offset + r * E;
      list.push(r);
    }
    // the moments as they were, row k at k·E
    this.copyRows(st.m, starts, list.length, sv.m);
    this.copyRows(st.v, starts, list.length, sv.v);
    const h = this.adam.peek();
    this.adam.applyRows(h, this.bufs[this.turn]!, this.bufs[this.turn ^ 1]!, this.acc, starts, list.length, E, 1, 1, true);
    this.early = { h, rows: list, done };
  }

  /** Rows done by `ahead` and not yet part of a begun step: their moments put back (their new values, in the
   *  buffer the next step writes, are left to be overwritten). */
  discardAhead(): void {
    const e = this.early;
    if (!e) return;
    for (const r of e.rows) this.putBack(r);
    this.early = null;
  }

  private putBack(r: number): void {
    const b = this.sparse!, E = b.width, st = this.adam.state(), sv = this.saved, k = sv.slot[r]!, at = b.offset + r * E;
    st.m.set(sv.m.subarray(k * E, (k + 1) * E), at);
    st.v.set(sv.v.subarray(k * E, (k + 1) * E), at);
  }

  /** Rows `ahead` has updated for the coming step. */
  get aheadRows(): number { return this.early?.rows.length ?? 0; }

  /** Start an Adam step over the mean `acc·scale`, clipped by `coef`, and update every value outside the
   *  embedding block at once (the dense weights every task reads). Rows done ahead stay done, but for those
   *  the sum touches (put back, to be updated with their gradient). */
  begin(scale: number, coef: number): void {
    this.finish();
    const h = this.adam.begin();
    this.pending = { h, scale, coef, done: this.takeAhead(h) ?? new Uint8Array(this.sparse?.rows ?? 0) };
    const b = this.sparse;
    if (!b) return this.apply(0, this.size);
    if (b.offset > 0) this.apply(0, b.offset);
    this.apply(b.offset + b.rows * b.width, this.size);
  }

  /** The rows done ahead for the step `h` begins, less those its sum touches (put back); null when there are
   *  none, or they were done for other hyperparameters (all put back). */
  private takeAhead(h: AdamHyper): Uint8Array | null {
    const e = this.early, rows = this.sumRows;
    if (!e) return null;
    const same = e.h.stepSize === h.stepSize && e.h.sqrtBc2 === h.sqrtBc2 && e.h.beta1 === h.beta1 && e.h.beta2 === h.beta2 && e.h.eps === h.eps && e.h.weightDecay === h.weightDecay;
    if (!same || !rows || rows.all) { this.discardAhead(); return null; }
    for (const r of e.rows) if (rows.mark[r]) { this.putBack(r); e.done[r] = 0; }
    this.early = null;
    return e.done;
  }

  /** Make sure these embedding rows hold the new step's values; rows already done are left alone. */
  ensureRows(rows: ArrayLike<number>): void {
    const p = this.pending, b = this.sparse;
    if (!p || !b) return;
    const starts = this.starts;
    let n = 0;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (p.done[r]) continue;
      p.done[r] = 1;
      starts[n++] = b.offset + r * b.width;
    }
    this.adam.applyRows(p.h, this.bufs[this.turn]!, this.bufs[this.turn ^ 1]!, this.acc, starts, n, b.width, p.scale, p.coef);
  }

  /** Update every row not yet done, and make the new values the current ones: the rows the sum holds, then
   *  the others — +0 in the sum, which their kernel need not read (zero gradient, the same bits). */
  finish(): void {
    const p = this.pending, b = this.sparse;
    if (!p) return;
    if (b) {
      // one pass over the rows: those no part touched (most of the table; their sum is +0, not read) from the
      // front of `starts`, those the sum holds (every row, when a dense part was folded) from its back, then
      // reversed: both ascending, since in descending order the same kernels take 3× as long (the memory's
      // prefetching goes forward)
      const rows = this.sumRows, all = !rows || rows.all, starts = this.starts, E = b.width;
      const [pIn, pOut] = [this.bufs[this.turn]!, this.bufs[this.turn ^ 1]!];
      let u = 0, t = b.rows;
      for (let r = 0; r < b.rows; r++) {
        if (p.done[r]) continue;
        if (all || rows!.mark[r] === 1) starts[--t] = b.offset + r * E;
        else starts[u++] = b.offset + r * E;
      }
      const held = starts.subarray(t).reverse();
      this.adam.applyRows(p.h, pIn, pOut, this.acc, held, held.length, E, p.scale, p.coef);
      this.adam.applyRows(p.h, pIn, pOut, this.acc, starts, u, E, p.scale, p.coef, true);
      if (!all) this.zeroSumRows(); // here, off the critical path, rather than at the next sum's first part
    }
    this.pending = null;
    this.turn ^= 1;
  }

  /** True while an Adam step is begun and not finished. */
  get updating(): boolean { return this.pending !== null; }

  private apply(start: number, end: number): void {
    const p = this.pending!;
    this.adam.apply(p.h, this.bufs[this.turn]!, this.bufs[this.turn ^ 1]!, this.acc, start, end, p.scale, p.coef);
  }
}
