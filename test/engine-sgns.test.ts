// The skip-gram engine (task sgns): its pairs (windows, subsampling, negatives) against word2vec's rules, its
// loss and gradients against a float64 reference and central finite differences, touched rows, determinism
// and additivity over a split batch, and a learning run on real reviews.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ModelConfig } from "../src/config.js";
import { PAD_ID, UNK_ID } from "../src/config.js";
import { InputError, UsageError } from "../src/errors.js";
import { initParams, paramLayout } from "../src/model/layout.js";
import { Adam } from "../src/optim/adam.js";
import { Rng } from "../src/rng.js";
import { batchRows, createEngine, toRowParams, type EngineBatch } from "../src/engine/index.js";
import { drawPairs, sgnsSettings, sgnsTables, type SgnsPairs } from "../src/engine/sgns.js";
import { bucketedBatches, loadReviewSample } from "../src/bench/sample.js";
import { loadVocabCounts, makeVocab, vocabToJson } from "../src/dataset/vocab.js";
import { params64 } from "./engine-float64.js";

const ARCHIVE = fileURLToPath(new URL("../../../shared/data/aclImdb-train.tar.gz", import.meta.url));

function batchOf(rows: number[][], ids?: number[], seed = 3): EngineBatch {
  const B = rows.length, T = Math.max(...rows.map((r) => r.length));
  const tokens = new Int32Array(B * T).fill(PAD_ID);
  rows.forEach((r, b) => tokens.set(r, b * T));
  return { size: B, maxLen: T, lengths: Int32Array.from(rows, (r) => r.length), tokens, targets: new Float32Array(B), ids: ids && Int32Array.from(ids), seed };
}

function randomRows(rng: Rng, V: number, lengths: number[]): number[][] {
  return lengths.map((n) => Array.from({ length: n }, () => { const x = rng.int(V); return x === PAD_ID ? 2 : x; }));
}

/** Σ over pairs of −log σ(u_c·v_o) − Σ_{n ≥ 0} log σ(−u_c·v_n), in float64; and the pairs ranked right. */
function sgnsLoss64(cfg: ModelConfig, p: Float64Array, pairs: SgnsPairs, k: number) {
  const P = params64(paramLayout(cfg), p);
  const U = P("embedding.weight"), Vv = P("context.weight"), E = cfg.embedDim;
  const dot = (c: number, x: number) => { let s = 0; for (let e = 0; e < E; e++) s += U[c * E + e] * Vv[x * E + e]; return s; };
  const softplus = (x: number) => Math.log(1 + Math.exp(x));
  let loss = 0, correct = 0;
  for (let i = 0; i < pairs.centres.length; i++) {
    const c = pairs.centres[i];
    for (let j = pairs.starts[i]; j < pairs.starts[i + 1]; j++) {
      const pos = dot(c, pairs.contexts[j]);
      loss += softplus(-pos);
      let ok = true;
      for (let q = 0; q < k; q++) {
        const n = pairs.negatives[j * k + q];
        if (n < 0) continue;
        const s = dot(c, n);
        loss += softplus(s);
        if (s >= pos) ok = false;
      }
      if (ok) correct++;
    }
  }
  return { loss, correct };
}

const counts = (V: number) => Array.from({ length: V }, (_, i) => (i === PAD_ID ? 0 : Math.round(2000 / (i + 1))));

