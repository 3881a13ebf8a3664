// Comparing parameter vectors: how far apart two are, and how far training moved them from where they
// started. An equality check between two runs proves nothing if neither run updated anything, so every such
// check in the tests goes with assertMoved on one of the runs.
import assert from "node:assert/strict";
import type { ParamLayout } from "../../src/model/layout.js";

/** max_i |a_i − b_i| (the vectors must have the same length). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, "parameter vectors of different lengths");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** How far `final` is from `initial`: the L2 distance, the same relative to ‖initial‖, and the RMS step. */
export interface Distance {
  /** ‖final − initial‖₂ */
  l2: number;
  /** ‖final − initial‖₂ / ‖initial‖₂ */
  rel: number;
  /** ‖final − initial‖₂ / √n: the root-mean-square change of one value */
  rms: number;
  /** values that changed at all */
  changed: number;
  n: number;
}

export function distance(initial: Float32Array, final: Float32Array): Distance {
  assert.equal(initial.length, final.length, "parameter vectors of different lengths");
  let d2 = 0, p2 = 0, changed = 0;
  for (let i = 0; i < initial.length; i++) {
    const d = final[i]! - initial[i]!;
    d2 += d * d;
    p2 += initial[i]! * initial[i]!;
    if (d !== 0) changed++;
  }
  const l2 = Math.sqrt(d2);
  return { l2, rel: p2 > 0 ? l2 / Math.sqrt(p2) : Infinity, rms: initial.length ? l2 / Math.sqrt(initial.length) : 0, changed, n: initial.length };
}

export interface MovedOptions {
  /** The whole vector must satisfy ‖final − initial‖ ≥ minRel · ‖initial‖ (0: only the named tensors are checked). */
  minRel: number;
  /** With `tensors`: the layout that names the slices of the vectors. */
  layout?: ParamLayout;
  /** Named tensors that must each have moved by an RMS change of at least the given value. */
  tensors?: Record<string, number>;
}

export interface Moved {
  all: Distance;
  tensors: Record<string, Distance>;
  /** One line for a test's diagnostics. */
  summary: string;
}

/**
 * Asserts that training moved the parameters from `initial` to `final` by a meaningful amount: the whole
 * vector by at least `minRel` of its initial norm, and each tensor named in `tensors` by at least its RMS
 * floor (so a run whose update never reached, say, the recurrent weights fails too). Returns the distances.
 */
export function assertMoved(initial: Float32Array, final: Float32Array, opts: MovedOptions): Moved {
  const all = distance(initial, final);
  const tensors: Record<string, Distance> = {};
  for (const name of Object.keys(opts.tensors ?? {})) {
    assert.ok(opts.layout, "assertMoved: naming tensors needs the layout");
    const e = opts.layout.entries.find((x) => x.name === name);
    assert.ok(e, `assertMoved: no tensor ${name} in the layout`);
    tensors[name] = distance(initial.subarray(e.offset, e.offset + e.size), final.subarray(e.offset, e.offset + e.size));
  }
  const fmt = (d: Distance) => `‖Δ‖ ${d.l2.toExponential(3)} (rel ${d.rel.toExponential(3)}, rms ${d.rms.toExponential(3)}, ${d.changed}/${d.n} changed)`;
  const summary = [`moved: all ${fmt(all)}`, ...Object.entries(tensors).map(([k, d]) => `${k} ${fmt(d)}`)].join("; ");
  assert.ok(all.rel >= opts.minRel, `the parameters barely moved from their initial values: ${summary}; want rel ≥ ${opts.minRel}`);
  for (const [name, floor] of Object.entries(opts.tensors ?? {})) {
    assert.ok(tensors[name]!.rms >= floor, `${name} barely moved from its initial values: ${summary}; want its rms ≥ ${floor}`);
  }
  return { all, tensors, summary };
}
