// Row pull: a task carries what its batches read — the dense parameters and the embedding rows of its
// batches, the newest values (Adam finishes those rows first: optim/step.ts's ensureRows) — in the gradient
// codec's rows layout ([before][rows][after]), never the whole vector.
//
// The buffers a task's parameters go out in are reused: allocating megabytes a task costs page faults and
// garbage collections on the critical path. A buffer is free again once the task's worker has answered (it
// had received all of it); a task whose worker vanished keeps its buffer (ZeroMQ may still hold it).
import type { StepArithmetic } from "../optim/step.js";
import type { SparseBlock } from "../protocol/gradcodec.js";

export class RowPull {
  /** Buffers of answered tasks, free for the next tasks' parameters. */
  private readonly free: Float32Array[] = [];
  /** Which embedding rows a task of several batches reads (marks, cleared after each use). */
  private marks: Uint8Array | null = null;

  constructor(private readonly arith: StepArithmetic, private readonly block: SparseBlock, private readonly batchRows: (split: "train" | "val", index: number) => Int32Array) {}

  /** What a task of these batches reads: their rows (ascending) and the payload. */
  payload(split: "train" | "val", batches: number[]): { rows: Uint32Array; payload: Float32Array } {
    const b = this.block, E = b.width, arith = this.arith;
    const rows = this.rowsOf(split, batches);
    arith.ensureRows(rows);
    const p = arith.readable, end = b.offset + b.rows * E;
    const payload = this.buffer(arith.size - (b.rows - rows.length) * E);
    payload.set(p.subarray(0, b.offset), 0);
    for (let k = 0; k < rows.length; k++) payload.set(p.subarray(b.offset + rows[k]! * E, b.offset + (rows[k]! + 1) * E), b.offset + k * E);
    payload.set(p.subarray(end), b.offset + rows.length * E);
    return { rows, payload };
  }

  /** The union of the batches' rows, ascending (one batch: its own list, shared, never written). */
  private rowsOf(split: "train" | "val", batches: number[]): Uint32Array {
    const lists = batches.map((i) => this.batchRows(split, i));
    if (lists.length === 1) return new Uint32Array(lists[0]!.buffer, lists[0]!.byteOffset, lists[0]!.length);
    const mark = (this.marks ??= new Uint8Array(this.block.rows));
    const out: number[] = [];
    for (const l of lists) for (let k = 0; k < l.length; k++) if (!mark[l[k]!]) { mark[l[k]!] = 1; out.push(l[k]!); }
    for (const r of out) mark[r] = 0;
    return Uint32Array.from(out).sort();
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
