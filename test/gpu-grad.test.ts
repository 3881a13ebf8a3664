// The WebGPU engine against the CPU engine on the same inputs: loss, accuracy, logits and every gradient
// tensor (relative error < 1e-3 in float32). Runs on a real GPU when there is one, else on Dawn's OpenGL ES
// backend over Mesa's llvmpipe (CI); skipped, saying why, only when no adapter at all can be created.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig } from "../src/config.js";
import { PAD_ID } from "../src/config.js";
import { InputError, UsageError } from "../src/errors.js";
import { initParams } from "../src/model/layout.js";
import { Rng } from "../src/rng.js";
import { createEngine, type Engine, type EngineBatch } from "../src/engine/index.js";
import { acquireDevice, envAdapterIndex, hardwareAdapters, listAdapters, parseAdapterList, type GpuDevice } from "../src/engine/gpu/device.js";
import { GpuEngine } from "../src/engine/gpu/engine.js";
import { gpuEngineFor } from "../src/engine/gpu/select.js";

let gpu: GpuDevice | undefined;
let skip: string | false = false;

before(async () => {
  try {
    gpu = await acquireDevice();
  } catch (err) {
    skip = `no WebGPU adapter could be created (${(err as Error).message})`;
  }
});

after(() => gpu?.device.destroy());

function tokenBatch(rng: Rng, V: number, lengths: number[], padInside = false): EngineBatch {
  const B = lengths.length, T = Math.max(...lengths);
  const tokens = new Int32Array(B * T).fill(PAD_ID);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) tokens[b * T + t] = rng.int(V);
  if (padInside) tokens[0] = PAD_ID;
  const targets = Float32Array.from(lengths, () => rng.int(2));
  return { size: B, maxLen: T, lengths: Int32Array.from(lengths), tokens, targets };
}

