// Distributed training end to end with real processes, real ZeroMQ sockets, the real engine and a real
// nats-server: 2 workers × b equals 1 worker × 2b; the NATS cluster plane; eval / predict / TF.js export.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli } from "./helpers/cli.js";
import { startNats, type NatsServer } from "./helpers/nats.js";
import { makeLayout, writeLayoutDir } from "./helpers/fixture.js";
import { ingestSmallDataset, trainRun, initialParamsOf, type SmallDataset } from "./helpers/training.js";
import { assertMoved, maxAbsDiff } from "./helpers/params.js";
import { connectNats } from "../src/transport/nats.js";
import { loadModel } from "../src/model/files.js";
import { loadExported, predictExported } from "../src/model/export.js";
import { predictTexts } from "../src/workers/evaluate.js";
import { encodeText, padBatch } from "../src/workers/textbatch.js";
import { loadVocab } from "../src/dataset/vocab.js";

let fx: SmallDataset;
let nats: NatsServer;
// a small model; 2 batches per step, 10 steps
const SMALL = ["--hidden", "16", "--embed-dim", "8", "--dropout", "0.3", "--epochs", "1", "--max-steps", "10", "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--clip", "1", "--seed", "5"];

before(async () => {
  fx = await ingestSmallDataset("imdb-dist-", { train: 60, test: 10, seed: 11, words: [5, 40] }, { batchSize: 4, vocabSize: 200, maxLen: 30 });
  nats = await startNats();
});

after(async () => {
  await nats?.stop();
  fx?.cleanup();
});

