// A task's gradient in rows form, summed over its batches: the dense part and every touched embedding row,
// each from zero in batch order — exactly the values a zero-filled full vector would hold (a row a batch does
// not touch adds +0 there, which changes nothing), but only as many as were touched.
//
// Legend: D dense parameters (after embedding.weight), E embedding width, R rows touched by any batch.
import type { RowStepResult } from "../engine/index.js";

export class RowAccumulator {
  private readonly dense: Float32Array; //                       [D]
  private readonly slot = new Map<number, number>(); //           row id → its slot in `values`
  private values = new Float32Array(0); //                        [capacity·E], slots in first-touch order
  private used = 0;

  constructor(denseSize: number, private readonly E: number) {
    this.dense = new Float32Array(denseSize);
  }

  add(r: RowStepResult): void {
    const d = this.dense, E = this.E;
    for (let i = 0; i < d.length; i++) d[i] += r.dense[i]!;
    for (let k = 0; k < r.rows.length; k++) {
      const at = this.slotOf(r.rows[k]!) * E;
      for (let j = 0; j < E; j++) this.values[at + j] += r.values[k * E + j]!;
    }
  }

  private slotOf(row: number): number {
    let s = this.slot.get(row);
    if (s === undefined) {
      s = this.used++;
      this.slot.set(row, s);
      if (this.used * this.E > this.values.length) {
        const grown = new Float32Array(Math.max(this.used * this.E, this.values.length * 2)); // zeros
        grown.set(this.values);
        this.values = grown;
      }
    }
    return s;
  }

  /** The rows (ascending) and the gradient codec's rows payload: [rows of E][dense]. */
  payload(): { rows: Uint32Array; payload: Float32Array } {
    const E = this.E;
    const rows = Uint32Array.from(this.slot.keys()).sort();
    const payload = new Float32Array(rows.length * E + this.dense.length);
    for (let k = 0; k < rows.length; k++) {
      const at = this.slot.get(rows[k]!)! * E;
      payload.set(this.values.subarray(at, at + E), k * E);
    }
    payload.set(this.dense, rows.length * E);
    return { rows, payload };
  }
}
