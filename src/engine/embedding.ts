// Embedding lookup and its gradient on typed arrays (tfjs-wasm has no UnsortedSegmentSum).
// Legend: V rows, E width, B batch, T time; tokens are batch-major [B*T], X is time-major [T*B, E].
import { PAD_ID } from "../config.js";
import { InputError } from "../errors.js";

/** X[t*B + b, :] = emb[tokens[b*T + t], :] for t < len[b]; zero rows past each length. */
export function gather(emb: Float32Array, V: number, E: number, tokens: Int32Array, lengths: Int32Array, B: number, T: number): Float32Array {
  const x = new Float32Array(T * B * E);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < lengths[b]; t++) {
      const id = tokens[b * T + t];
      if (!(id >= 0 && id < V)) throw new InputError(`token id ${id} at batch row ${b}, position ${t} is outside the vocabulary (V=${V})`);
      x.set(emb.subarray(id * E, id * E + E), (t * B + b) * E);
    }
  }
  return x;
}

/**
 * dEmb[tokens[b*T + t], :] += dX[t*B + b, :] for t < len[b] (rows of <pad> get none, as padding_idx).
 * Returns the sorted unique rows touched.
 */
export function scatterAdd(dEmb: Float32Array, E: number, dx: Float32Array, tokens: Int32Array, lengths: Int32Array, B: number, T: number): Int32Array {
  const touched = new Set<number>();
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < lengths[b]; t++) {
      const id = tokens[b * T + t];
      if (id === PAD_ID) continue;
      touched.add(id);
      const o = id * E, s = (t * B + b) * E;
      for (let j = 0; j < E; j++) dEmb[o + j] += dx[s + j];
    }
  }
  return Int32Array.from(touched).sort();
}
