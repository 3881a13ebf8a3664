// The fused engine against (1) tfjs autodiff of the slow op-by-op reference and (2) central finite
// differences of an independent float64 TypeScript forward pass.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig } from "../src/config.js";
import { PAD_ID } from "../src/config.js";
import { InputError, UsageError } from "../src/errors.js";
import { initParams } from "../src/model/layout.js";
import { Rng } from "../src/rng.js";
import { createEngine, type EngineBatch } from "../src/engine/index.js";
import { ReferenceModel } from "../src/engine/reference.js";
import { lossSum64 } from "./engine-float64.js";

function tokenBatch(rng: Rng, V: number, lengths: number[]): EngineBatch {
  const B = lengths.length, T = Math.max(...lengths);
  const tokens = new Int32Array(B * T).fill(PAD_ID);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) tokens[b * T + t] = 2 + rng.int(V - 2);
  const targets = Float32Array.from(lengths, () => rng.int(2));
  return { size: B, maxLen: T, lengths: Int32Array.from(lengths), tokens, targets };
}

function denseBatch(rng: Rng, D: number, lengths: number[]): EngineBatch {
  const B = lengths.length, T = Math.max(...lengths);
  const inputs = new Float32Array(B * T * D);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b] * D; t++) inputs[b * T * D + t] = rng.int(2);
  const targets = Float32Array.from(lengths, (_, b) => { let s = 0; for (let i = 0; i < lengths[b] * D; i++) s += inputs[b * T * D + i]; return s; });
  return { size: B, maxLen: T, lengths: Int32Array.from(lengths), inputs, targets };
}

