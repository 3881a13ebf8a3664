// The language-model engine (task lm) against a float64 reference written from the definition (every draw
// listed on its own, no merging of equal draws), central finite differences of that reference for every
// parameter, its touched rows, determinism, and a short learning run.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig } from "../src/config.js";
import { PAD_ID } from "../src/config.js";
import { InputError, UsageError } from "../src/errors.js";
import { initParams, paramLayout } from "../src/model/layout.js";
import { Adam } from "../src/optim/adam.js";
import { Rng } from "../src/rng.js";
import { batchRows, createEngine, toRowParams, type EngineBatch } from "../src/engine/index.js";
import { drawCandidates, lmTable } from "../src/engine/lm.js";
import { gpuCovers } from "../src/engine/gpu/select.js";
import { params64, recurrent64 } from "./engine-float64.js";

/** A batch of reviews of the given lengths over ids 0 and 2..V−1 (id 0, <unk>, is a token like the others). */
function lmBatch(rng: Rng, V: number, lengths: number[], ids?: number[]): EngineBatch {
  const B = lengths.length, T = Math.max(...lengths);
  const tokens = new Int32Array(B * T).fill(PAD_ID);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) { const x = rng.int(V - 1); tokens[b * T + t] = x === PAD_ID ? 0 : x; }
  return { size: B, maxLen: T, lengths: Int32Array.from(lengths), tokens, targets: new Float32Array(B), ids: ids ? Int32Array.from(ids) : undefined, seed: 7 };
}

/** Zipf-like counts (id 2 most frequent), <pad> 0. */
const zipf = (V: number) => Array.from({ length: V }, (_, i) => (i === PAD_ID ? 0 : Math.round(1000 / (i + 1))));

/**
 * The sampled-softmax loss in float64: for each position t < len−1 of each review, target y = token t+1;
 * logits h·w_y + b_y − log Q(y) and, for each draw c ≠ y in drawing order, h·w_c + b_c − log Q(c); loss =
 * logsumexp − target's logit. Also counts predictions whose raw score h·w_y + b_y beats every such draw's.
 */
function lmLoss64(cfg: ModelConfig, p: Float64Array, batch: EngineBatch, draws: Int32Array, q: Float64Array) {
  const P = params64(paramLayout(cfg), p);
  const W = P("lm.weight"), bias = P("lm.bias"), H = cfg.hidden;
  const { seq } = recurrent64(cfg, p, batch);
  const score = (h: Float64Array, c: number) => { let s = bias[c]; for (let j = 0; j < H; j++) s += h[j] * W[c * H + j]; return s; };
  let loss = 0, correct = 0, count = 0;
  for (let b = 0; b < batch.size; b++) {
    for (let t = 0; t + 1 < batch.lengths[b]; t++) {
      const y = batch.tokens![b * batch.maxLen + t + 1], h = seq[b][t];
      const oy = score(h, y);
      const zs = [oy - Math.log(q[y])];
      let best = -Infinity;
      for (const c of draws) {
        if (c === y) continue;
        const o = score(h, c);
        best = Math.max(best, o);
        zs.push(o - Math.log(q[c]));
      }
      const m = Math.max(...zs);
      loss += m + Math.log(zs.reduce((s, z) => s + Math.exp(z - m), 0)) - zs[0];
      if (oy > best) correct++;
      count++;
    }
  }
  return { loss, correct, count };
}

const CASES: { name: string; model: ModelConfig; lengths: number[]; counts: boolean }[] = [
  { name: "lstm, unigram candidates", model: { cell: "lstm", vocabSize: 12, embedDim: 3, hidden: 4, layers: 1, bidirectional: false, task: "lm", lmSamples: 7 }, lengths: [5, 1, 3, 4], counts: true },
  { name: "gru 2 layers, log-uniform candidates", model: { cell: "gru", vocabSize: 10, embedDim: 3, hidden: 3, layers: 2, bidirectional: false, task: "lm", lmSamples: 8, lmSampler: "log-uniform" }, lengths: [4, 2, 3], counts: false },
];

