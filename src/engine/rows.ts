// The rows form of parameters and gradients (see RowParams and RowStepResult in types.ts): the dense
// tensors whole, the embedding table as the rows a batch reads or touches. Conversions to and from the
// full vector, checks, and the sum of two halves' results.
//
// Legend: V vocabulary rows, E embedding width, N all parameters, D = N − V·E dense parameters (everything
// after embedding.weight, which the layout puts first), R rows given or touched, B batch, T padded length.
import { InputError, UsageError } from "../errors.js";
import type { ParamLayout } from "../model/layout.js";
import type { EngineBatch, EngineParams, RowParams, RowStepResult, StepResult } from "./types.js";

/** The embedding table's shape in a layout: V rows of E, V·E values at offset 0; V = E = 0 for dense input. */
export function embeddingShape(layout: ParamLayout): { V: number; E: number; size: number } {
  const e = layout.entries.find((x) => x.name === "embedding.weight");
  if (!e) return { V: 0, E: 0, size: 0 };
  if (e.offset !== 0) throw new UsageError("the rows form expects embedding.weight first in the layout");
  return { V: e.shape[0]!, E: e.shape[1]!, size: e.size };
}

/** True for the rows form. */
export function isRowParams(p: EngineParams): p is RowParams {
  return !(p instanceof Float32Array);
}

/**
 * The embedding rows a batch reads: its token ids at t < length (<pad> included where a review holds it),
 * ascending, unique. What a caller sends as RowParams.rows. InputError for an id outside 0..V−1.
 */
export function batchRows(batch: EngineBatch, V: number): Int32Array {
  const { size: B, maxLen: T, lengths, tokens } = batch;
  if (!tokens || tokens.length !== B * T || lengths.length !== B) throw new UsageError(`batch.tokens must have B*T = ${B * T} entries and lengths ${B}`);
  const seen = new Uint8Array(V);
  const ids: number[] = [];
  for (let b = 0; b < B; b++) {
    const n = Math.min(Math.max(lengths[b], 0), T);
    for (let t = 0; t < n; t++) {
      const id = tokens[b * T + t];
      if (!(id >= 0 && id < V)) throw new InputError(`token id ${id} at batch row ${b}, position ${t} is outside the vocabulary (V=${V})`);
      if (!seen[id]) { seen[id] = 1; ids.push(id); }
    }
  }
  return Int32Array.from(ids).sort();
}

/** The rows form of a full vector [N]: its dense part and the given rows (copies). */
export function toRowParams(layout: ParamLayout, params: Float32Array, rows: Int32Array): RowParams {
  const { size, E } = embeddingShape(layout);
  const values = new Float32Array(rows.length * E); // [R, E]
  for (let i = 0; i < rows.length; i++) values.set(params.subarray(rows[i] * E, rows[i] * E + E), i * E);
  return { dense: params.slice(size), rows: Int32Array.from(rows), values };
}

/** UsageError unless `p` fits the layout: D dense values, rows ascending and unique in 0..V−1, R·E values. */
export function checkRowParams(layout: ParamLayout, p: RowParams): void {
  const { V, E, size } = embeddingShape(layout);
  if (p.dense.length !== layout.size - size) throw new UsageError(`expected ${layout.size - size} dense parameters, got ${p.dense.length}`);
  if (p.values.length !== p.rows.length * E) throw new UsageError(`${p.rows.length} embedding rows need ${p.rows.length * E} values, got ${p.values.length}`);
  for (let i = 0; i < p.rows.length; i++) {
    const r = p.rows[i];
    if (!(r >= 0 && r < V)) throw new UsageError(`embedding row ${r} is outside 0..${V - 1}`);
    if (i > 0 && r <= p.rows[i - 1]) throw new UsageError(`embedding rows must be ascending and unique (${p.rows[i - 1]} then ${r})`);
  }
}

/** InputError naming the first row of `needed` (ascending) that `given` (ascending) lacks. */
export function checkRowsGiven(needed: ArrayLike<number>, given: Int32Array): void {
  let j = 0;
  for (let i = 0; i < needed.length; i++) {
    const id = needed[i];
    while (j < given.length && given[j] < id) j++;
    if (j === given.length || given[j] !== id) throw new InputError(`the batch reads embedding row ${id}, which is not among the ${given.length} rows given`);
  }
}

/** Writes the dense part and the given rows of `p` into a full vector [N]; other rows keep what they held. */
export function writeRowParams(layout: ParamLayout, p: RowParams, into: Float32Array): void {
  const { size, E } = embeddingShape(layout);
  into.set(p.dense, size);
  for (let i = 0; i < p.rows.length; i++) into.set(p.values.subarray(i * E, i * E + E), p.rows[i] * E);
}

/** The rows form of a full-gradient step: dense gradient [D] and the touched rows' gradient [R, E] (copies). */
export function toRowStep(layout: ParamLayout, r: StepResult): RowStepResult {
  const rows = r.embeddingRows ?? new Int32Array(0);
  const { dense, values } = toRowParams(layout, r.grads, rows);
  return { lossSum: r.lossSum, correct: r.correct, count: r.count, dense, rows, values };
}

/** The full form of a rows-form step: a fresh gradient [N], zero outside the dense part and the touched rows. */
export function toFullStep(layout: ParamLayout, r: RowStepResult): StepResult {
  const grads = new Float32Array(layout.size); // [N]
  writeRowParams(layout, { dense: r.dense, rows: r.rows, values: r.values }, grads);
  const base = { lossSum: r.lossSum, correct: r.correct, count: r.count, grads, embeddingRows: r.rows };
  return embeddingShape(layout).V > 0 ? { ...base, touched: { "embedding.weight": r.rows } } : base;
}

/**
 * Two halves of a batch as one step: dense gradients added, touched rows united (ascending) with their
 * values added; a row one half lacks counts as +0 in it, so the sums equal those of two full vectors.
 */
export function mergeRowSteps(a: RowStepResult, b: RowStepResult, E: number): RowStepResult {
  const dense = new Float32Array(a.dense.length);
  for (let i = 0; i < dense.length; i++) dense[i] = a.dense[i] + b.dense[i];
  const rows = Int32Array.from(new Set([...a.rows, ...b.rows])).sort();
  const values = new Float32Array(rows.length * E); // [R, E]
  let i = 0, j = 0;
  for (let k = 0; k < rows.length; k++) {
    const ia = i < a.rows.length && a.rows[i] === rows[k] ? i++ : -1;
    const jb = j < b.rows.length && b.rows[j] === rows[k] ? j++ : -1;
    for (let e = 0; e < E; e++) values[k * E + e] = (ia >= 0 ? a.values[ia * E + e] : 0) + (jb >= 0 ? b.values[jb * E + e] : 0);
  }
  return { lossSum: a.lossSum + b.lossSum, correct: a.correct + b.correct, count: a.count + b.count, dense, rows, values };
}
