// Pretraining through the distributed machinery (`train --pretrain lm|vectors`, `coordinator --task lm|sgns`),
// with real processes on a small invented layout that has unlabelled reviews:
//   - the pretraining stage reads train + unsup (never validation) and moves its parameters; the classifier
//     then starts from what it made (the LM's embedding and LSTM, or the skip-gram vectors through the GloVe
//     path) — checked with a classifier learning rate whose updates are below float32 resolution, so its final
//     tensors must equal what it started from bit for bit;
//   - a coordinator killed with SIGKILL mid-pretraining resumes and ends with the uninterrupted run's
//     parameters, every train and unsup review used once per epoch;
//   - the dashboard's pretraining-loss panel shows the run's train and validation loss, scraped by a real Prometheus.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../src/rng.js";
import { initParams, paramLayout, view } from "../src/model/layout.js";
import { loadModel } from "../src/model/files.js";
import { loadVocab, loadVocabCounts } from "../src/dataset/vocab.js";
import { openTrainingData } from "../src/dataset/training.js";
import { DEFAULTS, PAD_ID, UNK_ID } from "../src/config.js";
import { runCli, spawnCli, type CliProc } from "./helpers/cli.js";
import { cleanup, inventReview, makeLayout, tempDir, writeLayoutDir, type FixtureFile } from "./helpers/fixture.js";
import { assertMoved, maxAbsDiff } from "./helpers/params.js";
import { readAudit, idsByEpoch } from "./helpers/audit.js";
import { startPrometheus, expandGrafanaVars } from "./helpers/prometheus.js";
import { freePort } from "./helpers/nats.js";

let root = "";
let data = "";

/** `n` invented unlabelled reviews at aclImdb/train/unsup/<i>_0.txt. */
function unsupFiles(n: number, seed: number): FixtureFile[] {
  const rng = new Rng(seed);
  const enc = new TextEncoder();
  return Array.from({ length: n }, (_, i) => ({ name: `aclImdb/train/unsup/${i}_0.txt`, data: enc.encode(inventReview(rng, rng.next() < 0.5, 5 + rng.int(40))) }));
}

before(() => {
  root = tempDir("imdb-pretrain-");
  // 60 labelled training reviews (48 train, 12 validation) and 40 unlabelled ones
  data = writeLayoutDir(join(root, "data"), [...makeLayout({ train: 30, seed: 41, words: [5, 40] }), ...unsupFiles(40, 43)]);
});

after(() => cleanup(root));

const SHAPE = ["--hidden", "8", "--embed-dim", "8", "--vocab-size", "80", "--batch-size", "4", "--val-fraction", "0.2", "--seed", "5"];
// the classifier's own updates are below float32 resolution: its tensors end where they started
const FROZEN_CLASSIFIER = ["--epochs", "1", "--lr", "1e-30", "--max-val-batches", "1", "--warmup-steps", "0"];

function tensorsEqual(a: { layout: ReturnType<typeof paramLayout>; params: Float32Array }, b: { layout: ReturnType<typeof paramLayout>; params: Float32Array }, name: string): void {
  const x = view(a.layout, a.params, name), y = view(b.layout, b.params, name);
  assert.equal(x.length, y.length, name);
  assert.equal(maxAbsDiff(x, y), 0, `${name} differs`);
}

test("train --pretrain lm: a language model on train + unsup, then the classifier starts from its embedding and LSTM", { timeout: 240_000 }, async (t) => {
  const out = join(root, "lm");
  const r = await runCli(["train", "--data", data, "--out", out, "--workers", "2", "--backend", "wasm", "--pretrain", "lm", "--pretrain-epochs", "2", "--pretrain-lr", "0.01",
    ...SHAPE, ...FROZEN_CLASSIFIER, "--json"], { timeoutMs: 200_000 });
  assert.equal(r.code, 0, r.stderr);
  const dataset = join(out, "dataset");
  const ds = await openTrainingData(dataset);
  assert.equal(ds.samples("unsup"), 40, "the unlabelled reviews were ingested");
  assert.equal(ds.count("pretrain"), ds.count("train") + ds.count("unsup"));
  assert.match(r.stderr, new RegExp(`${ds.count("pretrain")} pretrain batches \\(${48 + 40} reviews\\)`));
  // the pretraining stage
  assert.equal(r.json.pretrain.task, "lm");
  assert.equal(r.json.pretrain.epochs.length, 2);
  const lm = loadModel(join(out, "pretrain", "model"));
  assert.equal(lm.model.task, "lm");
  const counts = loadVocabCounts(join(dataset, "vocab.json")).counts;
  const lmInit = initParams(lm.model, 5, { forgetBias: DEFAULTS.model.forgetBias, counts });
  t.diagnostic(`language model ${assertMoved(lmInit, lm.params, { minRel: 0.01, layout: lm.layout, tensors: { "rnn.l0.w_hh": 0.002, "lm.weight": 0.002, "embedding.weight": 0.002 } }).summary}`);
  for (const e of r.json.pretrain.epochs) assert.ok(Number.isFinite(e.val_loss) && e.val_loss > 0, `a validation loss per pretraining epoch: ${JSON.stringify(e)}`);
  assert.ok(r.json.pretrain.epochs[1].train_loss < r.json.pretrain.epochs[0].train_loss, `the language model learns: ${JSON.stringify(r.json.pretrain.epochs)}`);
  // the classifier: the LM's embedding and LSTM, its own head from --seed
  const clf = loadModel(join(out, "model"));
  assert.equal(clf.model.task, undefined);
  assert.match(r.stderr, /initialised embedding\.weight, rnn\.l0\.w_ih, rnn\.l0\.w_hh, rnn\.l0\.b_ih, rnn\.l0\.b_hh from .*pretrain[\\/]model \(task lm\)/);
  for (const name of ["embedding.weight", "rnn.l0.w_ih", "rnn.l0.w_hh", "rnn.l0.b_ih", "rnn.l0.b_hh"]) tensorsEqual(clf, lm, name);
  const clfInit = { layout: clf.layout, params: initParams(clf.model, 5, { forgetBias: DEFAULTS.model.forgetBias }) };
  for (const name of ["fc.weight", "fc.bias"]) tensorsEqual(clf, clfInit, name);
  assert.ok(r.json.steps > 0);
  // the language model is no classifier: predict refuses it by name, and takes the fine-tuned model
  const refused = await runCli(["predict", "--model", join(out, "pretrain", "model"), "A wonderful film."]);
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /pretrain[\/]model: this is a pretraining model \(task lm\), not a sentiment classifier/);
  const p = await runCli(["predict", "--model", join(out, "model"), "A wonderful film."]);
  assert.equal(p.code, 0, p.stderr);
});

