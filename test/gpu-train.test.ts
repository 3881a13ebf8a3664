// The WebGPU engine inside the real system: `train` with a worker process on --backend webgpu (Dawn's
// OpenGL ES backend over llvmpipe here, a GPU where there is one) against the same run on wasm: coordinator,
// ZeroMQ all-reduce, Adam — the losses and the trained parameters must agree.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { acquireDevice } from "../src/engine/gpu/device.js";
import { ingestSmallDataset, trainRun, initialParamsOf, type SmallDataset } from "./helpers/training.js";
import { assertMoved, maxAbsDiff } from "./helpers/params.js";

let fx: SmallDataset | null = null;
let skip: string | false = false;

before(async () => {
  try { (await acquireDevice()).device.destroy(); } catch (err) { skip = `no WebGPU adapter could be created (${(err as Error).message})`; return; }
  fx = await ingestSmallDataset("imdb-gpu-train-", { train: 40, test: 4, seed: 21, words: [5, 30] }, { batchSize: 4, vocabSize: 150, maxLen: 25 });
});

after(() => fx?.cleanup());


test("train on --backend webgpu matches train on wasm (losses and parameters)", async (t) => {
  if (skip || !fx) return t.skip(skip || "no dataset");
  const args = ["--workers", "1", "--hidden", "16", "--embed-dim", "8", "--epochs", "1", "--max-steps", "6",
    "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--clip", "1", "--seed", "5", "--dropout", "0.3"]; // dropout masks drawn alike on both
  const cpu = await trainRun(fx.dataset, join(fx.root, "wasm"), [...args, "--backend", "wasm"]);
  const gpu = await trainRun(fx.dataset, join(fx.root, "webgpu"), [...args, "--backend", "webgpu"]);
  assert.match(gpu.stderr, /WebGPU engine on/);
  assert.equal(gpu.json.steps, cpu.json.steps);
  const [a, b] = [cpu.json.epochs[0], gpu.json.epochs[0]];
  for (const k of ["train_loss", "val_loss"] as const) {
    assert.ok(Math.abs(a[k] - b[k]) <= 1e-3 * Math.abs(a[k]), `${k}: wasm ${a[k]} vs webgpu ${b[k]}`);
  }
  const worst = maxAbsDiff(cpu.params, gpu.params);
  t.diagnostic(`largest parameter difference after 6 Adam steps: ${worst.toExponential(2)}; train_loss ${a.train_loss} vs ${b.train_loss}`);
  assert.ok(worst < 1e-3, `largest parameter difference after 6 Adam steps: ${worst}`);
  // not vacuous: both runs trained. Adam's first step alone moves each value that has a gradient by lr = 0.01;
  // the floors are an RMS change of half that in the recurrent weights and the head, and 1% of ‖p₀‖ overall
  const init = initialParamsOf(cpu.model);
  const floors = { minRel: 0.01, layout: cpu.model.layout, tensors: { "rnn.l0.w_hh": 0.005, "fc.weight": 0.005 } };
  t.diagnostic(`wasm ${assertMoved(init, cpu.params, floors).summary}`);
  t.diagnostic(`webgpu ${assertMoved(init, gpu.params, floors).summary}`);
});