/** max |a − b| over a tensor, relative to max |b| of that tensor. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return m === 0 ? d : d / m;
}

const CASES: { name: string; model: ModelConfig; lengths: number[][]; loss?: "bce" | "mse" }[] = [
  // H = 24 and E = 20 are not multiples of the 16-wide tiles; B = 19 spans two row tiles.
  { name: "lstm", model: { cell: "lstm", vocabSize: 40, embedDim: 20, hidden: 24, layers: 1, bidirectional: false },
    lengths: [[9, 3, 5, 1, 9, 7, 2, 8, 9, 4, 6, 1, 3, 9, 5, 5, 2, 7, 9], [1], [4, 4]] },
  { name: "gru", model: { cell: "gru", vocabSize: 40, embedDim: 20, hidden: 24, layers: 1, bidirectional: false },
    lengths: [[9, 3, 5, 1, 9, 7, 2, 8, 9, 4, 6, 1, 3, 9, 5, 5, 2, 7, 9], [1], [4, 4]] },
  { name: "lstm mse, 64-wide tiles", model: { cell: "lstm", vocabSize: 300, embedDim: 70, hidden: 32, layers: 1, bidirectional: false },
    lengths: [[30, 12, 30, 29, 1, 17, 30, 25]], loss: "mse" },
];

for (const c of CASES) {
  test(`gpu engine matches the CPU engine: ${c.name}`, async (t) => {
    if (skip) return t.skip(skip);
    const cpu: Engine = await createEngine({ model: c.model, backend: "wasm", loss: c.loss });
    const eng = await GpuEngine.create({ model: c.model, gpu, loss: c.loss });
    assert.equal(eng.layout.hash, cpu.layout.hash);
    const rng = new Rng(7);
    for (const lengths of c.lengths) {
      const params = initParams(c.model, rng.nextU32());
      const batch = tokenBatch(rng, c.model.vocabSize, lengths, true);
      const want = await cpu.step(params, batch);
      const got = await eng.step(params, batch);
      assert.ok(Math.abs(got.lossSum - want.lossSum) <= 1e-4 * Math.max(1, Math.abs(want.lossSum)), `loss ${got.lossSum} vs ${want.lossSum}`);
      assert.equal(got.correct, want.correct);
      assert.equal(got.count, want.count);
      for (const e of eng.layout.entries) {
        const g = got.grads.subarray(e.offset, e.offset + e.size), w = want.grads.subarray(e.offset, e.offset + e.size);
        const err = relErr(g, w);
        assert.ok(err < 1e-3, `${c.name} B=${lengths.length}: ${e.name} relative error ${err.toExponential(2)}`);
      }
      assert.deepEqual([...got.embeddingRows!], [...want.embeddingRows!]);
      const ge = await eng.evaluate(params, batch), we = await cpu.evaluate(params, batch);
      assert.ok(relErr(ge.outputs, we.outputs) < 1e-4, "logits");
      assert.equal(ge.correct, we.correct);
    }
    eng.dispose();
  });
}

test("gpu engine matches the CPU engine with dropout on the classifier's input (lstm, gru; split batch too)", async (t) => {
  if (skip) return t.skip(skip);
  for (const cell of ["lstm", "gru"] as const) {
    const model: ModelConfig = { cell, vocabSize: 40, embedDim: 20, hidden: 24, layers: 1, bidirectional: false };
    const cpu = await createEngine({ model, backend: "wasm", dropout: 0.4 });
    // the second engine halves the batch (binding limit): each half draws its rows' masks by sample id
    for (const eng of [await GpuEngine.create({ model, gpu }), await GpuEngine.create({ model, gpu, maxBindingBytes: 20_000 })]) {
      const rng = new Rng(11);
      const params = initParams(model, 3);
      const batch = tokenBatch(rng, 40, [9, 3, 5, 1, 9, 7, 2, 8], true);
      batch.ids = Int32Array.from([40, 7, 19, 3, 28, 11, 5, 33]);
      batch.dropout = { rate: 0.4, seed: 1234 };
      const want = await cpu.step(params, batch);
      const got = await eng.step(params, batch);
      const plain = await cpu.step(params, { ...batch, dropout: undefined });
      assert.ok(Math.abs(plain.lossSum - want.lossSum) > 1e-3, "the masks change the loss (else this test proves nothing)");
      assert.ok(Math.abs(got.lossSum - want.lossSum) <= 1e-4 * Math.max(1, Math.abs(want.lossSum)), `${cell}: loss ${got.lossSum} vs ${want.lossSum}`);
      for (const e of eng.layout.entries) {
        const err = relErr(got.grads.subarray(e.offset, e.offset + e.size), want.grads.subarray(e.offset, e.offset + e.size));
        assert.ok(err < 1e-3, `${cell}: ${e.name} relative error ${err.toExponential(2)}`);
      }
      // evaluation has no dropout, and the masked final states of the step did not leak into it
      const ge = await eng.evaluate(params, batch), we = await cpu.evaluate(params, batch);
      assert.ok(relErr(ge.outputs, we.outputs) < 1e-4, `${cell}: logits`);
      eng.dispose();
    }
  }
});

test("gpu engine: a grown bucket reuses the batch size's buffers, and results stay exact", async (t) => {
  if (skip) return t.skip(skip);
  const model: ModelConfig = { cell: "lstm", vocabSize: 30, embedDim: 8, hidden: 16, layers: 1, bidirectional: false };
  const eng = await GpuEngine.create({ model, gpu });
  const rng = new Rng(3);
  const params = initParams(model, 5);
  const short = tokenBatch(rng, 30, [3, 2, 3]);
  const long = tokenBatch(rng, 30, [70, 66, 1]);
  const a1 = await eng.step(params, short);
  const bytesShort = eng.bufferBytes;
  await eng.step(params, long);
  const bytesLong = eng.bufferBytes;
  assert.ok(bytesLong > bytesShort, "capacity grows for a longer bucket");
  const a2 = await eng.step(params, short);
  assert.equal(eng.bufferBytes, bytesLong, "a shorter bucket reuses the grown buffers");
  assert.deepEqual([...a2.grads], [...a1.grads], "same batch, same buffers: identical gradients");
  eng.dispose();
});

test("gpu engine: a batch over the binding limit runs as halves with the same results", async (t) => {
  if (skip) return t.skip(skip);
  const model: ModelConfig = { cell: "gru", vocabSize: 30, embedDim: 8, hidden: 16, layers: 1, bidirectional: false };
  const cpu = await createEngine({ model, backend: "wasm" });
  // One (B=4, Tcap=64) gate buffer is 4·64·48·4 = 49 kB: a 20 kB limit forces two levels of halving.
  const eng = await GpuEngine.create({ model, gpu, maxBindingBytes: 20_000 });
  const params = initParams(model, 9);
  const batch = tokenBatch(new Rng(4), 30, [9, 2, 7, 5], true);
  const want = await cpu.step(params, batch), got = await eng.step(params, batch);
  assert.ok(Math.abs(got.lossSum - want.lossSum) <= 1e-4 * Math.abs(want.lossSum));
  assert.equal(got.count, 4);
  for (const e of eng.layout.entries) {
    const err = relErr(got.grads.subarray(e.offset, e.offset + e.size), want.grads.subarray(e.offset, e.offset + e.size));
    assert.ok(err < 1e-3, `${e.name} relative error ${err.toExponential(2)}`);
  }
  assert.deepEqual([...got.embeddingRows!], [...want.embeddingRows!]);
  const ev = await eng.evaluate(params, batch), wv = await cpu.evaluate(params, batch);
  assert.ok(relErr(ev.outputs, wv.outputs) < 1e-4);
  eng.dispose();
});

test("gpu engine: bad inputs are typed errors", async (t) => {
  if (skip) return t.skip(skip);
  const model: ModelConfig = { cell: "lstm", vocabSize: 10, embedDim: 4, hidden: 16, layers: 1, bidirectional: false };
  const eng = await GpuEngine.create({ model, gpu });
  const params = initParams(model, 1);
  const batch = tokenBatch(new Rng(1), 10, [3, 2]);
  batch.tokens![1] = 10;
  await assert.rejects(eng.step(params, batch), InputError);
  await assert.rejects(eng.step(params.subarray(1), tokenBatch(new Rng(1), 10, [3])), UsageError);
  await assert.rejects(GpuEngine.create({ model: { ...model, layers: 2 }, gpu }), UsageError);
  // The failed batch left no stale token marks behind.
  const ok = await eng.step(params, tokenBatch(new Rng(2), 10, [3, 2]));
  assert.equal(ok.count, 2);
  eng.dispose();
});

test("gpu device: adapter index from the environment", () => {
  assert.equal(envAdapterIndex({ IMDB_TRAIN_GPU: "1" }), 1);
  assert.equal(envAdapterIndex({ CUDA_VISIBLE_DEVICES: "3,4" }), 3);
  assert.equal(envAdapterIndex({ CUDA_VISIBLE_DEVICES: "GPU-abc" }), undefined);
  assert.equal(envAdapterIndex({}), undefined);
});

test("gpu device: Dawn's adapter list parses; software and GL entries are not GPUs", () => {
  const msg = "no adapter with name 'x' found\nAvailable adapters:\n * backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3'\n" +
    " * backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3'\n * backend: 'opengles', name: 'NVIDIA H100 80GB HBM3/PCIe/SSE2'\n" +
    " * backend: 'opengles', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'";
  const list = parseAdapterList(msg);
  assert.equal(list.length, 4);
  assert.deepEqual(list[0], { backend: "vulkan", name: "NVIDIA H100 80GB HBM3" });
  assert.deepEqual(hardwareAdapters(list).map((a) => a.backend), ["vulkan", "vulkan"]);
});

test("gpu engine selection: auto only with a hardware GPU, webgpu for covered models", async (t) => {
  if (skip) return t.skip(skip);
  const model: ModelConfig = { cell: "lstm", vocabSize: 20, embedDim: 4, hidden: 16, layers: 1, bidirectional: false };
  assert.equal(await gpuEngineFor({ model, backend: "wasm" }), undefined);
  assert.equal(await gpuEngineFor({ model: { ...model, layers: 2 }, backend: "webgpu" }), undefined);
  assert.equal(await gpuEngineFor({ model, backend: "webgpu", input: "dense", inputDim: 3 }), undefined);
  const withDropout = await gpuEngineFor({ model, backend: "webgpu", dropout: 0.5 });
  assert.equal(withDropout?.backend, "webgpu", "dropout runs in the WGSL kernels");
  withDropout?.dispose();
  const hw = hardwareAdapters(await listAdapters()).length > 0;
  const auto = await gpuEngineFor({ model, backend: "auto" });
  assert.equal(auto !== undefined, hw, "auto picks the GPU engine exactly when a hardware adapter exists");
  auto?.dispose();
  const forced = await gpuEngineFor({ model, backend: "webgpu" });
  assert.ok(forced);
  assert.equal(forced.backend, "webgpu");
  const r = await forced.step(initParams(model, 2), tokenBatch(new Rng(5), 20, [4, 3]));
  assert.equal(r.count, 2);
  forced.dispose();
});
