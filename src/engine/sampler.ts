// Seeded draws over the vocabulary for the pretraining engines: Walker's alias method (O(1) per draw), the
// distributions drawn from (unigram counts^α, log-uniform over frequency-ordered ids) and the seeds that tie
// every draw to a sample id, so that a review gets the same draws on any worker, in any batch, after a resume.
// Legend: V vocabulary rows.
import { UsageError } from "../errors.js";
import { Rng } from "../rng.js";

/** Draws ids with probability q[id] ∝ weights[id] (zero weights are never drawn). */
export class AliasTable {
  /** [V] normalised probabilities. */
  readonly q: Float64Array;
  private readonly accept: Float64Array; // [V] keep the bucket's own id when u < accept
  private readonly alias: Int32Array; //   [V] the other id of each bucket
  readonly size: number;

  constructor(weights: ArrayLike<number>) {
    const V = weights.length;
    let total = 0;
    for (let i = 0; i < V; i++) {
      if (!(weights[i] >= 0 && Number.isFinite(weights[i]))) throw new UsageError(`sampling weight ${weights[i]} of id ${i} is not a finite non-negative number`);
      total += weights[i];
    }
    if (!(total > 0)) throw new UsageError("every sampling weight is zero");
    this.size = V;
    this.q = Float64Array.from(weights, (w) => w / total);
    this.accept = new Float64Array(V);
    this.alias = new Int32Array(V);
    // Vose's construction: buckets of mass 1 (scaled by V), each an id's own share topped up by one other id.
    const scaled = Float64Array.from(this.q, (p) => p * V);
    const small: number[] = [], large: number[] = [];
    for (let i = V - 1; i >= 0; i--) (scaled[i] < 1 ? small : large).push(i);
    while (small.length && large.length) {
      const s = small.pop()!, l = large.pop()!;
      this.accept[s] = scaled[s];
      this.alias[s] = l;
      scaled[l] = scaled[l] + scaled[s] - 1;
      (scaled[l] < 1 ? small : large).push(l);
    }
    for (const i of large) { this.accept[i] = 1; this.alias[i] = i; }
    for (const i of small) { this.accept[i] = 1; this.alias[i] = i; } // rounding leftovers
  }

  /** One id (two 32-bit draws of `rng`). */
  draw(rng: Rng): number {
    const i = Math.floor(rng.next() * this.size);
    return rng.next() < this.accept[i] ? i : this.alias[i];
  }
}

/** weights[id] = max(counts[id], floor)^power, 0 for the `excluded` ids. */
export function unigramWeights(counts: ArrayLike<number>, power: number, floor: number, excluded: readonly number[]): Float64Array {
  const w = Float64Array.from(counts, (c) => {
    if (!(c >= 0 && Number.isFinite(c))) throw new UsageError(`token count ${c} is not a finite non-negative number`);
    return Math.max(c, floor) ** power;
  });
  for (const id of excluded) if (id < w.length) w[id] = 0;
  return w;
}

/** weights[id] = log((id+2)/(id+1)) (Zipf-like over ids ordered by frequency), 0 for the `excluded` ids. */
export function logUniformWeights(V: number, excluded: readonly number[]): Float64Array {
  const w = new Float64Array(V);
  for (let id = 0; id < V; id++) w[id] = Math.log((id + 2) / (id + 1));
  for (const id of excluded) if (id < V) w[id] = 0;
  return w;
}

/** The seed of one sample's draws: depends only on (seed, id, salt). */
export function sampleSeed(seed: number, id: number, salt: number): number {
  return Math.imul(seed ^ salt, 0x27d4eb2d) ^ Math.imul(id + 1, 0x9e3779b1);
}

/** A seed for a whole batch that depends only on the SET of its sample ids (not their order) and `seed`. */
export function batchSeed(seed: number, ids: ArrayLike<number>, salt: number): number {
  let h = 0;
  for (let i = 0; i < ids.length; i++) {
    let z = Math.imul(ids[i] ^ 0x7f4a7c15, 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    h = (h + (z ^ (z >>> 16))) | 0;
  }
  return sampleSeed(seed, h, salt);
}

/** Sorted unique ids of the rows flagged in `mark` ([V], non-zero = touched). */
export function markedRows(mark: Uint8Array): Int32Array {
  let n = 0;
  for (let i = 0; i < mark.length; i++) if (mark[i]) n++;
  const rows = new Int32Array(n);
  for (let i = 0, k = 0; i < mark.length; i++) if (mark[i]) rows[k++] = i;
  return rows;
}
