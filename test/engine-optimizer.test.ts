// Adam and clipping against hand-computed values; the parameter layout, initialisation and GloVe loading.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ModelConfig } from "../src/config.js";
import { PAD_ID, UNK_ID } from "../src/config.js";
import { InputError } from "../src/errors.js";
import { Adam, clipByGlobalNorm, globalNorm } from "../src/optim/adam.js";
import { initParams, loadGlove, paramLayout, view } from "../src/model/layout.js";

test("Adam: first steps equal the bias-corrected update computed by hand", () => {
  const adam = new Adam(2, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const p = Float32Array.from([1, -2]);
  adam.step(p, Float32Array.from([0.5, -3]));
  // step 1: m̂ = g, v̂ = g², update = lr · g/|g| = ±0.1
  assert.ok(Math.abs(p[0] - 0.9) < 1e-6 && Math.abs(p[1] + 1.9) < 1e-6);
  adam.step(p, Float32Array.from([0.25, 0]));
  const m = 0.9 * 0.05 + 0.1 * 0.25, v = 0.999 * 0.00025 + 0.001 * 0.0625;
  const want = 0.9 - 0.1 * (m / (1 - 0.81)) / (Math.sqrt(v / (1 - 0.999 ** 2)) + 1e-8);
  assert.ok(Math.abs(p[0] - want) < 1e-6, `${p[0]} vs ${want}`);
  const s = adam.state();
  assert.equal(s.t, 2);
  const b = new Adam(2, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  b.load({ m: s.m, v: s.v, t: s.t });
  const q = Float32Array.from(p);
  const before = Float32Array.from(p);
  adam.step(p, Float32Array.from([1, 1]));
  b.step(q, Float32Array.from([1, 1]));
  assert.deepEqual(p, q);
  // and that step is Adam's third, computed by hand from the three gradients: it moves the values by −0.091 and
  // +0.029, so a loaded state that made the step do nothing (or start over) would fail
  const hist = [[0.5, -3], [0.25, 0], [1, 1]];
  for (let i = 0; i < 2; i++) {
    let m3 = 0, v3 = 0;
    for (const g of hist) { m3 = 0.9 * m3 + 0.1 * g[i]!; v3 = 0.999 * v3 + 0.001 * g[i]! ** 2; }
    const step = 0.1 * (m3 / (1 - 0.9 ** 3)) / (Math.sqrt(v3 / (1 - 0.999 ** 3)) + 1e-8);
    assert.ok(Math.abs(step) > 0.02, `third step of value ${i}: ${step}`);
    assert.ok(Math.abs(p[i]! - (before[i]! - step)) < 1e-6, `value ${i} after the third step: ${p[i]} vs ${before[i]! - step}`);
  }
  assert.throws(() => adam.step(new Float32Array(3), new Float32Array(3)), RangeError);
});

test("Adam weight decay adds wd·p to the gradient (torch.optim.Adam)", () => {
  const a = new Adam(1, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5 });
  const p = Float32Array.from([2]);
  a.step(p, Float32Array.from([-1])); // g = -1 + 0.5·2 = 0 → no move
  assert.equal(p[0], 2);
});

test("clipByGlobalNorm scales in place only above the limit", () => {
  const g = Float32Array.from([3, 4]);
  assert.equal(globalNorm(g), 5);
  assert.deepEqual(clipByGlobalNorm(g, 10), { norm: 5, clipped: false });
  assert.deepEqual(g, Float32Array.from([3, 4]));
  const r = clipByGlobalNorm(g, 1);
  assert.equal(r.clipped, true);
  assert.ok(Math.abs(globalNorm(g) - 1) < 1e-5);
  assert.ok(Math.abs(g[0] / g[1] - 0.75) < 1e-6);
});

const SEED: ModelConfig = { cell: "lstm", vocabSize: 25_002, embedDim: 100, hidden: 256, layers: 1, bidirectional: false };

test("paramLayout: the seed's model, offsets contiguous, hash stable and shape-sensitive", () => {
  const l = paramLayout(SEED);
  assert.deepEqual(l.entries.map((e) => [e.name, e.shape]), [
    ["embedding.weight", [25_002, 100]], ["rnn.l0.w_ih", [100, 1024]], ["rnn.l0.w_hh", [256, 1024]],
    ["rnn.l0.b_ih", [1024]], ["rnn.l0.b_hh", [1024]], ["fc.weight", [256, 1]], ["fc.bias", [1]],
  ]);
  let off = 0;
  for (const e of l.entries) { assert.equal(e.offset, off); off += e.size; }
  assert.equal(l.size, off);
  assert.equal(l.size, 25_002 * 100 + 100 * 1024 + 256 * 1024 + 2048 + 257);
  assert.equal(paramLayout({ ...SEED }).hash, l.hash);
  assert.notEqual(paramLayout({ ...SEED, cell: "gru" }).hash, l.hash);
  assert.notEqual(paramLayout({ ...SEED, hidden: 128 }).hash, l.hash);
  const bi = paramLayout({ ...SEED, layers: 2, bidirectional: true });
  assert.deepEqual(bi.entries.find((e) => e.name === "rnn.l1_reverse.w_ih")!.shape, [512, 1024]);
  assert.deepEqual(bi.entries.find((e) => e.name === "fc.weight")!.shape, [512, 1]);
  const dense = paramLayout({ ...SEED, hidden: 20, inputDim: 1 });
  assert.equal(dense.entries[0].name, "rnn.l0.w_ih");
  assert.deepEqual(dense.entries[0].shape, [1, 80]);
});

test("initParams: seeded, <pad> row zero, recurrent weights within ±1/sqrt(H)", () => {
  const cfg: ModelConfig = { ...SEED, vocabSize: 50, embedDim: 8, hidden: 16 };
  const a = initParams(cfg, 7), b = initParams(cfg, 7), c = initParams(cfg, 8);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const l = paramLayout(cfg);
  const emb = view(l, a, "embedding.weight");
  assert.ok(emb.subarray(PAD_ID * 8, PAD_ID * 8 + 8).every((x) => x === 0));
  assert.ok(emb.subarray(UNK_ID * 8, UNK_ID * 8 + 8).some((x) => x !== 0));
  const whh = view(l, a, "rnn.l0.w_hh");
  assert.ok(whh.every((x) => Math.abs(x) <= 0.25) && whh.some((x) => Math.abs(x) > 0.2));
});

test("initParams forgetBias: adds to the LSTM forget-gate slice of b_ih only; GRU unchanged", () => {
  const cfg: ModelConfig = { ...SEED, vocabSize: 50, embedDim: 8, hidden: 16 };
  const a = initParams(cfg, 7), b = initParams(cfg, 7, { forgetBias: 1 });
  const l = paramLayout(cfg);
  for (const e of l.entries) {
    const x = view(l, a, e.name), y = view(l, b, e.name);
    for (let i = 0; i < x.length; i++) {
      const want = e.name === "rnn.l0.b_ih" && i >= 16 && i < 32 ? x[i] + 1 : x[i];
      assert.equal(y[i], Math.fround(want), `${e.name}[${i}]`);
    }
  }
  const gru: ModelConfig = { ...cfg, cell: "gru" };
  assert.deepEqual(initParams(gru, 7, { forgetBias: 1 }), initParams(gru, 7));
});

test("loadGlove fills known words, zeroes <unk>/<pad>, and names the file on bad input", async () => {
  const dir = mkdtempSync(join(tmpdir(), "glove-"));
  try {
    const cfg: ModelConfig = { cell: "lstm", vocabSize: 4, embedDim: 3, hidden: 2, layers: 1, bidirectional: false };
    const vocab = ["<unk>", "<pad>", "movie", "zzz"];
    const file = join(dir, "g.txt");
    writeFileSync(file, "the 1 2 3\nmovie 0.5 -1 2e-1\n<unk> 9 9 9\n");
    const p = initParams(cfg, 1);
    const before = Float32Array.from(p);
    const r = await loadGlove(file, vocab, p, cfg);
    assert.deepEqual(r, { found: 1, total: 4 });
    const emb = view(paramLayout(cfg), p, "embedding.weight");
    assert.deepEqual(Array.from(emb.subarray(6, 9)), [0.5, -1, Math.fround(0.2)]);
    assert.deepEqual(Array.from(emb.subarray(0, 6)), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(emb.subarray(9, 12), before.subarray(9, 12));
    writeFileSync(file, "movie 1 2\n");
    await assert.rejects(loadGlove(file, vocab, p, cfg), (e: unknown) => e instanceof InputError && e.message.includes(file) && e.message.includes("line 1"));
    await assert.rejects(loadGlove(join(dir, "missing.txt"), vocab, p, cfg), InputError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