test("sgns pairs follow word2vec: windows of 1..W, <unk>/<pad> dropped, negatives ∝ counts^0.75 and never the context, subsampling", () => {
  const V = 20, cs = counts(V);
  const w1 = { window: 1, negatives: 3, subsample: 0 };
  const tables = sgnsTables(cs, V, 0);
  // W = 1 without subsampling: each token pairs with exactly its neighbours once <unk> is taken out
  const row = [5, UNK_ID, 7, 9, 3, UNK_ID, 4];
  const kept = row.filter((x) => x !== UNK_ID);
  const pairs = drawPairs(batchOf([row]), w1, tables);
  assert.deepEqual([...pairs.centres], kept);
  const want: number[] = [];
  kept.forEach((_, i) => { if (i > 0) want.push(kept[i - 1]); if (i < kept.length - 1) want.push(kept[i + 1]); });
  assert.deepEqual([...pairs.contexts], want);
  assert.equal(pairs.negatives.length, 3 * want.length);
  // windows drawn uniformly from 1..W: an interior centre has 2, 4 or 6 contexts at W = 3, each about a third
  const long = Array.from({ length: 3000 }, (_, i) => 2 + (i % (V - 2)));
  const p3 = drawPairs(batchOf([long]), { window: 3, negatives: 5, subsample: 0 }, tables);
  const hist = new Map<number, number>();
  for (let i = 3; i < 2997; i++) { const n = p3.starts[i + 1] - p3.starts[i]; hist.set(n, (hist.get(n) ?? 0) + 1); }
  assert.deepEqual([...hist.keys()].sort(), [2, 4, 6]);
  for (const n of [2, 4, 6]) assert.ok(Math.abs(hist.get(n)! / 2994 - 1 / 3) < 0.04, `window share ${hist.get(n)! / 2994}`);
  // negatives: never <unk>/<pad>, a draw equal to the context skipped (−1), frequencies ∝ counts^0.75
  const freq = new Float64Array(V);
  let drawn = 0;
  for (let j = 0; j < p3.contexts.length; j++) {
    for (let q = 0; q < 5; q++) {
      const n = p3.negatives[j * 5 + q];
      assert.notEqual(n, p3.contexts[j]);
      if (n < 0) continue;
      assert.ok(n !== UNK_ID && n !== PAD_ID);
      freq[n]++; drawn++;
    }
  }
  const w = cs.map((c, i) => (i < 2 ? 0 : c ** 0.75));
  const wsum = w.reduce((a, b) => a + b, 0);
  for (const x of [2, 3, 10, 19]) {
    // a draw equal to the context is skipped: compare with the expected share among the draws left
    const expect = w[x] / wsum;
    assert.ok(Math.abs(freq[x] / drawn - expect) < 0.1 * expect + 0.002, `negative ${x}: ${freq[x] / drawn} vs ${expect}`);
  }
  // subsampling keeps an occurrence of x with probability (sqrt(f/(tN)) + 1)·tN/f
  const t = 1e-3, N = cs.reduce((a, c, i) => a + (i < 2 ? 0 : c), 0);
  const sub = drawPairs(batchOf([long]), { window: 1, negatives: 1, subsample: t }, sgnsTables(cs, V, t));
  for (const x of [2, 3, 8]) {
    const keep = Math.min(1, (Math.sqrt(cs[x] / (t * N)) + 1) * (t * N) / cs[x]);
    const seen = [...sub.centres].filter((c) => c === x).length / long.filter((c) => c === x).length;
    assert.ok(keep < 0.9, `token ${x} is frequent enough to test (keep ${keep})`);
    assert.ok(Math.abs(seen - keep) < 0.12, `token ${x}: kept ${seen}, formula ${keep}`);
  }
  // a review's draws depend on (seed, its id) only, not on the batch it is in
  const a = drawPairs(batchOf([row, long.slice(0, 50)], [11, 12]), w1, tables);
  const b = drawPairs(batchOf([long.slice(0, 50)], [12]), w1, tables);
  const tail = (p: SgnsPairs, from: number) => [...p.negatives.subarray(p.starts[from] * 3)];
  assert.deepEqual(tail(a, kept.length), tail(b, 0));
  assert.throws(() => sgnsSettings({ cell: "lstm", vocabSize: V, embedDim: 2, hidden: 1, layers: 1, bidirectional: false, task: "sgns", sgnsWindow: 0 }), /sgnsWindow/);
});

