// The rows form on the WebGPU engine (software adapter in CI): stepRows reads back exactly the dense
// gradient and the touched embedding rows, and they are the full step's numbers bit for bit; a step given
// only the dense part and the batch's rows equals a step given the whole vector; halves of a batch over
// the binding limit merge to the same bits; the GPU's rows agree with the CPU engine's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig } from "../src/config.js";
import { PAD_ID, UNK_ID } from "../src/config.js";
import { InputError } from "../src/errors.js";
import { initParams } from "../src/model/layout.js";
import { Rng } from "../src/rng.js";
import { batchRows, createEngine, toRowParams } from "../src/engine/index.js";
import { acquireDevice, type GpuDevice } from "../src/engine/gpu/device.js";
import { GpuEngine } from "../src/engine/gpu/engine.js";
import { assertMoved, assertRowsOfFull, assertSameBits, assertSameRowStep, tokenBatch } from "./helpers/rows.js";

let gpu: GpuDevice | undefined;
let skip: string | false = false;

before(async () => {
  try { gpu = await acquireDevice(); } catch (err) { skip = `no WebGPU adapter could be created (${(err as Error).message})`; }
});

after(() => gpu?.device.destroy());

const MODELS: { name: string; model: ModelConfig; maxBindingBytes?: number }[] = [
  { name: "lstm", model: { cell: "lstm", vocabSize: 40, embedDim: 20, hidden: 24, layers: 1, bidirectional: false } },
  { name: "gru", model: { cell: "gru", vocabSize: 40, embedDim: 20, hidden: 24, layers: 1, bidirectional: false } },
  // (B=4, Tcap=64) gate buffers of 49 kB over a 20 kB limit: batches run as halves (twice)
  { name: "gru in halves", model: { cell: "gru", vocabSize: 30, embedDim: 8, hidden: 16, layers: 1, bidirectional: false }, maxBindingBytes: 20_000 },
];
const BATCHES: [number[], boolean][] = [[[9, 3, 5, 1, 9, 7, 2, 8, 9, 4, 6, 1, 3, 9, 5, 5, 2, 7, 9], true], [[4, 4], false], [[12, 2, 7, 5], true], [[1], false]];

for (const { name, model, maxBindingBytes } of MODELS) {
  test(`gpu engine, rows form: same bits as the full step, and from the batch's rows alone (${name})`, async (t) => {
    if (skip) return t.skip(skip);
    const eng = await GpuEngine.create({ model, gpu, maxBindingBytes });
    const V = model.vocabSize, E = model.embedDim, Np = eng.layout.size - V * E;
    const rng = new Rng(23);
    const params = initParams(model, 8);
    for (const [lengths, special] of BATCHES) {
      const batch = tokenBatch(rng, V, lengths, special);
      batch.dropout = { rate: 0.3, seed: 77 };
      const full = await eng.step(params, batch);
      const before = eng.profile.readbackBytes;
      const fromFull = await eng.stepRows(params, batch);
      assertRowsOfFull(eng.layout, full, fromFull, `${name} B=${lengths.length}`);
      if (!maxBindingBytes) {
        // exactly the logits, the dense gradient and the touched rows came back (<pad>'s row skipped)
        assert.equal(eng.profile.readbackBytes - before, 4 * (batch.size + Np + fromFull.rows.length * E), "bytes read back");
      }
      const given = toRowParams(eng.layout, params, batchRows(batch, V));
      if (special) assert.ok(given.rows.includes(PAD_ID) && given.rows.includes(UNK_ID) && !fromFull.rows.includes(PAD_ID), "<pad> is read but not touched");
      assertSameRowStep(await eng.stepRows(given, batch), fromFull, `${name}: only the batch's rows`);
      const extra = Int32Array.from(new Set([...given.rows, 0, 2, V - 1])).sort();
      assertSameRowStep(await eng.stepRows(toRowParams(eng.layout, params, extra), batch), fromFull, `${name}: extra rows`);
      assertSameBits((await eng.evaluate(given, batch)).outputs, (await eng.evaluate(params, batch)).outputs, `${name}: evaluation`);
      if (lengths.length > 1) assertMoved(fromFull, name);
    }
    eng.dispose();
  });
}

test("gpu engine, rows form: garbage outside the given rows is never read; a missing row is an InputError", async (t) => {
  if (skip) return t.skip(skip);
  const model = MODELS[0].model, V = model.vocabSize;
  const eng = await GpuEngine.create({ model, gpu });
  const params = initParams(model, 4);
  const batch = tokenBatch(new Rng(8), V, [6, 3, 5], true);
  const rows = batchRows(batch, V);
  const poisoned = params.slice();
  const read = new Set(rows);
  for (let r = 0; r < V; r++) if (!read.has(r)) poisoned.fill(Number.NaN, r * model.embedDim, (r + 1) * model.embedDim);
  assertSameRowStep(await eng.stepRows(poisoned, batch), await eng.stepRows(params, batch), "rows the batch does not read");
  const missing = toRowParams(eng.layout, params, rows.filter((r) => r !== rows[2]));
  await assert.rejects(eng.stepRows(missing, batch), (e: Error) => e instanceof InputError && e.message.includes(`row ${rows[2]},`));
  // the refused step left nothing behind: the next one is exact
  assertSameRowStep(await eng.stepRows(toRowParams(eng.layout, params, rows), batch), await eng.stepRows(params, batch), "after a refused step");
  eng.dispose();
});

test("gpu engine, rows form: the GPU's rows are the CPU engine's rows, values within float32 tolerance", async (t) => {
  if (skip) return t.skip(skip);
  const model = MODELS[0].model, V = model.vocabSize;
  const eng = await GpuEngine.create({ model, gpu });
  const cpu = await createEngine({ model, backend: "wasm" });
  const params = initParams(model, 12);
  const batch = tokenBatch(new Rng(31), V, [9, 4, 7, 2], true);
  const given = toRowParams(eng.layout, params, batchRows(batch, V));
  const [g, c] = [await eng.stepRows(given, batch), await cpu.stepRows(given, batch)];
  assert.deepEqual([...g.rows], [...c.rows]);
  let d = 0, m = 0;
  for (let i = 0; i < c.values.length; i++) { d = Math.max(d, Math.abs(g.values[i] - c.values[i])); m = Math.max(m, Math.abs(c.values[i])); }
  assert.ok(m > 0 && d / m < 1e-3, `embedding rows: relative error ${d / m}`);
  eng.dispose();
});
