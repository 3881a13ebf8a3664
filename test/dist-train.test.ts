// Distributed training end to end with real processes, real ZeroMQ sockets, the real engine and a real
// nats-server: 2 workers × b equals 1 worker × 2b; the NATS cluster plane; eval / predict / TF.js export.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { runCli, BIN } from "./helpers/cli.js";
import { startNats, type NatsServer } from "./helpers/nats.js";
import { makeLayout, writeLayoutDir, tempDir, cleanup } from "./helpers/fixture.js";
import { runIngest } from "../src/ingest/index.js";
import { connectNats } from "../src/transport/nats.js";
import { loadModel } from "../src/model/files.js";
import { loadExported, predictExported } from "../src/model/export.js";
import { predictTexts } from "../src/workers/evaluate.js";
import { encodeText, padBatch } from "../src/workers/textbatch.js";
import { loadVocab } from "../src/dataset/vocab.js";

let root = "";
let data = "";
let dataset = "";
let nats: NatsServer;
// a small model; 2 batches per step, 10 steps
const SMALL = ["--hidden", "16", "--embed-dim", "8", "--dropout", "0.3", "--epochs", "1", "--max-steps", "10", "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--clip", "1", "--seed", "5"];

before(async () => {
  root = tempDir("imdb-dist-");
  data = writeLayoutDir(join(root, "data"), makeLayout({ train: 60, test: 10, seed: 11, words: [5, 40] }));
  dataset = join(root, "ds");
  await runIngest({ data, out: dataset, batchSize: 4, vocabSize: 200, valFraction: 0.2, seed: 3, maxLen: 30 });
  nats = await startNats();
});

after(async () => {
  await nats?.stop();
  cleanup(root);
});


/** Run a CLI child to completion, collecting output. */
function child(args: string[]): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; pid: number; kill(sig: NodeJS.Signals): void; stderr(): string } {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  p.stdout.on("data", (d) => { stdout += String(d); });
  p.stderr.on("data", (d) => { stderr += String(d); });
  const timer = setTimeout(() => p.kill("SIGKILL"), 150_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => p.once("close", (code) => { clearTimeout(timer); res({ code, stdout, stderr }); }));
  return { done, pid: p.pid!, kill: (s) => p.kill(s), stderr: () => stderr };
}

test("2 workers × b give the same parameters as 1 worker × 2b after 10 steps (1-worker run found through NATS)", async (t) => {
  const outA = join(root, "two");
  const outB = join(root, "one");
  const a = await runCli(["train", "--dataset", dataset, "--out", outA, "--workers", "2", "--backend", "wasm", "--json", ...SMALL], { timeoutMs: 150_000 });
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.json.steps, 10);
  assert.equal(a.json.samples, 10 * 2 * 4);
  assert.ok(existsSync(join(outA, "checkpoints", "last.ckpt")));
  // the same samples on one worker: 2 batches per step, coordinator announced on NATS, worker discovers it;
  // run events are published on imdb-train.run.<runId>.<event>
  const client = await connectNats(nats.url);
  const events: string[] = [];
  const sub = client.nc.subscribe("imdb-train.run.>", { callback: (_err, msg) => { events.push(msg.subject); } });
  const coord = child(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "1", "--batches-per-step", "2", "--out", outB, "--nats", nats.url, "--json", ...SMALL]);
  const worker = child(["worker", "--nats", nats.url, "--name", "solo", "--backend", "wasm"]);
  const [c, w] = await Promise.all([coord.done, worker.done]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(w.code, 0, w.stderr);
  assert.match(w.stderr, /found coordinator tcp:\/\/127\.0\.0\.1:\d+ \(run \d+\) through nats:/);
  assert.match(w.stderr, /dropout 0\.3 on the classifier's input/, "the worker was told the run's dropout");
  await client.nc.flush();
  sub.unsubscribe();
  await client.close();
  assert.equal(events.filter((e) => /^imdb-train\.run\.\d+\.step$/.test(e)).length, 10, events.join(" "));
  assert.ok(events.some((e) => e.endsWith(".epoch")) && events.some((e) => e.endsWith(".member")), events.join(" "));
  const pa = loadModel(join(outA, "model")).params;
  const pb = loadModel(join(outB, "model")).params;
  assert.equal(pa.length, pb.length);
  let maxDiff = 0;
  for (let i = 0; i < pa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(pa[i]! - pb[i]!));
  t.diagnostic(`max |Δ| = ${maxDiff}`);
  assert.ok(maxDiff < 1e-5, `max |Δ| = ${maxDiff}`);
  // and training did move the parameters (the comparison is not vacuous)
  const init = JSON.parse(readFileSync(join(outA, "model", "config.json"), "utf8"));
  assert.equal(init.training.steps, 10);
});