test("sgns: loss and every gradient match finite differences of a float64 reference; touched rows exact", async () => {
  const V = 12, E = 5; // E > 4 and not a multiple of 4: the dot product's unrolled loop and its tail
  const model: ModelConfig = { cell: "lstm", vocabSize: V, embedDim: E, hidden: 1, layers: 1, bidirectional: false, task: "sgns", sgnsWindow: 2, sgnsNegatives: 3, sgnsSubsample: 0 };
  const cs = counts(V);
  const engine = await createEngine({ model, counts: cs });
  assert.equal(engine.backend, "js");
  const rng = new Rng(4);
  const batch = batchOf(randomRows(rng, V, [6, 2, 4]), [1, 2, 3]);
  const params = initParams(model, 2);
  for (let i = 0; i < params.length; i++) params[i] = rng.uniform(-1, 1); // context vectors non-zero, so every term matters
  const pairs = drawPairs(batch, sgnsSettings(model), sgnsTables(cs, V, 0));
  assert.ok(pairs.negatives.some((n) => n < 0) || pairs.negatives.length > 20);
  const got = await engine.step(params, batch);
  const p64 = Float64Array.from(params);
  const ref = sgnsLoss64(model, p64, pairs, 3);
  assert.equal(got.count, pairs.contexts.length);
  assert.ok(Math.abs(got.lossSum - ref.loss) < 1e-6 * ref.loss, `loss ${got.lossSum} vs float64 ${ref.loss}`);
  assert.equal(got.correct, ref.correct);
  const ev = await engine.evaluate(params, batch);
  assert.deepEqual([ev.lossSum, ev.correct, ev.count], [got.lossSum, got.correct, got.count]);
  const layout = engine.layout;
  const h = 1e-6;
  const moved = new Map<string, number>();
  for (let i = 0; i < params.length; i++) {
    const x = p64[i];
    p64[i] = x + h; const lp = sgnsLoss64(model, p64, pairs, 3).loss;
    p64[i] = x - h; const lm = sgnsLoss64(model, p64, pairs, 3).loss;
    p64[i] = x;
    const fd = (lp - lm) / (2 * h);
    const name = layout.entries.find((e) => i >= e.offset && i < e.offset + e.size)!.name;
    assert.ok(Math.abs(fd - got.grads[i]) <= 1e-5 + 1e-4 * Math.abs(fd), `${name} [${i}]: engine ${got.grads[i]} vs finite difference ${fd}`);
    if (Math.abs(fd) > 1e-2) moved.set(name, (moved.get(name) ?? 0) + 1);
  }
  assert.ok(moved.get("embedding.weight")! > 5 && moved.get("context.weight")! > 5, `gradients in both tables: ${[...moved]}`);
  for (const e of layout.entries) {
    const rows = got.touched![e.name];
    for (let r = 0; r < V; r++) {
      const g = got.grads.subarray(e.offset + r * E, e.offset + (r + 1) * E);
      assert.equal(rows.includes(r), g.some((x) => x !== 0), `${e.name} row ${r}`);
    }
  }
  assert.deepEqual(got.embeddingRows, got.touched!["embedding.weight"]);
});

test("sgns: same batch and seed give the same bits; a batch split over two calls sums to the same gradient", async () => {
  const V = 200, E = 8;
  const model: ModelConfig = { cell: "lstm", vocabSize: V, embedDim: E, hidden: 1, layers: 1, bidirectional: false, task: "sgns", sgnsSubsample: 1e-3 };
  const engine = await createEngine({ model, counts: counts(V) });
  const rng = new Rng(8);
  const rows = randomRows(rng, V, [40, 13, 27, 33]);
  const params = initParams(model, 1);
  for (let i = 0; i < params.length; i++) params[i] = rng.uniform(-0.3, 0.3);
  const whole = batchOf(rows, [7, 8, 9, 10]);
  const a = await engine.step(params, whole), b = await engine.step(params, whole);
  assert.deepEqual(a.grads, b.grads);
  assert.notDeepEqual((await engine.step(params, { ...whole, seed: 4 })).grads, a.grads);
  // the rows form: the context table travels whole (dense part), the input vectors as the batch's rows
  const rs = await engine.stepRows(toRowParams(engine.layout, params, batchRows(whole, V)), whole);
  assert.deepEqual([rs.lossSum, rs.count], [a.lossSum, a.count]);
  assert.deepEqual(rs.dense, a.grads.subarray(V * E));
  assert.deepEqual(rs.rows, a.embeddingRows);
  assert.deepEqual(rs.values, Float32Array.from([...a.embeddingRows!].flatMap((r) => [...a.grads.subarray(r * E, (r + 1) * E)])));
  const x = await engine.step(params, batchOf([rows[2], rows[0]], [9, 7]));
  const y = await engine.step(params, batchOf([rows[3], rows[1]], [10, 8]));
  assert.equal(x.count + y.count, a.count);
  assert.ok(Math.abs(x.lossSum + y.lossSum - a.lossSum) < 1e-9 * a.lossSum);
  let err = 0, max = 0;
  for (let i = 0; i < a.grads.length; i++) { err = Math.max(err, Math.abs(x.grads[i] + y.grads[i] - a.grads[i])); max = Math.max(max, Math.abs(a.grads[i])); }
  assert.ok(max > 0 && err < 1e-6 * max, `split gradient differs by ${err} (max ${max})`);
  for (const name of ["embedding.weight", "context.weight"]) {
    assert.deepEqual([...a.touched![name]], [...new Set([...x.touched![name], ...y.touched![name]])].sort((p, q) => p - q));
  }
});

