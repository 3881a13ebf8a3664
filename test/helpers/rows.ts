// Shared by the rows-form tests of the CPU and GPU engines: token batches and bit-for-bit comparisons of
// a rows-form step (RowStepResult) with a full-gradient step (StepResult).
import assert from "node:assert/strict";
import { PAD_ID, UNK_ID } from "../../src/config.js";
import type { ParamLayout } from "../../src/model/layout.js";
import type { Rng } from "../../src/rng.js";
import type { EngineBatch, RowStepResult, StepResult } from "../../src/engine/index.js";

/** A batch of random token ids in 0..V−1; with `special`, <unk> and <pad> inside the first review too. */
export function tokenBatch(rng: Rng, V: number, lengths: number[], special = false): EngineBatch {
  const B = lengths.length, T = Math.max(...lengths);
  const tokens = new Int32Array(B * T).fill(PAD_ID);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) tokens[b * T + t] = rng.int(V);
  if (special && lengths[0] >= 2) { tokens[0] = PAD_ID; tokens[1] = UNK_ID; }
  const targets = Float32Array.from(lengths, () => rng.int(2));
  return { size: B, maxLen: T, lengths: Int32Array.from(lengths), tokens, targets, ids: Int32Array.from(lengths, (_, i) => 3 * i + 1) };
}

/** Index of the first element whose bits differ (NaN and ±0 told apart), −1 when all agree. */
export function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

export function assertSameBits(a: Float32Array, b: Float32Array, what: string): void {
  const i = firstBitDifference(a, b);
  assert.equal(i, -1, `${what}: differs at ${i} (${a[i]} vs ${b[i]}; lengths ${a.length}, ${b.length})`);
}

/** The rows form holds the full step's numbers bit for bit, and the rows it leaves out are exactly zero there. */
export function assertRowsOfFull(layout: ParamLayout, full: StepResult, rows: RowStepResult, what: string): void {
  const emb = layout.entries.find((e) => e.name === "embedding.weight");
  const E = emb ? emb.shape[1]! : 0, VE = emb ? emb.size : 0;
  assert.equal(rows.lossSum, full.lossSum, `${what}: loss`);
  assert.equal(rows.correct, full.correct);
  assert.equal(rows.count, full.count);
  assertSameBits(rows.dense, full.grads.subarray(VE), `${what}: dense gradient`);
  assert.deepEqual([...rows.rows], [...(full.embeddingRows ?? [])], `${what}: touched rows`);
  const given = new Set(rows.rows);
  for (let i = 0; i < rows.rows.length; i++) {
    const r = rows.rows[i];
    assertSameBits(rows.values.subarray(i * E, i * E + E), full.grads.subarray(r * E, r * E + E), `${what}: row ${r}`);
  }
  for (let r = 0; r < VE / (E || 1); r++) {
    if (given.has(r)) continue;
    for (let e = 0; e < E; e++) assert.equal(full.grads[r * E + e], 0, `${what}: untouched row ${r} has a gradient`);
  }
}

/** Two rows-form steps agree bit for bit. */
export function assertSameRowStep(a: RowStepResult, b: RowStepResult, what: string): void {
  assert.equal(a.lossSum, b.lossSum, `${what}: loss`);
  assert.equal(a.correct, b.correct);
  assertSameBits(a.dense, b.dense, `${what}: dense gradient`);
  assert.deepEqual([...a.rows], [...b.rows], `${what}: rows`);
  assertSameBits(a.values, b.values, `${what}: row values`);
}

/** Not vacuous: the step produced gradients (some dense value and, for token models, some row value ≠ 0). */
export function assertMoved(r: RowStepResult, what: string): void {
  assert.ok(r.dense.some((x) => x !== 0), `${what}: the dense gradient is all zero`);
  if (r.rows.length > 0) assert.ok(r.values.some((x) => x !== 0), `${what}: the row gradients are all zero`);
}
