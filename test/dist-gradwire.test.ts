// Gradient encodings on the wire: the half-float codec and the coordinator's decoding of fp16 and
// embedding-rows parts; then real `train` runs (coordinator + 2 worker processes, real ZeroMQ) with
// --embedding-grads rows (exactly the fp32 dense parameters) and --grad-dtype fp16 (within a tolerance).
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ingestSmallDataset, trainRun, initialParamsOf, type SmallDataset } from "./helpers/training.js";
import { assertMoved, maxAbsDiff } from "./helpers/params.js";
import { toHalf, halfTable, encodeHalf, halfScale, encodeGradient, encodeRows, type SparseBlock } from "../src/protocol/gradcodec.js";
import { toHalves } from "../src/optim/half-encoder.js";
import { Arena, Kernels } from "../src/optim/kernels.js";
import { StepArithmetic } from "../src/optim/step.js";

test("encodeHalf gives toHalf's bits for every kind of value and scale (its float32-bits path and its fallbacks)", () => {
  // every float32 exponent with mantissas at, around and between the rounding ties (odd and even), then random
  // bit patterns (NaN, Inf, subnormals and zeros of both signs among them)
  const bits: number[] = [];
  for (let e = 0; e < 256; e++) {
    for (const m of [0, 1, 0xfff, 0x1000, 0x1001, 0x2fff, 0x3000, 0x3001, 0x7fe000, 0x7fefff, 0x7ff000, 0x7ff001, 0x7fffff]) {
      bits.push((e << 23) | m, ((1 << 31) | (e << 23) | m) >>> 0);
    }
  }
  let seed = 12345;
  for (let i = 0; i < 200_000; i++) { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; bits.push((seed ^ (seed << 13)) >>> 0); }
  const values = new Float32Array(Uint32Array.from(bits).buffer);
  // powers of two (the fast path) up to the ends of the range it takes, and scales it leaves to toHalf
  for (const scale of [1, 2 ** 14, 2 ** -20, 2 ** 100, 2 ** -100, 2 ** 101, 2 ** -101, 3, 0.1]) {
    for (const src of [values, values.subarray(5)]) { // a view at an offset, as a rows-layout piece is
      const got = encodeHalf(src, scale);
      for (let i = 0; i < src.length; i++) {
        const want = toHalf(src[i]! * scale);
        if (got[i] !== want) assert.fail(`scale ${scale}, float32 bits ${new Uint32Array(src.buffer, src.byteOffset)[i]!.toString(16)}: ${got[i]!.toString(16)}, toHalf ${want.toString(16)}`);
      }
    }
  }
});

test("toHalves (the SIMD kernels) gives halfScale's scale and encodeHalf's bits: normal and subnormal halves, zeros, ties, NaN, Inf, every scale", () => {
  // float32 bit patterns: every exponent with mantissas at, around and between the rounding ties, both signs,
  // then random ones; sets of them with different largest magnitudes pick scales from 2^-100 to 2^100
  const bits: number[] = [];
  for (let e = 0; e < 256; e++) {
    for (const m of [0, 1, 0xfff, 0x1000, 0x1001, 0x2fff, 0x3000, 0x3001, 0x7fe000, 0x7fefff, 0x7ff000, 0x7ff001, 0x7fffff]) bits.push((e << 23) | m, ((1 << 31) | (e << 23) | m) >>> 0);
  }
  let seed = 777;
  for (let i = 0; i < 100_000; i++) { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; bits.push((seed ^ (seed << 13)) >>> 0); }
  const all = new Float32Array(Uint32Array.from(bits).buffer);
  const below = (e: number) => all.filter((x) => Math.abs(x) < 2 ** (e - 127)); // no NaN: its comparison is false
  const withNaN = below(128).slice(0, 50_001);
  withNaN[17] = NaN; withNaN[40_000] = -NaN;
  const sets: [string, Float32Array][] = [
    ["empty (a slice's piece), as the first call", new Float32Array(0)], ["every pattern (Inf: scale 1)", all], ["finite (scale 2^-100)", below(255)], ["below 2^-30", below(97)], ["below 2^-107 (scale 2^100)", below(20)],
    ["below 1, NaN among them", withNaN], ["zeros", new Float32Array(13)], ["a short tail", all.subarray(1000, 1011)], ["one value", Float32Array.of(-3e-6)],
  ];
  const scales = new Set<number>();
  for (const [what, src] of sets) {
    const got = toHalves(src), scale = halfScale(src);
    assert.equal(got.scale, scale, what);
    scales.add(scale);
    const want = encodeHalf(src, scale);
    assert.equal(got.values.length, src.length, what);
    for (let i = 0; i < src.length; i++) {
      if (got.values[i] !== want[i]) assert.fail(`${what}: float32 bits ${new Uint32Array(src.buffer, src.byteOffset)[i]!.toString(16)} at ${i}: ${got.values[i]!.toString(16)}, encodeHalf ${want[i]!.toString(16)}`);
    }
  }
  assert.ok(scales.has(1) && scales.has(2 ** -100) && scales.has(2 ** 100) && scales.size >= 5, [...scales].join(", "));
});

