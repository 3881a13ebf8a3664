// Row pull: a task carries what its batches read — the dense parameters and the embedding rows of its
// batches, the newest values (Adam finishes those rows first: optim/step.ts's ensureRows) — in the gradient
// codec's rows layout ([before][rows][after]), never the whole vector. Unsharded, with the embedding first in
// the layout, the dense values go in their own message (Dense), once per worker and version, before its first
// task of that version: ZeroMQ moves them while the task's rows are Adam'd and gathered, and the task carries
// only its rows. They go as a view of the arena (no copy): the buffer is not written again before the step
// after next's Adam, by when every worker that had the version's tasks answered (optim/step.ts).
//
// A sharded coordinator (--coordinator-shards) sends only its own slice's piece (the rows in it, local ids, and
// its dense values) and names each shard the task's rows in that shard's slice (../protocol/slices.ts).
//
// The buffers a task's parameters go out in are reused: allocating megabytes a task costs page faults and
// garbage collections on the critical path. A buffer is free again once the task's worker has answered (it
// had received all of it); a task whose worker vanished keeps its buffer (ZeroMQ may still hold it).
import type { StepArithmetic } from "../optim/step.js";
import type { SparseBlock } from "../protocol/gradcodec.js";
import { localRows, type SliceView } from "../protocol/slices.js";

export class RowPull {
  /** Buffers of answered tasks, free for the next tasks' parameters. */
  private readonly free: Float32Array[] = [];
  /** Which embedding rows a task of several batches reads (marks, cleared after each use). */
  private marks: Uint8Array | null = null;

  /** The dense values travel in their own message (Dense) and a task carries only its rows. */
  private readonly separate: boolean;

  /** `block`: the embedding rows of the vector `arith` holds (local ids); `slices`: sharded, this process's
   *  slice and the shards' (their views, in slice order) and the embedding's rows in all, else null. */
  constructor(private readonly arith: StepArithmetic, private readonly block: SparseBlock, private readonly batchRows: (split: "train" | "val", index: number) => Int32Array, private readonly slices: { own: SliceView; others: SliceView[]; rows: number } | null = null) {
    this.separate = !slices && block.offset === 0 && arith.size > block.rows * block.width;
  }

  /** The dense values of the newest parameters for a worker's task of `version` (a view of the arena), or null
   *  when they travel in the task or that worker has them (`has`: worker → the version it holds; set here). */
  dense(peer: string, version: number, has: Map<string, number>): Float32Array | null {
    if (!this.separate || has.get(peer) === version) return null;
    has.set(peer, version);
    return this.arith.readable.subarray(this.block.rows * this.block.width);
  }

  /** What a task of these batches reads: their rows in this slice (ascending, local ids) and the payload; and
   *  sharded, the rows each shard must send (local to its slice). */
  payload(split: "train" | "val", batches: number[]): { rows: Uint32Array; payload: Float32Array; others: Uint32Array[] } {
    const b = this.block, E = b.width, arith = this.arith;
    const all = this.rowsOf(split, batches), sl = this.slices;
    const rows = sl ? localRows(all, sl.own) : all;
    const others = sl ? sl.others.map((v) => localRows(all, v)) : [];
    arith.ensureRows(rows);
    const payload = arith.gatherRows(rows, this.buffer(this.separate ? rows.length * E : arith.size - (b.rows - rows.length) * E));
    return { rows, payload, others };
  }

  /** The union of the batches' rows, ascending (one batch: its own list, shared, never written). */
  private rowsOf(split: "train" | "val", batches: number[]): Uint32Array {
    const lists = batches.map((i) => this.batchRows(split, i));
    if (lists.length === 1) return new Uint32Array(lists[0]!.buffer, lists[0]!.byteOffset, lists[0]!.length);
    const mark = (this.marks ??= new Uint8Array(this.slices?.rows ?? this.block.rows)); // global row ids
    const out: number[] = [];
    for (const l of lists) for (let k = 0; k < l.length; k++) if (!mark[l[k]!]) { mark[l[k]!] = 1; out.push(l[k]!); }
    for (const r of out) mark[r] = 0;
    return Uint32Array.from(out).sort();
  }

  /** The rows `next`'s batches read that `now`'s do not (ascending; unsharded: global ids are this slice's). */
  rowsBeyond(split: "train" | "val", now: number[], next: number[]): Uint32Array {
    const read = this.rowsOf(split, next), skip = this.rowsOf(split, now);
    const out: number[] = [];
    for (let k = 0, j = 0; k < read.length; k++) {
      while (j < skip.length && skip[j]! < read[k]!) j++;
      if (skip[j] !== read[k]) out.push(read[k]!);
    }
    return Uint32Array.from(out);
  }

  /** A buffer of n floats: a free one large enough, or a new one with room to spare (tasks' row counts vary). */
  private buffer(n: number): Float32Array {
    const k = this.free.findIndex((f) => f.buffer.byteLength >= n * 4);
    if (k >= 0) return new Float32Array(this.free.splice(k, 1)[0]!.buffer, 0, n);
    return new Float32Array(new ArrayBuffer(Math.ceil(n * 1.25) * 4), 0, n);
  }

  /** A task's worker answered: its buffer is free again (up to `keep` are kept). */
  release(task: { lease?: Float32Array }, keep: number): void {
    if (task.lease && this.free.length < keep) this.free.push(task.lease);
    task.lease = undefined;
  }
}