test("sgns takes its counts from a dataset's vocab.json (loadVocabCounts), which must have one count >= 0 per token", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "imdb-counts-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const vocab = makeVocab(["<unk>", "<pad>", "the", "a", "film"]);
  const path = join(dir, "vocab.json");
  writeFileSync(path, vocabToJson(vocab, [7, 0, 50, 30, 4]));
  const { vocab: v, counts: cs } = loadVocabCounts(path);
  assert.deepEqual([v.hash, [...cs]], [vocab.hash, [7, 0, 50, 30, 4]]);
  const model: ModelConfig = { cell: "lstm", vocabSize: 5, embedDim: 4, hidden: 1, layers: 1, bidirectional: false, task: "sgns", sgnsSubsample: 0 };
  const engine = await createEngine({ model, counts: cs });
  assert.ok((await engine.step(initParams(model, 1), batchOf([[2, 3, 4, 2, 0, 3]]))).count > 0);
  for (const bad of [[7, 0, 50, 30], [7, 0, -1, 30, 4], [7, 0, "x", 30, 4]]) {
    writeFileSync(path, JSON.stringify({ ...JSON.parse(vocabToJson(vocab, [0, 0, 0, 0, 0])), counts: bad }));
    assert.throws(() => loadVocabCounts(path), (e: unknown) => e instanceof InputError && (e as Error).message.startsWith(path));
  }
});

test("sgns: refusals", async () => {
  const model: ModelConfig = { cell: "lstm", vocabSize: 10, embedDim: 3, hidden: 1, layers: 1, bidirectional: false, task: "sgns" };
  await assert.rejects(createEngine({ model }), /needs the vocabulary's token counts/);
  await assert.rejects(createEngine({ model, counts: counts(10), input: "dense", inputDim: 2 }), UsageError);
  const engine = await createEngine({ model, counts: counts(10) });
  const params = initParams(model, 1);
  await assert.rejects(engine.step(params, batchOf([[2, 10, 3]])), InputError);
  await assert.rejects(engine.step(params.subarray(1), batchOf([[2, 3]])), UsageError);
});

test("sgns learns word vectors on real reviews: the loss per pair falls well below its start", { skip: !existsSync(ARCHIVE) && `no archive at ${ARCHIVE}` }, async () => {
  const sample = await loadReviewSample(ARCHIVE, { count: 400, seed: 2, vocabSize: 3000, maxLen: 200 });
  const V = sample.vocab.length;
  const cs = new Array<number>(V).fill(0);
  for (const r of sample.reviews) for (const x of r.ids) cs[x]++;
  const model: ModelConfig = { cell: "lstm", vocabSize: V, embedDim: 32, hidden: 1, layers: 1, bidirectional: false, task: "sgns" };
  const engine = await createEngine({ model, counts: cs });
  const params = initParams(model, 1);
  const adam = new Adam(params.length, { lr: 2e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const rng = new Rng(1);
  const losses: number[] = [];
  let first = NaN;
  for (let epoch = 0; epoch < 4; epoch++) {
    let loss = 0, n = 0;
    for (const [k, batch] of bucketedBatches(sample.reviews, 32, rng).entries()) {
      const r = await engine.step(params, { ...batch, ids: Int32Array.from({ length: batch.size }, (_, b) => k * 32 + b), seed: epoch });
      if (Number.isNaN(first)) first = r.lossSum / r.count;
      loss += r.lossSum; n += r.count;
      for (let i = 0; i < r.grads.length; i++) r.grads[i] /= r.count;
      adam.step(params, r.grads);
    }
    losses.push(loss / n);
  }
  // context vectors start at zero: each term of the first step is ln 2, (1 + k) of them less the skipped negatives
  assert.ok(first <= 6 * Math.log(2) + 1e-6 && first > 5.5 * Math.log(2), `first step ${first}`);
  assert.ok(losses[3] < 0.72 * first, `loss per pair should fall well below ${first.toFixed(3)}: ${losses.map((x) => x.toFixed(3))}`);
});