test("2 workers × b give the same parameters as 1 worker × 2b after 10 steps (1-worker run found through NATS)", async (t) => {
  const outB = join(fx.root, "one");
  const a = await trainRun(fx.dataset, join(fx.root, "two"), ["--workers", "2", "--backend", "wasm", ...SMALL]);
  assert.equal(a.json.steps, 10);
  assert.equal(a.json.samples, 10 * 2 * 4);
  assert.ok(existsSync(join(a.out, "checkpoints", "last.ckpt")));
  // the same samples on one worker: 2 batches per step, coordinator announced on NATS, worker discovers it;
  // run events are published on imdb-train.run.<runId>.<event>
  const client = await connectNats(nats.url);
  const events: string[] = [];
  const sub = client.nc.subscribe("imdb-train.run.>", { callback: (_err, msg) => { events.push(msg.subject); } });
  const coord = spawnCli(["coordinator", "--dataset", fx.dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "1", "--batches-per-step", "2", "--out", outB, "--nats", nats.url, "--json", ...SMALL], { killAfterMs: 150_000 });
  const worker = spawnCli(["worker", "--nats", nats.url, "--name", "solo", "--backend", "wasm"], { killAfterMs: 150_000 });
  const [c, w] = await Promise.all([coord.result, worker.result]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(w.code, 0, w.stderr);
  assert.match(w.stderr, /found coordinator tcp:\/\/127\.0\.0\.1:\d+ \(run \d+\) through nats:/);
  assert.match(w.stderr, /dropout 0\.3 on the classifier's input/, "the worker was told the run's dropout");
  await client.nc.flush();
  sub.unsubscribe();
  await client.close();
  assert.equal(events.filter((e) => /^imdb-train\.run\.\d+\.step$/.test(e)).length, 10, events.join(" "));
  assert.ok(events.some((e) => e.endsWith(".epoch")) && events.some((e) => e.endsWith(".member")), events.join(" "));
  const pa = a.params;
  const pb = loadModel(join(outB, "model")).params;
  const maxDiff = maxAbsDiff(pa, pb);
  t.diagnostic(`max |Δ| = ${maxDiff}`);
  assert.ok(maxDiff < 1e-5, `max |Δ| = ${maxDiff}`);
  // and training did move the parameters (the comparison is not vacuous): 10 steps were applied, and they took
  // the parameters away from their initialisation. Adam's first step alone moves every value that has a
  // gradient by lr = 0.01; the floors (an RMS change of half that in the recurrent weights and the head, and
  // 1% of ‖p₀‖ overall) fail a run whose steps left the parameters, or one of those tensors, where they were
  assert.equal(a.model.training.steps, 10);
  const moved = assertMoved(initialParamsOf(a.model), pa, { minRel: 0.01, layout: a.model.layout, tensors: { "rnn.l0.w_hh": 0.005, "fc.weight": 0.005 } });
  t.diagnostic(moved.summary);
});

test("eval, predict and the TensorFlow.js export agree on a trained model", async (t) => {
  const out = join(fx.root, "two");
  const modelDir = join(out, "model");
  assert.ok(existsSync(join(modelDir, "tfjs", "model.json")), "the run exported a LayersModel");
  const ev = await runCli(["eval", "--model", modelDir, "--data", fx.data, "--json", "--backend", "wasm"], { timeoutMs: 60_000 });
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal(ev.json.n, 20, "the test split (10 pos + 10 neg) is used when present");
  assert.equal(ev.json.split, "test");
  // what eval reports is what the model predicts for those 20 reviews, review by review
  const split = readTestSplit(fx.data);
  const probs = await predictTexts({ model: modelDir, texts: split.map((r) => r.text), backend: "wasm" });
  const want = scoreOf(probs, split.map((r) => r.label));
  t.diagnostic(`eval: accuracy ${ev.json.accuracy}, loss ${ev.json.loss}; from predictions: accuracy ${want.accuracy}, loss ${want.loss}`);
  assert.equal(ev.json.accuracy, want.accuracy);
  assert.ok(Math.abs(ev.json.loss - want.loss) < 1e-5, `eval loss ${ev.json.loss} vs ${want.loss}`);
  // without a test/ split, every train/ review is evaluated
  const trainOnly = writeLayoutDir(join(fx.root, "train-only"), makeLayout({ train: 6, seed: 99, words: [5, 20] }));
  const ev2 = await runCli(["eval", "--model", modelDir, "--data", trainOnly, "--json", "--backend", "wasm"], { timeoutMs: 60_000 });
  assert.equal(ev2.code, 0, ev2.stderr);
  assert.equal(ev2.json.split, "train");
  assert.equal(ev2.json.n, 12);
  const texts = ["A splendid, moving and wonderful film.", "Dreary, clumsy and boring. Awful!", "the plot", "zorblax " .repeat(50)];
  const pr = await runCli(["predict", "--model", modelDir, "--json", "--backend", "wasm", ...texts], { timeoutMs: 60_000 });
  assert.equal(pr.code, 0, pr.stderr);
  const cli = pr.json.predictions.map((p: { positive: number }) => p.positive) as number[];
  // in this process: the engine and tf.loadLayersModel of the export, on the same padded batch
  const engineP = await predictTexts({ model: modelDir, texts, backend: "wasm" });
  const m = loadModel(modelDir);
  const vocab = loadVocab(m.vocabPath);
  const batch = padBatch(texts.map((t) => encodeText(t, vocab, m.maxLen, m.keep ?? "first")), texts.map(() => 0));
  assert.ok(batch.lengths[3]! > batch.lengths[2]!, "reviews of different lengths share a padded batch");
  const exported = await loadExported(join(modelDir, "tfjs"));
  const tfjsP = await predictExported(exported, batch.tokens, batch.size, batch.maxLen);
  for (let i = 0; i < texts.length; i++) {
    assert.ok(Math.abs(cli[i]! - engineP[i]!) < 1e-6, `predict CLI vs engine for text ${i}: ${cli[i]} vs ${engineP[i]}`);
    assert.ok(Math.abs(tfjsP[i]! - engineP[i]!) < 1e-4, `TF.js export vs engine for text ${i}: ${tfjsP[i]} vs ${engineP[i]}`);
  }
});

test("a run resumed from an epoch checkpoint ends with the same parameters as an uninterrupted run", async (t) => {
  const base = ["--workers", "1", "--backend", "wasm", "--hidden", "8", "--embed-dim", "4", "--max-steps", "4",
    "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--seed", "21", "--max-val-batches", "1"];
  const a = await trainRun(fx.dataset, join(fx.root, "resume-full"), [...base, "--epochs", "2"], { timeoutMs: 120_000 });
  const b = await trainRun(fx.dataset, join(fx.root, "resume-half"), [...base, "--epochs", "1"], { timeoutMs: 120_000 });
  const c = await trainRun(fx.dataset, join(fx.root, "resume-rest"), [...base, "--epochs", "2", "--resume", join(b.out, "checkpoints", "last.ckpt")], { timeoutMs: 120_000 });
  assert.match(c.stderr, /resumed from .*last\.ckpt: step 4, epoch 1/);
  assert.equal(c.json.steps, 8);
  const maxDiff = maxAbsDiff(a.params, c.params);
  t.diagnostic(`max |Δ| = ${maxDiff}`);
  assert.ok(maxDiff < 1e-5, `max |Δ| = ${maxDiff}`);
  // not vacuous: the uninterrupted run moved from its initialisation, and the resumed one moved on from the
  // checkpoint it started from (the half run's parameters). 4 Adam steps of lr 0.01 move each value with a
  // gradient by 0.01 in the first step alone; the floors are an RMS change of half that in the recurrent
  // weights and the head, and 0.5% of ‖p₀‖ overall (the N(0, 1) embedding dominates the norm)
  const opts = { minRel: 0.005, layout: a.model.layout, tensors: { "rnn.l0.w_hh": 0.005, "fc.weight": 0.005 } };
  t.diagnostic(`from the initialisation: ${assertMoved(initialParamsOf(a.model), a.params, opts).summary}`);
  t.diagnostic(`after the resume: ${assertMoved(b.params, c.params, opts).summary}`);
});

test("train --glove starts the embedding from the GloVe file (<unk> and <pad> rows zero); a bad file is named", async () => {
  const vocab = loadVocab(join(fx.dataset, "vocab.json"));
  const words = vocab.tokens.slice(2, 6); // four real words of the fixture's vocabulary
  const E = 8;
  const vec = (i: number) => Array.from({ length: E }, (_, j) => (i + 1) * 0.5 + j * 0.01);
  const glovePath = join(fx.root, "glove.8d.txt");
  writeFileSync(glovePath, words.map((w, i) => `${w} ${vec(i).join(" ")}`).join("\n") + "\nnot-in-vocab " + vec(9).join(" ") + "\n");
  const out = join(fx.root, "glove");
  // lr 1e-9: one Adam step moves a weight by at most ~1e-9, so the saved model is the initialisation
  const r = await runCli(["train", "--dataset", fx.dataset, "--workers", "1", "--out", out, "--backend", "wasm", ...SMALL, "--max-steps", "1", "--lr", "1e-9", "--glove", glovePath, "--json"], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /GloVe .*: 4 of \d+ vocabulary rows initialised/);
  const params = loadModel(join(out, "model")).params;
  for (let i = 0; i < words.length; i++) {
    const id = vocab.tokens.indexOf(words[i]!);
    const row = Array.from(params.subarray(id * E, (id + 1) * E));
    row.forEach((x, j) => assert.ok(Math.abs(x - vec(i)[j]!) < 1e-6, `row of "${words[i]}"[${j}] = ${x}, want ${vec(i)[j]}`));
  }
  for (const id of [0, 1]) assert.ok(params.subarray(id * E, (id + 1) * E).every((x) => x === 0), `row ${id} is zero`);
  // a vector of the wrong width is refused with the file and line named
  writeFileSync(glovePath, `${words[0]} 1 2 3\n`);
  const bad = await runCli(["train", "--dataset", fx.dataset, "--workers", "1", "--out", join(fx.root, "glove-bad"), "--backend", "wasm", ...SMALL, "--glove", glovePath], { timeoutMs: 120_000 });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /glove\.8d\.txt: line 1: expected 8 numbers/);
});

/** The test split of an aclImdb layout directory: each review's text and label (from its folder). */
function readTestSplit(data: string): { text: string; label: 0 | 1 }[] {
  const out: { text: string; label: 0 | 1 }[] = [];
  for (const [folder, label] of [["neg", 0], ["pos", 1]] as const) {
    const dir = join(data, "aclImdb", "test", folder);
    for (const f of readdirSync(dir)) out.push({ text: readFileSync(join(dir, f), "utf8"), label });
  }
  return out;
}

/** Accuracy (p > 0.5 means positive) and mean binary cross-entropy of probabilities against labels. */
function scoreOf(probs: number[], labels: (0 | 1)[]): { accuracy: number; loss: number } {
  let correct = 0, loss = 0;
  probs.forEach((p, i) => {
    if ((p > 0.5 ? 1 : 0) === labels[i]) correct++;
    loss -= Math.log(labels[i] ? p : 1 - p);
  });
  return { accuracy: correct / probs.length, loss: loss / probs.length };
}