for (const c of CASES) {
  test(`lm: loss and every gradient match finite differences of a float64 reference: ${c.name}`, async () => {
    const counts = c.counts ? zipf(c.model.vocabSize) : undefined;
    const engine = await createEngine({ model: c.model, backend: "wasm", counts });
    const layout = engine.layout;
    const batch = lmBatch(new Rng(3), c.model.vocabSize, c.lengths, [40, 41, 42, 43].slice(0, c.lengths.length));
    const params = initParams(c.model, 4, { counts });
    for (let i = 0; i < params.length; i++) params[i] *= 2; // larger weights: gates away from their linear region
    const table = lmTable(c.model, counts);
    const cand = drawCandidates(table, c.model.lmSamples!, batch);
    // the case exercises merged equal draws and accidental hits of the target
    assert.ok(cand.ids.length < cand.draws.length, `draws ${cand.draws} have no repeats`);
    let hits = 0;
    for (let b = 0; b < batch.size; b++) for (let t = 1; t < batch.lengths[b]; t++) if (cand.draws.includes(batch.tokens![b * batch.maxLen + t])) hits++;
    assert.ok(hits > 0, "some target is among the draws");

    const got = await engine.step(params, batch);
    const p64 = Float64Array.from(params);
    const ref = lmLoss64(c.model, p64, batch, cand.draws, table.q);
    assert.equal(got.count, c.lengths.reduce((s, n) => s + n - 1, 0));
    assert.equal(ref.count, got.count);
    assert.ok(Math.abs(ref.loss - got.lossSum) < 1e-5 * Math.max(1, ref.loss), `loss ${got.lossSum} vs float64 ${ref.loss}`);
    assert.equal(got.correct, ref.correct);
    const ev = await engine.evaluate(params, batch);
    assert.equal(ev.lossSum, got.lossSum);
    assert.equal(ev.correct, got.correct);
    assert.ok(Math.abs(ev.outputs.reduce((s, x) => s + x, 0) - ev.lossSum) < 1e-4, "per-review losses add up to the sum");

    const h = 1e-5;
    const groups = new Map<string, number>();
    for (let i = 0; i < params.length; i++) {
      const x = p64[i];
      p64[i] = x + h; const lp = lmLoss64(c.model, p64, batch, cand.draws, table.q).loss;
      p64[i] = x - h; const lm = lmLoss64(c.model, p64, batch, cand.draws, table.q).loss;
      p64[i] = x;
      const fd = (lp - lm) / (2 * h);
      const name = layout.entries.find((e) => i >= e.offset && i < e.offset + e.size)!.name;
      assert.ok(Math.abs(fd - got.grads[i]) <= 2e-5 + 1e-3 * Math.abs(fd), `${name} [${i}]: engine ${got.grads[i]} vs finite difference ${fd}`);
      if (Math.abs(fd) > 1e-3) groups.set(name, (groups.get(name) ?? 0) + 1);
    }
    // every tensor has gradients that matter (so a dropped term could not pass unnoticed)
    for (const e of layout.entries) assert.ok((groups.get(e.name) ?? 0) > 0, `${e.name} has no gradient above 1e-3`);

    // touched rows: exactly the rows with a non-zero gradient, for every row-sparse tensor
    for (const e of layout.entries.filter((x) => x.rowSparse)) {
      const width = e.size / e.shape[0];
      const rows = got.touched![e.name];
      assert.ok(rows, `touched rows of ${e.name}`);
      assert.deepEqual([...rows], [...new Set(rows)].sort((a, b) => a - b), "sorted, unique");
      for (let r = 0; r < e.shape[0]; r++) {
        const g = got.grads.subarray(e.offset + r * width, e.offset + (r + 1) * width);
        assert.equal(rows.includes(r), g.some((x) => x !== 0), `${e.name} row ${r}`);
      }
    }
    assert.deepEqual(got.embeddingRows, got.touched!["embedding.weight"]);
  });
}

test("lm: deterministic per (seed, set of ids); reviews in another order give the same loss and gradient", async () => {
  const model: ModelConfig = { cell: "lstm", vocabSize: 40, embedDim: 4, hidden: 5, layers: 1, bidirectional: false, task: "lm", lmSamples: 12 };
  const counts = zipf(40);
  const engine = await createEngine({ model, backend: "wasm", counts });
  const params = initParams(model, 2, { counts });
  const batch = lmBatch(new Rng(5), 40, [6, 9, 3, 7], [10, 11, 12, 13]);
  const a = await engine.step(params, batch), b = await engine.step(params, batch);
  assert.deepEqual(a.grads, b.grads);
  assert.equal(a.lossSum, b.lossSum);
  const table = lmTable(model, counts);
  const other = await engine.step(params, { ...batch, seed: 8 });
  assert.notDeepEqual(drawCandidates(table, 12, { ...batch, seed: 8 }).draws, drawCandidates(table, 12, batch).draws);
  assert.notEqual(other.lossSum, a.lossSum);
  // rows 3, 1, 0, 2: same ids (as a set), so the same candidates
  const order = [3, 1, 0, 2], T = batch.maxLen;
  const perm: EngineBatch = {
    ...batch, lengths: Int32Array.from(order, (r) => batch.lengths[r]), ids: Int32Array.from(order, (r) => batch.ids![r]),
    tokens: Int32Array.from(order.flatMap((r) => [...batch.tokens!.subarray(r * T, (r + 1) * T)])),
  };
  assert.deepEqual(drawCandidates(table, 12, perm).draws, drawCandidates(table, 12, batch).draws);
  const p = await engine.step(params, perm);
  assert.ok(Math.abs(p.lossSum - a.lossSum) < 1e-5 * a.lossSum);
  let err = 0, max = 0;
  for (let i = 0; i < a.grads.length; i++) { err = Math.max(err, Math.abs(a.grads[i] - p.grads[i])); max = Math.max(max, Math.abs(a.grads[i])); }
  assert.ok(err < 1e-5 * max, `gradient differs by ${err} (max ${max})`);
  // the rows form (the dense tensors, lm.* among them, and the embedding rows the batch reads) gives the same step
  const rp = toRowParams(engine.layout, params, batchRows(batch, 40));
  const rs = await engine.stepRows(rp, batch);
  const E = model.embedDim, skip = 40 * E;
  assert.deepEqual([rs.lossSum, rs.correct, rs.count], [a.lossSum, a.correct, a.count]);
  assert.deepEqual(rs.dense, a.grads.subarray(skip));
  assert.deepEqual(rs.rows, a.embeddingRows);
  assert.deepEqual(rs.values, Float32Array.from([...a.embeddingRows!].flatMap((r) => [...a.grads.subarray(r * E, (r + 1) * E)])));
  assert.equal((await engine.evaluate(rp, batch)).lossSum, (await engine.evaluate(params, batch)).lossSum);
  // padding is never read: what lies past a review's length changes nothing
  const noisy = { ...batch, tokens: Int32Array.from(batch.tokens!, (x, i) => (x === PAD_ID && i % 2 ? 5 : x)) };
  assert.deepEqual((await engine.step(params, noisy)).grads, a.grads);
});