/** max |a − b| over a tensor, relative to max |b| of that tensor. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return m === 0 ? d : d / m;
}

const CASES: { name: string; model: ModelConfig; lengths: number[][] }[] = [
  { name: "lstm", model: { cell: "lstm", vocabSize: 30, embedDim: 6, hidden: 8, layers: 1, bidirectional: false }, lengths: [[7, 3, 5, 1], [4], [6, 6, 2], [1]] },
  { name: "gru", model: { cell: "gru", vocabSize: 30, embedDim: 6, hidden: 8, layers: 1, bidirectional: false }, lengths: [[7, 3, 5, 1], [5, 5]] },
  { name: "lstm 2 layers bidirectional", model: { cell: "lstm", vocabSize: 25, embedDim: 5, hidden: 6, layers: 2, bidirectional: true }, lengths: [[6, 2, 4], [3]] },
  { name: "lstm bidirectional", model: { cell: "lstm", vocabSize: 25, embedDim: 5, hidden: 6, layers: 1, bidirectional: true }, lengths: [[5, 1, 3]] },
  { name: "gru 2 layers bidirectional", model: { cell: "gru", vocabSize: 25, embedDim: 5, hidden: 6, layers: 2, bidirectional: true }, lengths: [[6, 2, 4], [1]] },
];

for (const c of CASES) {
  test(`engine gradients match tfjs autodiff of the reference: ${c.name}`, async () => {
    const engine = await createEngine({ model: c.model, backend: "wasm" });
    const ref = new ReferenceModel({ model: c.model });
    assert.equal(ref.layout.hash, engine.layout.hash);
    const rng = new Rng(11);
    for (const lengths of c.lengths) {
      const params = initParams(c.model, rng.nextU32());
      const batch = tokenBatch(rng, c.model.vocabSize, lengths);
      const got = await engine.step(params, batch);
      const want = ref.grads(params, batch);
      const ev = ref.evaluate(params, batch);
      assert.ok(Math.abs(got.lossSum - want.lossSum) <= 1e-5 * Math.max(1, Math.abs(want.lossSum)), `loss ${got.lossSum} vs ${want.lossSum}`);
      assert.equal(got.correct, ev.correct);
      assert.equal(got.count, lengths.length);
      for (const e of engine.layout.entries) {
        const err = relErr(got.grads.subarray(e.offset, e.offset + e.size), want.grads.subarray(e.offset, e.offset + e.size));
        assert.ok(err < 1e-4, `${e.name} lengths ${lengths}: relative error ${err.toExponential(2)}`);
      }
      // Embedding rows reported as touched cover every non-zero row of the gradient.
      const E = c.model.embedDim, rows = new Set(got.embeddingRows);
      for (let v = 0; v < c.model.vocabSize; v++) {
        if (rows.has(v)) continue;
        for (let j = 0; j < E; j++) assert.equal(got.grads[v * E + j], 0, `row ${v} not reported but non-zero`);
      }
    }
  });
}

test("engine gradients match the reference for dense input + mse (count-ones shape, D=1, H=20)", async () => {
  const model: ModelConfig = { cell: "lstm", vocabSize: 0, embedDim: 0, hidden: 20, layers: 1, bidirectional: false };
  const engine = await createEngine({ model, input: "dense", inputDim: 1, loss: "mse", backend: "wasm" });
  const ref = new ReferenceModel({ model, input: "dense", inputDim: 1, loss: "mse" });
  const rng = new Rng(5);
  const params = initParams({ ...model, inputDim: 1 }, 3);
  const batch = denseBatch(rng, 1, [10, 4, 7, 10, 1]);
  const got = await engine.step(params, batch);
  const want = ref.grads(params, batch);
  assert.ok(Math.abs(got.lossSum - want.lossSum) <= 1e-5 * Math.max(1, want.lossSum));
  assert.equal(got.embeddingRows, undefined);
  assert.ok(relErr(got.grads, want.grads) < 1e-4);
  const ev = await engine.evaluate(params, batch);
  assert.ok(relErr(ev.outputs, ref.evaluate(params, batch).outputs) < 1e-5);
});

test("gradients of the summed loss add up over batch halves (2 workers × b = 1 worker × 2b)", async () => {
  const model: ModelConfig = { cell: "lstm", vocabSize: 20, embedDim: 4, hidden: 5, layers: 1, bidirectional: false };
  const engine = await createEngine({ model, backend: "wasm" });
  const rng = new Rng(2);
  const params = initParams(model, 9);
  const full = tokenBatch(rng, 20, [5, 5, 5, 5]);
  const half = (k: number): EngineBatch => ({ size: 2, maxLen: 5, lengths: full.lengths.slice(2 * k, 2 * k + 2),
    tokens: full.tokens!.slice(10 * k, 10 * k + 10), targets: full.targets.slice(2 * k, 2 * k + 2) });
  const g = await engine.step(params, full);
  const a = await engine.step(params, half(0));
  const b = await engine.step(params, half(1));
  const sum = a.grads.map((x, i) => x + b.grads[i]);
  assert.ok(relErr(sum, g.grads) < 1e-5);
  assert.ok(Math.abs(a.lossSum + b.lossSum - g.lossSum) < 1e-5);
});

const FD_CASES: { name: string; model: ModelConfig; dense?: number }[] = [
  { name: "lstm", model: { cell: "lstm", vocabSize: 9, embedDim: 3, hidden: 3, layers: 1, bidirectional: false } },
  { name: "gru", model: { cell: "gru", vocabSize: 9, embedDim: 3, hidden: 3, layers: 1, bidirectional: false } },
  { name: "lstm 2 layers bidirectional", model: { cell: "lstm", vocabSize: 9, embedDim: 3, hidden: 3, layers: 2, bidirectional: true } },
  { name: "gru bidirectional, dense mse", model: { cell: "gru", vocabSize: 0, embedDim: 0, hidden: 3, layers: 1, bidirectional: true }, dense: 2 },
];

for (const c of FD_CASES) {
  test(`engine gradients match finite differences of a float64 forward pass: ${c.name}`, async () => {
    const loss = c.dense ? "mse" : "bce";
    const engine = await createEngine({ model: c.model, backend: "wasm", input: c.dense ? "dense" : "tokens", inputDim: c.dense, loss });
    const rng = new Rng(21);
    const lengths = [4, 1, 3];
    const batch = c.dense ? denseBatch(rng, c.dense, lengths) : tokenBatch(rng, c.model.vocabSize, lengths);
    const params = initParams(c.dense ? { ...c.model, inputDim: c.dense } : c.model, 4);
    for (let i = 0; i < params.length; i++) params[i] *= 2; // larger weights: gates away from their linear region
    const got = await engine.step(params, batch);
    const p64 = Float64Array.from(params);
    const opts = { dense: c.dense, loss } as const;
    const l0 = lossSum64(c.model, p64, batch, opts);
    assert.ok(Math.abs(l0 - got.lossSum) < 1e-5 * Math.max(1, l0), `loss ${got.lossSum} vs float64 ${l0}`);
    const h = 1e-5;
    let worst = 0;
    for (let i = 0; i < params.length; i++) {
      const x = p64[i];
      p64[i] = x + h; const lp = lossSum64(c.model, p64, batch, opts);
      p64[i] = x - h; const lm = lossSum64(c.model, p64, batch, opts);
      p64[i] = x;
      const fd = (lp - lm) / (2 * h);
      const err = Math.abs(fd - got.grads[i]) / Math.max(1e-2, Math.abs(fd));
      worst = Math.max(worst, err);
      assert.ok(Math.abs(fd - got.grads[i]) <= 2e-5 + 1e-3 * Math.abs(fd), `param ${i}: engine ${got.grads[i]} vs finite difference ${fd}`);
    }
    assert.ok(worst < 1e-2);
  });
}

test("dropout: gradients match finite differences with the same masks; masks follow sample ids; evaluation has none", async () => {
  const { dropoutMask } = await import("../src/engine/head.js");
  const model: ModelConfig = { cell: "lstm", vocabSize: 9, embedDim: 3, hidden: 4, layers: 1, bidirectional: false };
  const engine = await createEngine({ model, backend: "wasm" });
  const rng = new Rng(31);
  const base = tokenBatch(rng, model.vocabSize, [4, 2, 3, 4]);
  const batch: EngineBatch = { ...base, ids: Int32Array.of(17, 3, 250, 8), dropout: { rate: 0.5, seed: 77 } };
  const mask = dropoutMask(batch.ids!, 4, 4, 0.5, 77);
  assert.ok(mask.some((x) => x === 0) && mask.some((x) => x === 2), "some units dropped, the others scaled by 1 / (1 − p)");
  const params = initParams(model, 6);
  for (let i = 0; i < params.length; i++) params[i] *= 2;
  const got = await engine.step(params, batch);
  const p64 = Float64Array.from(params);
  const l0 = lossSum64(model, p64, batch, { mask });
  assert.ok(Math.abs(l0 - got.lossSum) < 1e-5 * Math.max(1, l0), `loss ${got.lossSum} vs float64 ${l0}`);
  const h = 1e-5;
  for (let i = 0; i < params.length; i++) {
    const x = p64[i];
    p64[i] = x + h; const lp = lossSum64(model, p64, batch, { mask });
    p64[i] = x - h; const lm = lossSum64(model, p64, batch, { mask });
    p64[i] = x;
    const fd = (lp - lm) / (2 * h);
    assert.ok(Math.abs(fd - got.grads[i]) <= 2e-5 + 1e-3 * Math.abs(fd), `param ${i}: engine ${got.grads[i]} vs finite difference ${fd}`);
  }
  // the same samples split over two batches in another order: the same summed gradient (masks go with the ids)
  const pick = (rows: number[]): EngineBatch => {
    const T = batch.maxLen;
    return {
      size: rows.length, maxLen: T, lengths: Int32Array.from(rows, (r) => batch.lengths[r]), targets: Float32Array.from(rows, (r) => batch.targets[r]),
      tokens: Int32Array.from(rows.flatMap((r) => [...batch.tokens!.subarray(r * T, (r + 1) * T)])), ids: Int32Array.from(rows, (r) => batch.ids![r]), dropout: batch.dropout,
    };
  };
  const a = await engine.step(params, pick([3, 0]));
  const b = await engine.step(params, pick([2, 1]));
  assert.ok(relErr(a.grads.map((x, i) => x + b.grads[i]), got.grads) < 1e-5);
  // another seed draws other masks; rate 0 and evaluation are dropout-free
  const other = await engine.step(params, { ...batch, dropout: { rate: 0.5, seed: 78 } });
  assert.ok(relErr(other.grads, got.grads) > 1e-3);
  const none = await engine.step(params, base);
  assert.deepEqual([...(await engine.step(params, { ...batch, dropout: { rate: 0, seed: 77 } })).grads], [...none.grads]);
  assert.deepEqual([...(await engine.evaluate(params, batch)).outputs], [...(await engine.evaluate(params, base)).outputs]);
  await assert.rejects(engine.step(params, { ...base, dropout: { rate: 0.5, seed: 1 } }), /dropout needs the batch's 4 sample ids/);
});

test("bad batches are refused with typed errors", async () => {
  const model: ModelConfig = { cell: "lstm", vocabSize: 10, embedDim: 3, hidden: 4, layers: 1, bidirectional: false };
  const engine = await createEngine({ model, backend: "wasm" });
  const params = initParams(model, 1);
  const ok: EngineBatch = { size: 1, maxLen: 2, lengths: Int32Array.from([2]), tokens: Int32Array.from([3, 4]), targets: Float32Array.from([1]) };
  await engine.step(params, ok);
  await assert.rejects(engine.step(params, { ...ok, tokens: Int32Array.from([3, 10]) }), (e: unknown) => e instanceof InputError && /token id 10/.test((e as Error).message));
  await assert.rejects(engine.step(params, { ...ok, lengths: Int32Array.from([3]) }), UsageError);
  await assert.rejects(engine.step(params.subarray(1), ok), UsageError);
  await assert.rejects(engine.evaluate(params, { ...ok, tokens: undefined }), UsageError);
});
