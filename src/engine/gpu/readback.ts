// Getting a step's results back to the host: one staging buffer, filled by GPU copies at the end of the
// last command buffer, mapped once.
//
// Legend: B batch, Np parameters without the embedding table, U distinct tokens of the batch, E embedding
// width, N = V·E + Np all parameters.
//
//   staging = [ logits [B] | dense gradient G [Np] | embedding rows dEmbC [U, E] ]   (training)
//   staging = [ logits [B] ]                                                          (evaluation)
import { UnavailableError } from "../../errors.js";
import type { BatchBuffers, Shared } from "./buffers.js";
import type { StepPlan } from "./plan.js";
import { PHASES, type Timestamps } from "./recorder.js";

const MAP_READ_MODE = 1;

/** Byte offsets of the parts of the staging buffer, and how many bytes to map. */
export interface StagingLayout { gradOff: number; embOff: number; bytes: number }

/** Records the copies into the staging buffer (and the timestamp resolve); returns where each part lies. */
export function recordReadback(enc: GPUCommandEncoder, s: Shared, bb: BatchBuffers, plan: StepPlan, ts?: Timestamps): StagingLayout {
  const { B, train } = plan, U = plan.tokens.uniq.length;
  const gradOff = B * 4, embOff = (B + s.Np) * 4;
  enc.copyBufferToBuffer(bb.head, 0, bb.staging, 0, B * 4); //                         logits [B]
  if (train) {
    enc.copyBufferToBuffer(s.G, 0, bb.staging, gradOff, s.Np * 4); //                   G      [Np]
    if (U > 0) enc.copyBufferToBuffer(bb.dEmbC, 0, bb.staging, embOff, U * s.In * 4); // dEmbC  [U, E]
  }
  if (ts && train) {
    enc.resolveQuerySet(ts.set, 0, 2 * PHASES, ts.resolve, 0);
    enc.copyBufferToBuffer(ts.resolve, 0, ts.read, 0, 16 * PHASES);
  }
  return { gradOff, embOff, bytes: train ? embOff + U * s.In * 4 : B * 4 };
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

/** The full gradient [N]: G at `base`, each touched compact row u at its token id (<pad> left out, zero). */
export function unpackGrads(mapped: ArrayBuffer, at: StagingLayout, plan: StepPlan, N: number, base: number, s: Shared): { grads: Float32Array; embeddingRows: Int32Array } {
  const { uniq, padU } = plan.tokens, U = uniq.length, E = s.In;
  const grads = new Float32Array(N); //                         [N]
  grads.set(new Float32Array(mapped, at.gradOff, s.Np), base);
  const dEmb = new Float32Array(mapped, at.embOff, U * E); //   [U, E]
  const touched: number[] = [];
  for (let u = 0; u < U; u++) {
    if (u === padU) continue;
    touched.push(uniq[u]);
    grads.set(dEmb.subarray(u * E, u * E + E), uniq[u] * E);
  }
  return { grads, embeddingRows: Int32Array.from(touched).sort() };
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