test("half floats: every half round-trips; the SIMD decoder equals the table; rows and fp16 parts sum like dense ones", () => {
  const t = halfTable();
  for (let h = 0; h < 65536; h++) {
    const nan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (nan) assert.ok(Number.isNaN(t[h]!)); else assert.equal(toHalf(t[h]!), h, `half ${h.toString(16)}`);
  }
  assert.equal(toHalf(65520), 0x7c00, "overflow rounds to Inf");
  assert.equal(toHalf(2 ** -25), 0, "half of the smallest subnormal rounds to even (0)");
  assert.equal(toHalf(1 + 2 ** -11), 0x3c00, "a tie rounds to even");
  const arena = new Arena(65536 + 32768 + 8);
  const k = new Kernels(arena);
  const src = arena.allocHalf(65536), dst = arena.alloc(65536);
  for (let h = 0; h < 65536; h++) src[h] = h;
  k.half(dst, src, 2 ** -9);
  for (let h = 0; h < 65536; h++) if (!Object.is(dst[h], Math.fround(t[h]! * 2 ** -9)) && !Number.isNaN(t[h]!)) assert.fail(`decoded half ${h.toString(16)}: ${dst[h]}`);

  // a model-like vector: 3 values, an embedding block of 10 rows × 4, 5 values
  const block: SparseBlock = { offset: 3, rows: 10, width: 4 };
  const size = 3 + 40 + 5;
  const grad = (touched: number[], seed: number) => {
    const g = new Float32Array(size);
    for (let i = 0; i < 3; i++) g[i] = Math.sin(seed + i);
    for (const r of touched) for (let j = 0; j < 4; j++) g[3 + r * 4 + j] = Math.cos(seed * 7 + r + j) / 3;
    for (let i = 43; i < size; i++) g[i] = Math.sin(seed * 3 + i) * 5;
    return g;
  };
  const parts = [grad([1, 4, 7], 1), grad([0, 4, 9], 2), grad([4], 3)];
  const enc = encodeRows(parts[0]!, block);
  assert.deepEqual(Array.from(enc.rows), [1, 4, 7]);
  assert.equal(enc.values.length, 3 + 12 + 5);
  const init = new Float32Array(size).fill(0.5);
  const opts = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  const dense = new StepArithmetic(size, opts, init, block);
  const rows = new StepArithmetic(size, opts, init, block);
  const half = new StepArithmetic(size, opts, init, block);
  for (const g of parts) {
    dense.add(g);
    const r = encodeGradient(g, { f16: false, block });
    rows.add({ values: r.values, scale: 1, rows: r.rows });
    const h = encodeGradient(g, { f16: true, block: null });
    half.add({ values: h.values, scale: 1 / h.scale, rows: null });
  }
  assert.ok(Object.is(rows.sumsq(1 / 12), dense.sumsq(1 / 12)), "rows: the same sum, bit for bit");
  const rel = Math.abs(half.sumsq(1 / 12) / dense.sumsq(1 / 12) - 1);
  assert.ok(rel < 2e-3, `fp16: the sum's squared norm within 0.2% (${rel})`);
  for (const a of [dense, rows]) for (const _ of a.update(1 / 12, 1)) { /* apply */ }
  assert.deepEqual(Array.from(rows.params), Array.from(dense.params));
  // and the update did something: Adam's first step moves each of the 28 values with a nonzero gradient (3 + 5
  // dense, rows 0, 1, 4, 7, 9 of the block) by lr = 0.01, i.e. ‖Δ‖ = 0.01·√28 = 0.053 against ‖p₀‖ = 0.5·√48
  // = 3.46: rel 0.0153. The floor 0.01 fails a step that moved less than ~2/3 of that
  assertMoved(init, dense.params, { minRel: 0.01 });
});

// ---- real runs ------------------------------------------------------------------------------------------------

let fx: SmallDataset;
const SMALL = ["--hidden", "16", "--embed-dim", "8", "--epochs", "1", "--max-steps", "6", "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--clip", "1", "--seed", "5", "--max-val-batches", "1"];

before(async () => {
  fx = await ingestSmallDataset("imdb-gradwire-", { train: 48, test: 8, seed: 13, words: [5, 40] }, { batchSize: 4, vocabSize: 200, maxLen: 30 });
});

after(() => fx?.cleanup());