test("eval, predict and the TensorFlow.js export agree on a trained model", async () => {
  const out = join(root, "two");
  const modelDir = join(out, "model");
  assert.ok(existsSync(join(modelDir, "tfjs", "model.json")), "the run exported a LayersModel");
  const ev = await runCli(["eval", "--model", modelDir, "--data", data, "--json", "--backend", "wasm"], { timeoutMs: 60_000 });
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal(ev.json.n, 20, "the test split (10 pos + 10 neg) is used when present");
  assert.equal(ev.json.split, "test");
  assert.ok(ev.json.accuracy >= 0 && ev.json.accuracy <= 1 && Number.isFinite(ev.json.loss));
  // without a test/ split, every train/ review is evaluated
  const trainOnly = writeLayoutDir(join(root, "train-only"), makeLayout({ train: 6, seed: 99, words: [5, 20] }));
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
  const base = ["--dataset", dataset, "--workers", "1", "--backend", "wasm", "--hidden", "8", "--embed-dim", "4", "--max-steps", "4",
    "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--seed", "21", "--max-val-batches", "1"];
  const full = join(root, "resume-full"), half = join(root, "resume-half"), rest = join(root, "resume-rest");
  const a = await runCli(["train", ...base, "--epochs", "2", "--out", full], { timeoutMs: 120_000 });
  assert.equal(a.code, 0, a.stderr);
  const b = await runCli(["train", ...base, "--epochs", "1", "--out", half], { timeoutMs: 120_000 });
  assert.equal(b.code, 0, b.stderr);
  const c = await runCli(["train", ...base, "--epochs", "2", "--out", rest, "--resume", join(half, "checkpoints", "last.ckpt"), "--json"], { timeoutMs: 120_000 });
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stderr, /resumed from .*last\.ckpt: step 4, epoch 1/);
  assert.equal(c.json.steps, 8);
  const pa = loadModel(join(full, "model")).params, pc = loadModel(join(rest, "model")).params;
  let maxDiff = 0;
  for (let i = 0; i < pa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(pa[i]! - pc[i]!));
  t.diagnostic(`max |Δ| = ${maxDiff}`);
  assert.ok(maxDiff < 1e-5, `max |Δ| = ${maxDiff}`);
});

test("train --glove starts the embedding from the GloVe file (<unk> and <pad> rows zero); a bad file is named", async () => {
  const vocab = loadVocab(join(dataset, "vocab.json"));
  const words = vocab.tokens.slice(2, 6); // four real words of the fixture's vocabulary
  const E = 8;
  const vec = (i: number) => Array.from({ length: E }, (_, j) => (i + 1) * 0.5 + j * 0.01);
  const glovePath = join(root, "glove.8d.txt");
  const { writeFileSync } = await import("node:fs");
  writeFileSync(glovePath, words.map((w, i) => `${w} ${vec(i).join(" ")}`).join("\n") + "\nnot-in-vocab " + vec(9).join(" ") + "\n");
  const out = join(root, "glove");
  // lr 1e-9: one Adam step moves a weight by at most ~1e-9, so the saved model is the initialisation
  const r = await runCli(["train", "--dataset", dataset, "--workers", "1", "--out", out, "--backend", "wasm", ...SMALL, "--max-steps", "1", "--lr", "1e-9", "--glove", glovePath, "--json"], { timeoutMs: 120_000 });
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
  const bad = await runCli(["train", "--dataset", dataset, "--workers", "1", "--out", join(root, "glove-bad"), "--backend", "wasm", ...SMALL, "--glove", glovePath], { timeoutMs: 120_000 });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /glove\.8d\.txt: line 1: expected 8 numbers/);
});
