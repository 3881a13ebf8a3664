// The WebGPU engine inside the real system: `train` with a worker process on --backend webgpu (Dawn's
// OpenGL ES backend over llvmpipe here, a GPU where there is one) against the same run on wasm: coordinator,
// ZeroMQ all-reduce, Adam — the losses and the trained parameters must agree.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runIngest } from "../src/ingest/index.js";
import { acquireDevice } from "../src/engine/gpu/device.js";
import { runCli } from "./helpers/cli.js";
import { cleanup, makeLayout, tempDir, writeLayoutDir } from "./helpers/fixture.js";
import { loadModel } from "../src/model/files.js";

let root = "";
let dataset = "";
let skip: string | false = false;

before(async () => {
  try { (await acquireDevice()).device.destroy(); } catch (err) { skip = `no WebGPU adapter could be created (${(err as Error).message})`; return; }
  root = tempDir("imdb-gpu-train-");
  const data = writeLayoutDir(join(root, "data"), makeLayout({ train: 40, test: 4, seed: 21, words: [5, 30] }));
  dataset = join(root, "ds");
  await runIngest({ data, out: dataset, batchSize: 4, vocabSize: 150, valFraction: 0.2, seed: 3, maxLen: 25 });
});

after(() => { if (root) cleanup(root); });


test("train on --backend webgpu matches train on wasm (losses and parameters)", async (t) => {
  if (skip) return t.skip(skip);
  const args = ["--dataset", dataset, "--workers", "1", "--hidden", "16", "--embed-dim", "8", "--epochs", "1", "--max-steps", "6",
    "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--clip", "1", "--seed", "5", "--dropout", "0.3", "--json"]; // dropout masks drawn alike on both
  const cpu = await runCli(["train", ...args, "--out", join(root, "wasm"), "--backend", "wasm"], { timeoutMs: 150_000 });
  assert.equal(cpu.code, 0, cpu.stderr);
  const gpu = await runCli(["train", ...args, "--out", join(root, "webgpu"), "--backend", "webgpu"], { timeoutMs: 150_000 });
  assert.equal(gpu.code, 0, gpu.stderr);
  assert.match(gpu.stderr, /WebGPU engine on/);
  assert.equal(gpu.json.steps, cpu.json.steps);
  const [a, b] = [cpu.json.epochs[0], gpu.json.epochs[0]];
  for (const k of ["train_loss", "val_loss"] as const) {
    assert.ok(Math.abs(a[k] - b[k]) <= 1e-3 * Math.abs(a[k]), `${k}: wasm ${a[k]} vs webgpu ${b[k]}`);
  }
  const pa = loadModel(join(root, "wasm", "model")).params, pb = loadModel(join(root, "webgpu", "model")).params;
  assert.equal(pa.length, pb.length);
  let worst = 0;
  for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
  t.diagnostic(`largest parameter difference after 6 Adam steps: ${worst.toExponential(2)}; train_loss ${a.train_loss} vs ${b.train_loss}`);
  assert.ok(worst < 1e-3, `largest parameter difference after 6 Adam steps: ${worst}`);
});