async function train(name: string, extra: string[], steps = 6) {
  const r = await trainRun(fx.dataset, join(fx.root, name), ["--workers", "2", "--backend", "wasm", ...SMALL, ...extra]);
  assert.equal(r.json.steps, steps);
  return { params: r.params, bytes: r.json.gradient_bytes as number, model: r.model };
}

test("rows pull and push (the default) and --embedding-grads rows equal fp32 dense exactly; --grad-dtype fp16 stays within 0.2% of the distance travelled, sharded too", async (t) => {
  const first = await train("init", ["--max-steps", "1", "--lr", "1e-30"], 1);
  const init = first.params; // the initial parameters: one Adam step moves a value by at most lr = 1e-30
  // which is what initialParamsOf (used by the other tests' "moved" checks) computes from a saved model
  const computed = maxAbsDiff(initialParamsOf(first.model), init);
  assert.ok(computed <= 1e-29, `initialParamsOf differs from the run's initial parameters by ${computed}`);
  const DENSE = ["--pull", "dense"];
  const d = await train("dense", [...DENSE, "--embedding-grads", "dense"]), r = await train("rows", [...DENSE, "--embedding-grads", "rows"]);
  const h = await train("fp16", [...DENSE, "--embedding-grads", "dense", "--grad-dtype", "fp16"]);
  const p = await train("pull", []); // the default: tasks carry their rows, gradients come back as rows
  // fp16 to a sharded coordinator: each slice's piece of the rows form in half floats with its own scale (a piece
  // can hold no value: a slice none of the task's rows fall in)
  const hs = await train("fp16-shards", ["--grad-dtype", "fp16", "--coordinator-shards", "3"]);
  const [dense, rows, half] = [d.params, r.params, h.params];
  t.diagnostic(`gradient bytes over 6 steps: fp32 dense ${d.bytes}, rows ${r.bytes}, fp16 ${h.bytes}, rows pull ${p.bytes}`);
  assert.deepEqual(Array.from(p.params), Array.from(dense), "rows pull and push: exactly the dense parameters");
  assert.equal(d.bytes, 6 * 2 * dense.length * 4, "dense: 2 float32 vectors per step");
  assert.equal(h.bytes, d.bytes / 2, "fp16: half the bytes");
  // (this tiny vocabulary is mostly touched every step; bench allreduce shows the saving at IMDB's size)
  assert.ok(r.bytes < d.bytes, "rows: only the touched embedding rows (and their ids)");
  let moved = 0, maxRows = 0, maxHalf = 0, dist = 0, off = 0, offShards = 0;
  for (let i = 0; i < dense.length; i++) {
    moved = Math.max(moved, Math.abs(dense[i]! - init[i]!));
    maxRows = Math.max(maxRows, Math.abs(rows[i]! - dense[i]!));
    maxHalf = Math.max(maxHalf, Math.abs(half[i]! - dense[i]!));
    dist += (dense[i]! - init[i]!) ** 2;
    off += (half[i]! - dense[i]!) ** 2;
    offShards += (hs.params[i]! - dense[i]!) ** 2;
  }
  const relHalf = Math.sqrt(off / dist), relShards = Math.sqrt(offShards / dist);
  t.diagnostic(`moved ${moved.toExponential(2)}; rows max |Δ| ${maxRows}; fp16 max |Δ| ${maxHalf.toExponential(2)}, ‖Δ‖/‖travelled‖ ${relHalf.toExponential(2)}`);
  assert.ok(moved > 0.01, "training moved the parameters");
  // by how much: 6 Adam steps of lr 0.01 move each value with a gradient by up to 0.06, and the first step alone
  // by 0.01; the floors (an RMS change of 0.005 = half a first step, for the recurrent weights and the head,
  // and 1% of ‖p₀‖ overall) fail a run whose steps never reached the parameters or a tensor
  const m = assertMoved(init, dense, { minRel: 0.01, layout: d.model.layout, tensors: { "rnn.l0.w_hh": 0.005, "fc.weight": 0.005 } });
  t.diagnostic(m.summary);
  assert.equal(maxRows, 0, "rows: exactly the dense parameters");
  assert.ok(relHalf < 2e-3, `fp16: ‖p_fp16 − p_fp32‖ / ‖p_fp32 − p_0‖ = ${relHalf}`);
  t.diagnostic(`fp16 to 3 coordinator shards: ‖Δ‖/‖travelled‖ ${relShards.toExponential(6)} (unsharded ${relHalf.toExponential(6)}), gradient bytes ${hs.bytes}`);
  assert.ok(relShards > 0 && relShards < 2e-3, `fp16, sharded: ‖p − p_fp32‖ / ‖p_fp32 − p_0‖ = ${relShards}`);
});
