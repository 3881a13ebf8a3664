// Batches too large for one buffer binding run as two halves: every result is a sum (or a concatenation)
// over reviews, so the halves add up to the whole batch's result exactly as a float32 sum of two parts.
//
// Legend: B batch, T padded length, N parameters.
import { PAD_ID } from "../../config.js";
import type { EngineBatch, EvalResult } from "../types.js";

/** Reviews [from, to) of a batch, re-padded to their own longest length. */
export function sliceBatch(b: EngineBatch, from: number, to: number): EngineBatch {
  const n = to - from;
  const lengths = b.lengths.slice(from, to);
  const T = Math.max(...lengths);
  const tokens = new Int32Array(n * T).fill(PAD_ID); // [n, T]
  for (let i = 0; i < n; i++) tokens.set(b.tokens!.subarray((from + i) * b.maxLen, (from + i) * b.maxLen + lengths[i]), i * T);
  return { size: n, maxLen: T, lengths, tokens, targets: b.targets.slice(from, to), ids: b.ids?.slice(from, to), dropout: b.dropout };
}

/** Runs `run` on the two halves of `batch`, one after the other. */
export async function halves<R>(batch: EngineBatch, run: (half: EngineBatch) => Promise<R>): Promise<[R, R]> {
  const h = batch.size >> 1;
  const a = await run(sliceBatch(batch, 0, h));
  const b = await run(sliceBatch(batch, h, batch.size));
  return [a, b];
}

/** Evaluation of the whole batch: outputs concatenated [B]. (Training steps: mergeRowSteps in ../rows.ts.) */
export function mergeEval(a: EvalResult, b: EvalResult): EvalResult {
  const outputs = new Float32Array(a.outputs.length + b.outputs.length);
  outputs.set(a.outputs); outputs.set(b.outputs, a.outputs.length);
  return { lossSum: a.lossSum + b.lossSum, correct: a.correct + b.correct, count: a.count + b.count, outputs };
}