test("train --pretrain vectors: skip-gram vectors in GloVe's text format become the classifier's embedding", { timeout: 240_000 }, async (t) => {
  const out = join(root, "vectors");
  const r = await runCli(["train", "--data", data, "--out", out, "--workers", "2", "--backend", "wasm", "--pretrain", "vectors", "--pretrain-epochs", "2", "--pretrain-lr", "0.02",
    ...SHAPE, ...FROZEN_CLASSIFIER, "--json"], { timeoutMs: 200_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.pretrain.task, "sgns");
  const sg = loadModel(join(out, "pretrain", "model"));
  assert.equal(sg.model.task, "sgns");
  const counts = loadVocabCounts(join(out, "dataset", "vocab.json")).counts;
  t.diagnostic(`skip-gram ${assertMoved(initParams(sg.model, 5, { counts }), sg.params, { minRel: 0.05, layout: sg.layout, tensors: { "embedding.weight": 1e-4, "context.weight": 1e-4 } }).summary}`);
  // vectors.txt: every token but <unk> and <pad>, E numbers each, the model's input vectors exactly
  const vocab = loadVocab(join(out, "dataset", "vocab.json")).tokens;
  const lines = readFileSync(join(out, "pretrain", "vectors.txt"), "utf8").trimEnd().split("\n");
  assert.equal(lines.length, vocab.length - 2);
  const E = 8, emb = view(sg.layout, sg.params, "embedding.weight");
  const clf = loadModel(join(out, "model"));
  const clfEmb = view(clf.layout, clf.params, "embedding.weight");
  for (const line of lines) {
    const [word, ...values] = line.split(" ");
    const id = vocab.indexOf(word!);
    assert.ok(id > PAD_ID, `${word} is a vocabulary token`);
    assert.equal(values.length, E);
    for (let j = 0; j < E; j++) {
      assert.equal(Math.fround(Number(values[j])), emb[id * E + j], `${word}[${j}] in vectors.txt`);
      assert.equal(clfEmb[id * E + j], emb[id * E + j], `${word}[${j}] in the classifier's embedding`);
    }
  }
  for (const id of [UNK_ID, PAD_ID]) assert.ok(clfEmb.subarray(id * E, (id + 1) * E).every((x) => x === 0), "<unk> and <pad> rows are zero");
  assert.match(r.stderr, new RegExp(`GloVe .*vectors\\.txt: ${vocab.length - 2} of ${vocab.length} vocabulary rows initialised`));
});

// --- resume mid-pretraining ---------------------------------------------------------------------------------

/** 1 worker, 2 batches a step, a checkpoint every 2 steps; task lm, 2 epochs. */
const LM_RUN = ["--task", "lm", "--workers", "1", "--batches-per-step", "2", "--epochs", "2", "--checkpoint-every", "2", "--hidden", "8", "--embed-dim", "8",
  "--lr", "0.01", "--warmup-steps", "2", "--seed", "9", "--max-val-batches", "2", "--step-timeout", "60"];

async function pretrainProcs(dataset: string, out: string, extra: string[] = []): Promise<{ coord: CliProc; worker: CliProc }> {
  const coord = spawnCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--out", out, ...LM_RUN, ...extra], { killAfterMs: 180_000 });
  const [, endpoint] = await coord.waitFor(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/);
  const worker = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w0", "--backend", "wasm"], { killAfterMs: 180_000 });
  return { coord, worker };
}

test("a coordinator killed with SIGKILL mid-pretraining resumes and ends with the uninterrupted run's parameters; the dashboard shows its loss", { timeout: 300_000 }, async (t) => {
  // the dataset: ingest --unsup of the same layout
  const dataset = join(root, "ds");
  const ing = await runCli(["ingest", "--data", data, "--out", dataset, "--unsup", "--batch-size", "4", "--vocab-size", "80", "--val-fraction", "0.2", "--seed", "5"]);
  assert.equal(ing.code, 0, ing.stderr);
  const ds = await openTrainingData(dataset);
  const perEpoch = ds.count("pretrain") / 2;
  assert.ok(Number.isInteger(perEpoch) && perEpoch > 4, `${ds.count("pretrain")} pretrain batches`);

  // the uninterrupted run, scraped by Prometheus; its worker is paused for a while after epoch 1's validation
  const port = await freePort();
  await using prom = await startPrometheus([{ job: "coordinator", targets: [`127.0.0.1:${port}`] }], { intervalS: 1 });
  const full = join(root, "lm-full");
  const u = await pretrainProcs(dataset, full, ["--metrics-port", String(port), "--audit", join(root, "full-audit.jsonl")]);
  const crashed = join(root, "lm-crashed");
  const c = await pretrainProcs(dataset, crashed);
  // the other run: killed without warning right after its checkpoint at step 4 (no exit checkpoint, a step in flight)
  const crash = (async () => {
    await c.coord.waitFor(/checkpoint \(step\) at step 4, epoch 1, 8 of \d+ batches into it/);
    c.worker.p.kill("SIGSTOP");
    await new Promise((res) => setTimeout(res, 200));
    c.coord.p.kill("SIGKILL");
    const code = await c.coord.done;
    c.worker.p.kill("SIGKILL");
    return code;
  })();
  void crash.catch(() => {}); // awaited below; a failure before then must not be an unhandled rejection
  try {
    await u.coord.waitFor(/epoch 1\/2: train loss/);
    u.worker.p.kill("SIGSTOP");
    const panel = JSON.parse(readFileSync(new URL("../../deploy/grafana/dashboards/imdb-train.json", import.meta.url), "utf8"))
      .panels.find((p: { title: string }) => p.title === "Pretraining loss");
    assert.ok(panel, "the dashboard has a Pretraining loss panel");
    const expr = expandGrafanaVars(panel.targets[0].expr);
    let series: { metric: Record<string, string>; value: [number, string] }[] = [];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      series = await prom.query(expr);
      if (series.length === 2) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    u.worker.p.kill("SIGCONT");
    assert.deepEqual(series.map((s) => `${s.metric.task} ${s.metric.split}`).sort(), ["lm train", "lm validation"]);
    for (const s of series) assert.ok(Number(s.value[1]) > 0 && Number.isFinite(Number(s.value[1])), `loss ${s.value[1]}`);
    assert.equal(await crash, null, "the second coordinator was killed mid-run");
    assert.equal(await u.coord.done, 0, u.coord.err());
  } finally {
    await Promise.all([u.coord, u.worker, c.coord, c.worker].map((p) => p.stop()));
  }
  const resumed = join(root, "lm-resumed");
  cpSync(crashed, resumed, { recursive: true });
  const r = await pretrainProcs(dataset, resumed, ["--auto-resume"]);
  try {
    assert.equal(await r.coord.done, 0, r.coord.err());
  } finally {
    await Promise.all([r.coord, r.worker].map((p) => p.stop()));
  }
  assert.match(r.coord.err(), /resumed from .*last\.ckpt: step [4-9]\d*, epoch 1, \d+ of \d+ batches into it/);
  const a = loadModel(join(full, "model")), b = loadModel(join(resumed, "model"));
  assert.equal(a.model.task, "lm");
  const d = maxAbsDiff(a.params, b.params);
  t.diagnostic(`max |Δ| resumed vs uninterrupted = ${d}`);
  assert.equal(d, 0, "the resumed pretraining ends bit for bit where the uninterrupted one does");
  const counts = loadVocabCounts(join(dataset, "vocab.json")).counts;
  t.diagnostic(assertMoved(initParams(a.model, 9, { forgetBias: DEFAULTS.model.forgetBias, counts }), a.params, { minRel: 0.01, layout: a.layout, tensors: { "rnn.l0.w_hh": 0.001, "lm.weight": 0.001 } }).summary);
  // every train and unsup review once per epoch, never a validation review
  const want: number[] = [];
  for (let i = 0; i < ds.count("pretrain"); i++) want.push(...ds.batch("pretrain", i).ids);
  const valIds = new Set<number>();
  for (let i = 0; i < ds.count("val"); i++) for (const id of ds.batch("val", i).ids) valIds.add(id);
  const epochs = idsByEpoch(readAudit(join(root, "full-audit.jsonl")));
  assert.deepEqual([...epochs.keys()], [1, 2]);
  for (const [epoch, ids] of epochs) {
    assert.deepEqual([...ids].sort((x, y) => x - y), [...want].sort((x, y) => x - y), `epoch ${epoch}: every pretrain review once`);
    assert.ok(!ids.some((id) => valIds.has(id)), "no validation review in pretraining");
  }
});