test("lm: refusals (bidirectional, no counts for unigram, dropout, bad tokens) and the GPU engine declines", async () => {
  const model: ModelConfig = { cell: "lstm", vocabSize: 10, embedDim: 3, hidden: 4, layers: 1, bidirectional: false, task: "lm" };
  await assert.rejects(createEngine({ model: { ...model, bidirectional: true }, backend: "wasm", counts: zipf(10) }), UsageError);
  await assert.rejects(createEngine({ model, backend: "wasm" }), /needs the vocabulary's token counts/);
  await assert.rejects(createEngine({ model, backend: "wasm", counts: zipf(9) }), /9 token counts for a vocabulary of 10/);
  await assert.rejects(createEngine({ model, backend: "wasm", counts: zipf(10), dropout: 0.5 }), /no dropout/);
  await assert.rejects(createEngine({ model: { ...model, lmSamples: 0 }, backend: "wasm", counts: zipf(10) }), /lmSamples must be a positive integer/);
  const engine = await createEngine({ model, backend: "wasm", counts: zipf(10) });
  const params = initParams(model, 1);
  const ok: EngineBatch = { size: 1, maxLen: 3, lengths: Int32Array.of(3), tokens: Int32Array.of(3, 4, 5), targets: new Float32Array(1) };
  assert.equal((await engine.step(params, ok)).count, 2);
  await assert.rejects(engine.step(params, { ...ok, tokens: Int32Array.of(3, 10, 4) }), InputError);
  await assert.rejects(engine.step(params, { ...ok, dropout: { rate: 0.5, seed: 1 } }), UsageError);
  const single = await engine.step(params, { ...ok, lengths: Int32Array.of(1) });
  assert.deepEqual([single.count, single.lossSum, single.grads.some((x) => x !== 0)], [0, 0, false]);
  assert.equal(gpuCovers({ model }), false);
  assert.equal(gpuCovers({ model: { ...model, task: "classify" } }), true);
});

test("lm learns: the sampled loss of a predictable synthetic corpus falls well below its start", async () => {
  // Sequences that mostly follow x → (3x + 1) mod 28 + 2, with 10% random tokens.
  const V = 30;
  const model: ModelConfig = { cell: "lstm", vocabSize: V, embedDim: 8, hidden: 16, layers: 1, bidirectional: false, task: "lm", lmSamples: 10 };
  const counts = Array.from({ length: V }, (_, i) => (i === PAD_ID ? 0 : 100));
  const engine = await createEngine({ model, backend: "wasm", counts });
  const params = initParams(model, 3, { counts });
  const adam = new Adam(params.length, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const rng = new Rng(9);
  const batches: EngineBatch[] = [];
  for (let k = 0; k < 8; k++) {
    const B = 8, T = 20;
    const tokens = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      let x = 2 + rng.int(V - 2);
      for (let t = 0; t < T; t++) { tokens[b * T + t] = x; x = rng.next() < 0.1 ? 2 + rng.int(V - 2) : ((3 * (x - 2) + 1) % (V - 2)) + 2; }
    }
    batches.push({ size: B, maxLen: T, lengths: new Int32Array(B).fill(T), tokens, targets: new Float32Array(B), ids: Int32Array.from({ length: B }, (_, b) => k * B + b) });
  }
  const losses: number[] = [];
  for (let epoch = 0; epoch < 12; epoch++) {
    let loss = 0, n = 0;
    for (const batch of batches) {
      const r = await engine.step(params, { ...batch, seed: epoch });
      loss += r.lossSum; n += r.count;
      for (let i = 0; i < r.grads.length; i++) r.grads[i] /= r.count;
      adam.step(params, r.grads);
    }
    losses.push(loss / n);
  }
  assert.ok(losses[0] > 1.5, `first epoch ${losses[0]}`);
  assert.ok(losses[11] < 0.35 * losses[0], `loss should fall well below its start: ${losses.map((x) => x.toFixed(3))}`);
  let correct = 0, n = 0;
  for (const batch of batches) { const r = await engine.evaluate(params, batch); correct += r.correct; n += r.count; }
  assert.ok(correct / n > 0.8, `the next token beats the candidates in ${((100 * correct) / n).toFixed(1)}% of predictions`);
});
