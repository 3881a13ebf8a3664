// The count-ones data set: seeded random binary sequences, label = number of ones.
// Legend: N sequences, T steps each, D = 1 input width.
import { Rng } from "../rng.js";
import type { EngineBatch } from "../engine/types.js";

export interface CountDataset {
  /** N */
  size: number;
  /** T */
  length: number;
  /** [N*T] 0/1 inputs, row-major. */
  inputs: Float32Array;
  /** [N] number of ones of each sequence. */
  counts: Float32Array;
}

/** N sequences of T independent fair coin flips (0 or 1) drawn from `rng`. */
export function makeCountDataset(rng: Rng, size: number, length: number): CountDataset {
  const inputs = new Float32Array(size * length); //   [N*T]
  const counts = new Float32Array(size); //            [N]
  for (let n = 0; n < size; n++) {
    let ones = 0;
    for (let t = 0; t < length; t++) {
      const bit = rng.next() < 0.5 ? 1 : 0;
      inputs[n * length + t] = bit;
      ones += bit;
    }
    counts[n] = ones;
  }
  return { size, length, inputs, counts };
}

/** Train and test sets from one seed (the test set comes from its own forked stream). */
export function makeCountSplits(seed: number, train: number, test: number, length: number): { train: CountDataset; test: CountDataset } {
  const rng = new Rng(seed);
  const trainRng = rng.fork(1);
  const testRng = rng.fork(2);
  return { train: makeCountDataset(trainRng, train, length), test: makeCountDataset(testRng, test, length) };
}

/** The engine batch of the sequences `rows` (every sequence has the full length T; D = 1). */
export function countBatch(ds: CountDataset, rows: ArrayLike<number>): EngineBatch {
  const B = rows.length;
  const T = ds.length;
  const inputs = new Float32Array(B * T); //           [B*T*1]
  const targets = new Float32Array(B); //              [B]
  for (let b = 0; b < B; b++) {
    const n = rows[b]!;
    inputs.set(ds.inputs.subarray(n * T, (n + 1) * T), b * T);
    targets[b] = ds.counts[n]!;
  }
  return { size: B, maxLen: T, lengths: new Int32Array(B).fill(T), inputs, targets };
}

/** Row indices 0..N-1 cut into batches of `batchSize` (the last one may be smaller), optionally shuffled. */
export function batchRows(size: number, batchSize: number, rng?: Rng): Int32Array[] {
  const order = Int32Array.from({ length: size }, (_, i) => i);
  if (rng) rng.shuffle(order);
  const out: Int32Array[] = [];
  for (let i = 0; i < size; i += batchSize) out.push(order.subarray(i, Math.min(size, i + batchSize)));
  return out;
}
