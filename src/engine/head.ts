// The classifier head and the losses: out = feat·W_fc + b_fc, then BCE-with-logits or squared error.
// Legend: B batch, K feature width (directions × H). All on typed arrays (the shapes are tiny).
import { UsageError } from "../errors.js";
import { Rng } from "../rng.js";
import type { EngineBatch, LossKind } from "./types.js";

/** out[B] = feat[B, K] · w[K] + bias. */
export function headForward(feat: Float32Array, B: number, K: number, w: Float32Array, bias: number): Float32Array {
  const out = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    let s = bias;
    for (let k = 0; k < K; k++) s += feat[b * K + k] * w[k];
    out[b] = s;
  }
  return out;
}

/**
 * Sum of per-sample losses, number correct, and dOut[B] = d(lossSum)/d(out).
 * bce: loss = max(z,0) − z·y + log(1 + e^−|z|), correct when (z > 0) == (y > 0.5), dz = σ(z) − y.
 * mse: loss = (p − y)², correct when round(p) == y, dp = 2(p − y).
 */
export function lossAndGrad(out: Float32Array, targets: Float32Array, loss: LossKind): { lossSum: number; correct: number; dOut: Float32Array } {
  const dOut = new Float32Array(out.length);
  let lossSum = 0;
  let correct = 0;
  for (let b = 0; b < out.length; b++) {
    const z = out[b], y = targets[b];
    if (loss === "bce") {
      lossSum += Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
      if ((z > 0) === (y > 0.5)) correct++;
      dOut[b] = 1 / (1 + Math.exp(-z)) - y;
    } else {
      const e = z - y;
      lossSum += e * e;
      if (Math.round(z) === y) correct++;
      dOut[b] = 2 * e;
    }
  }
  return { lossSum, correct, dOut };
}

/** Gradients of the head: dW[K] = featᵀ·dOut, db = Σ dOut, dFeat[B, K] = dOut ⊗ w. */
export function headBackward(feat: Float32Array, B: number, K: number, w: Float32Array, dOut: Float32Array):
    { dw: Float32Array; db: number; dFeat: Float32Array } {
  const dw = new Float32Array(K);
  const dFeat = new Float32Array(B * K);
  let db = 0;
  for (let b = 0; b < B; b++) {
    const g = dOut[b];
    db += g;
    for (let k = 0; k < K; k++) {
      dw[k] += feat[b * K + k] * g;
      dFeat[b * K + k] = g * w[k];
    }
  }
  return { dw, db, dFeat };
}

/**
 * Inverted dropout masks [B, K] for the classifier's input: each value 0 (dropped, probability `rate`) or
 * 1 / (1 − rate). Row b depends only on (seed, ids[b]), so a sample gets the same mask on whichever worker and
 * in whichever batch it lands (2 workers × b stay equal to 1 worker × 2b), and again after a resume.
 */
export function dropoutMask(ids: Int32Array, B: number, K: number, rate: number, seed: number): Float32Array {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${rate}`);
  const mask = new Float32Array(B * K); // [B, K]
  const keep = 1 / (1 - rate);
  for (let b = 0; b < B; b++) {
    const rng = new Rng(Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) ^ ids[b]!);
    for (let k = 0; k < K; k++) mask[b * K + k] = rng.next() < rate ? 0 : keep;
  }
  return mask;
}

/** The dropout mask [B, K] of a training batch (see dropoutMask), or null: no dropout asked for, or a rate of 0. */
export function batchDropoutMask(batch: EngineBatch, K: number): Float32Array | null {
  const d = batch.dropout;
  if (!d || d.rate === 0) return null;
  if (!batch.ids || batch.ids.length !== batch.size) throw new UsageError(`dropout needs the batch's ${batch.size} sample ids`);
  return dropoutMask(batch.ids, batch.size, K, d.rate, d.seed);
}
