import { test } from "node:test";
import assert from "node:assert/strict";
import { batchRows, countBatch, makeCountSplits } from "../src/experiments/count-data.js";
import { Rng } from "../src/rng.js";

test("count-ones data: seeded, labels are the number of ones, splits differ", () => {
  const a = makeCountSplits(7, 300, 50, 20);
  const b = makeCountSplits(7, 300, 50, 20);
  const c = makeCountSplits(8, 300, 50, 20);
  assert.deepEqual(a.train.inputs, b.train.inputs);
  assert.deepEqual(a.test.counts, b.test.counts);
  assert.notDeepEqual(a.train.inputs, c.train.inputs);
  assert.notDeepEqual(a.train.inputs.subarray(0, 50 * 20), a.test.inputs);
  for (const ds of [a.train, a.test]) {
    assert.equal(ds.inputs.length, ds.size * 20);
    for (let n = 0; n < ds.size; n++) {
      let ones = 0;
      for (let t = 0; t < 20; t++) {
        const v = ds.inputs[n * 20 + t]!;
        assert.ok(v === 0 || v === 1);
        ones += v;
      }
      assert.equal(ds.counts[n], ones);
    }
  }
  // fair coin: the mean count is close to T/2
  const mean = a.train.counts.reduce((s, v) => s + v, 0) / a.train.size;
  assert.ok(Math.abs(mean - 10) < 0.5, `mean count ${mean}`);
});

test("count-ones batches: shapes, full lengths, every row once per epoch", () => {
  const { train } = makeCountSplits(1, 100, 10, 20);
  const batches = batchRows(train.size, 16, new Rng(3));
  assert.equal(batches.length, 7);
  assert.equal(batches[6]!.length, 4);
  const seen = new Set<number>();
  for (const rows of batches) for (const r of rows) seen.add(r);
  assert.equal(seen.size, 100);
  const b = countBatch(train, batches[0]!);
  assert.equal(b.size, 16);
  assert.equal(b.maxLen, 20);
  assert.deepEqual(b.lengths, new Int32Array(16).fill(20));
  assert.equal(b.inputs!.length, 16 * 20);
  const r0 = batches[0]![0]!;
  assert.deepEqual(b.inputs!.subarray(0, 20), train.inputs.subarray(r0 * 20, r0 * 20 + 20));
  assert.equal(b.targets[0], train.counts[r0]);
});
