// The rows form on the CPU engine: stepRows returns the full step's dense gradient and touched rows bit for
// bit; a step given only the dense part and the batch's rows (RowParams) equals a step given the whole
// vector, on one engine across batches with different rows; evaluation likewise; bad row sets are refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig } from "../src/config.js";
import { InputError, UsageError } from "../src/errors.js";
import { initParams } from "../src/model/layout.js";
import { Rng } from "../src/rng.js";
import { batchRows, createEngine, toFullStep, toRowParams, type EngineBatch } from "../src/engine/index.js";
import { mergeRowSteps } from "../src/engine/rows.js";
import { assertMoved, assertRowsOfFull, assertSameBits, assertSameRowStep, tokenBatch } from "./helpers/rows.js";

const MODELS: { name: string; model: ModelConfig }[] = [
  { name: "lstm", model: { cell: "lstm", vocabSize: 30, embedDim: 6, hidden: 8, layers: 1, bidirectional: false } },
  { name: "gru 2 layers bidirectional", model: { cell: "gru", vocabSize: 25, embedDim: 5, hidden: 6, layers: 2, bidirectional: true } },
];

for (const { name, model } of MODELS) {
  test(`cpu engine, rows form: same bits as the full vector (${name})`, async () => {
    const engine = await createEngine({ model, backend: "wasm" });
    const rng = new Rng(5);
    const V = model.vocabSize;
    const params = initParams(model, 17);
    // Batches with different row sets, one after another on the same engine (rows it was not given hold
    // whatever the previous batch wrote); one with <unk> and <pad> inside a review.
    for (const [lengths, special] of [[[7, 3, 5, 1], true], [[4], false], [[6, 6, 2], true], [[2, 9], false]] as const) {
      const batch = tokenBatch(rng, V, [...lengths], special);
      const full = await engine.step(params, batch);
      const fromFull = await engine.stepRows(params, batch);
      assertRowsOfFull(engine.layout, full, fromFull, `${name} ${lengths}`);
      assertMoved(fromFull, name);
      const given = toRowParams(engine.layout, params, batchRows(batch, V));
      assertSameRowStep(await engine.stepRows(given, batch), fromFull, `${name} ${lengths}: only the batch's rows`);
      // a superset of rows (what a caller sending a few extra rows would give) changes nothing
      const extra = Int32Array.from(new Set([...given.rows, 0, V - 1])).sort();
      assertSameRowStep(await engine.stepRows(toRowParams(engine.layout, params, extra), batch), fromFull, `${name}: extra rows`);
      const ev = await engine.evaluate(given, batch), evFull = await engine.evaluate(params, batch);
      assertSameBits(ev.outputs, evFull.outputs, `${name}: evaluation`);
      // the rows are really read: another value in one of them changes the gradient
      const moved = { ...given, values: given.values.map((x, i) => (i === 0 ? x + 0.5 : x)) };
      assert.notEqual((await engine.stepRows(moved, batch)).lossSum, fromFull.lossSum, "a changed row changes the loss");
      // and the full form built back from the rows is the full step
      assertSameBits(toFullStep(engine.layout, fromFull).grads, full.grads, `${name}: rows spread back`);
    }
  });
}

test("cpu engine, rows form: a row the batch reads but was not given, or a malformed row set, is refused", async () => {
  const model = MODELS[0].model;
  const engine = await createEngine({ model, backend: "wasm" });
  const params = initParams(model, 2);
  const batch = tokenBatch(new Rng(3), model.vocabSize, [5, 4]);
  const rows = batchRows(batch, model.vocabSize);
  const missing = toRowParams(engine.layout, params, rows.subarray(1));
  await assert.rejects(engine.stepRows(missing, batch), (e: Error) => e instanceof InputError && new RegExp(`embedding row ${rows[0]}\\b`).test(e.message));
  await assert.rejects(engine.evaluate(missing, batch), InputError);
  const given = toRowParams(engine.layout, params, rows);
  await assert.rejects(engine.stepRows({ ...given, rows: given.rows.slice().reverse() }, batch), /ascending and unique/);
  await assert.rejects(engine.stepRows({ ...given, dense: given.dense.subarray(1) }, batch), UsageError);
  await assert.rejects(engine.stepRows({ ...given, values: given.values.subarray(1) }, batch), UsageError);
  const bad: EngineBatch = { ...batch, tokens: batch.tokens!.map((x, i) => (i === 0 ? model.vocabSize : x)) };
  await assert.rejects(engine.stepRows(given, bad), InputError);
});

test("cpu engine, rows form: dense-input models have no rows", async () => {
  const model: ModelConfig = { cell: "lstm", vocabSize: 1, embedDim: 1, hidden: 4, layers: 1, bidirectional: false };
  const engine = await createEngine({ model, input: "dense", inputDim: 2, loss: "mse", backend: "wasm" });
  const rng = new Rng(9);
  const params = initParams({ ...model, inputDim: 2 }, 4);
  const inputs = Float32Array.from({ length: 2 * 3 * 2 }, () => rng.int(2));
  const batch: EngineBatch = { size: 2, maxLen: 3, lengths: Int32Array.from([3, 2]), inputs, targets: Float32Array.from([2, 1]) };
  const full = await engine.step(params, batch);
  const r = await engine.stepRows({ dense: params, rows: new Int32Array(0), values: new Float32Array(0) }, batch);
  assertSameBits(r.dense, full.grads, "dense input: the whole gradient is dense");
  assert.equal(r.rows.length, 0);
  assertMoved(r, "dense input");
});

test("two halves' rows-form steps add up as two full gradients would (+0 for a row one half lacks)", () => {
  const E = 2;
  const a = { lossSum: 1, correct: 1, count: 2, dense: Float32Array.from([1, -0]), rows: Int32Array.from([1, 4]), values: Float32Array.from([-0, 2, 4, 3]) };
  const b = { lossSum: 2, correct: 0, count: 1, dense: Float32Array.from([0.5, 0]), rows: Int32Array.from([2, 4]), values: Float32Array.from([5, 6, 7, 8]) };
  const m = mergeRowSteps(a, b, E);
  assert.deepEqual([m.lossSum, m.correct, m.count], [3, 1, 3]);
  assert.deepEqual([...m.rows], [1, 2, 4]);
  assert.deepEqual([...m.values], [0, 2, 5, 6, 11, 11]);
  assert.ok(Object.is(m.values[0], 0), "a row only one half touched: -0 + 0 is +0, as in a full vector's sum");
  assert.ok(Object.is(m.dense[1], 0));
});
