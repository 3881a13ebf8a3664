// Getting a step's results back to the host: one staging buffer, filled by GPU copies at the end of the
// last command buffer, mapped once. Only what the step produced travels: the dense gradient and the rows of
// the batch's tokens (already compact on the GPU, in ascending id order; <pad>'s row, which gets no
// gradient, is skipped by copying the rows before and after it).
//
// Legend: B batch, Np parameters without the embedding table, U distinct tokens of the batch, R = U less
// <pad> the touched rows, E embedding width.
//
//   staging = [ logits [B] | dense gradient G [Np] | touched rows of dEmbC [R, E] ]   (training)
//   staging = [ logits [B] ]                                                          (evaluation)
import { UnavailableError } from "../../errors.js";
import type { BatchBuffers, Shared } from "./buffers.js";
import type { StepPlan } from "./plan.js";
import { PHASES, type Timestamps } from "./recorder.js";

const MAP_READ_MODE = 1;

/** Byte offsets of the parts of the staging buffer, the touched rows R, and how many bytes to map. */
export interface StagingLayout { gradOff: number; embOff: number; rows: number; bytes: number }

/** Records the copies into the staging buffer (and the timestamp resolve); returns where each part lies. */
export function recordReadback(enc: GPUCommandEncoder, s: Shared, bb: BatchBuffers, plan: StepPlan, ts?: Timestamps): StagingLayout {
  const { B, train } = plan, { uniq, padU } = plan.tokens, U = uniq.length, row = s.In * 4;
  const gradOff = B * 4, embOff = (B + s.Np) * 4;
  enc.copyBufferToBuffer(bb.head, 0, bb.staging, 0, B * 4); //                                   logits [B]
  if (!train) return { gradOff, embOff, rows: 0, bytes: B * 4 };
  enc.copyBufferToBuffer(s.G, 0, bb.staging, gradOff, s.Np * 4); //                               G      [Np]
  const before = padU < 0 ? U : padU, after = padU < 0 ? 0 : U - padU - 1; //                    rows around <pad>
  if (before > 0) enc.copyBufferToBuffer(bb.dEmbC, 0, bb.staging, embOff, before * row); //      [before, E]
  if (after > 0) enc.copyBufferToBuffer(bb.dEmbC, (padU + 1) * row, bb.staging, embOff + before * row, after * row); // [after, E]
  if (ts) {
    enc.resolveQuerySet(ts.set, 0, 2 * PHASES, ts.resolve, 0);
    enc.copyBufferToBuffer(ts.resolve, 0, ts.read, 0, 16 * PHASES);
  }
  const rows = before + after;
  return { gradOff, embOff, rows, bytes: embOff + rows * row };
}

/**
 * Waits for the step (popping the validation scope opened before recording), maps the staging buffer
 * and hands its first `bytes` to `read`; unmapped after. A step WebGPU rejected is an UnavailableError.
 */
export async function readStaging<R>(device: GPUDevice, bb: BatchBuffers, plan: StepPlan, bytes: number, onMapped: () => void, read: (mapped: ArrayBuffer) => R): Promise<R> {
  const size = Math.ceil(bytes / 8) * 8;
  const [invalid] = await Promise.all([device.popErrorScope(), bb.staging.mapAsync(MAP_READ_MODE, 0, size)]);
  try {
    if (invalid) throw new UnavailableError(`WebGPU rejected the step (batch ${plan.B} × ${plan.T}): ${invalid.message}`);
    onMapped();
    return read(bb.staging.getMappedRange(0, size));
  } finally {
    bb.staging.unmap();
  }
}

/** logits [B]: the head's outputs, first in the staging buffer. */
export function unpackLogits(mapped: ArrayBuffer, plan: StepPlan): Float32Array {
  return new Float32Array(mapped, 0, plan.B).slice();
}

/** The step's gradient in rows form: dense G [Np], the touched rows (ascending ids, <pad> left out) and their values [R, E]. */
export function unpackRows(mapped: ArrayBuffer, at: StagingLayout, plan: StepPlan, s: Shared): { dense: Float32Array; rows: Int32Array; values: Float32Array } {
  const { uniq, padU } = plan.tokens;
  const dense = new Float32Array(mapped, at.gradOff, s.Np).slice(); //          [Np]
  const values = new Float32Array(mapped, at.embOff, at.rows * s.In).slice(); // [R, E]
  const rows = padU < 0 ? uniq : Int32Array.from([...uniq.subarray(0, padU), ...uniq.subarray(padU + 1)]); // [R]
  return { dense, rows, values };
}

/** Milliseconds of GPU time of each phase, from the timestamps the last training step wrote. */
export async function readPhaseTimes(ts: Timestamps): Promise<number[]> {
  await ts.read.mapAsync(MAP_READ_MODE, 0, 16 * PHASES);
  try {
    const ns = new BigUint64Array(ts.read.getMappedRange(0, 16 * PHASES));
    return Array.from({ length: PHASES }, (_, i) => Number(ns[2 * i + 1] - ns[2 * i]) / 1e6);
  } finally {
    ts.read.unmap();
  }
}
