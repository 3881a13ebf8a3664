// `bench gpu-engine`: the PyTorch anchor's output parsing and child-process handling (a stand-in Python
// script, real child process), the anchor-style batching, and a short real run of the command on the
// software adapter (timings meaningless; it checks the wiring, the --check path and the results file).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../src/rng.js";
import { parseAnchorLine, runAnchor, summarizeAnchor } from "../src/bench/gpu-anchor.js";
import { anchorBatches, cardSlug } from "../src/bench/gpu-engine.js";
import { acquireDevice, hardwareAdapters, listAdapters } from "../src/engine/gpu/device.js";
import { runCli, SHARED_ARCHIVE } from "./helpers/cli.js";

test("anchor lines parse; the first epoch is left out of the figure", () => {
  const e = parseAnchorLine("cuda threads=None bs=64 epoch 2: 7.6s train, 3290 samples/s, 888000 tokens/s, test_acc=0.87");
  assert.deepEqual(e, { batch: 64, epoch: 2, seconds: 7.6, samples_per_s: 3290, tokens_per_s: 888000 });
  assert.equal(parseAnchorLine("cpu threads=2 bs=64 epoch 1: 9.0s train, 4 samples/s, 1 tokens/s, test_acc=None"), undefined);
  const s = summarizeAnchor([
    { batch: 64, epoch: 1, seconds: 9, samples_per_s: 2000, tokens_per_s: 0 },
    { batch: 64, epoch: 2, seconds: 8, samples_per_s: 3000, tokens_per_s: 0 },
    { batch: 64, epoch: 3, seconds: 8, samples_per_s: 3200, tokens_per_s: 0 },
    { batch: 256, epoch: 1, seconds: 3, samples_per_s: 8000, tokens_per_s: 0 },
  ]);
  assert.equal(s.get(64), 3100);
  assert.equal(s.get(256), 8000);
  assert.equal(cardSlug("NVIDIA H200"), "nvidia-h200");
  assert.equal(cardSlug("llvmpipe (LLVM 15.0.6, 256 bits)"), "llvmpipe");
});

test("the anchor child is stopped once its last CUDA figure is printed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gpu-anchor-"));
  try {
    const script = join(dir, "anchor.py");
    await writeFile(script, [
      "import sys, time",
      "print('gpu: Fake GPU torch 2.11 cudnn 1', flush=True)",
      "print('cuda threads=None bs=64 epoch 1: 1.0s train, 100 samples/s, 5 tokens/s, test_acc=0.5', flush=True)",
      "print('cuda threads=None bs=64 epoch 2: 1.0s train, 300 samples/s, 5 tokens/s, test_acc=0.5', flush=True)",
      "print('cuda threads=None bs=256 epoch 1: 1.0s train, 900 samples/s, 5 tokens/s, test_acc=None', flush=True)",
      "time.sleep(60)",
      "",
    ].join("\n"));
    const t0 = Date.now();
    const r = await runAnchor({ python: "python3", script, train: "a", test: "b", epochs: 2, lastBatch: 256, timeoutS: 30 });
    assert.ok(Date.now() - t0 < 20_000, "did not wait for the slow CPU tail");
    assert.equal(r.gpu, "Fake GPU");
    assert.equal(r.samplesPerS.get(64), 300);
    assert.equal(r.samplesPerS.get(256), 900);
    await writeFile(script, "import sys\nprint('no cuda here', file=sys.stderr)\nsys.exit(1)\n");
    await assert.rejects(runAnchor({ python: "python3", script, train: "a", test: "b", epochs: 1, lastBatch: 256, timeoutS: 30 }), /no CUDA figures.*no cuda here/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("anchor-style batches: every review once, sorted within pools, padded to their longest", () => {
  const rng = new Rng(1);
  const reviews = Array.from({ length: 1000 }, () => ({ ids: Int32Array.from({ length: 1 + rng.int(50) }, () => 2), label: 0 as const }));
  const batches = anchorBatches(reviews, 8, new Rng(2));
  assert.equal(batches.reduce((a, b) => a + b.size, 0), 1000);
  assert.equal(batches.length, Math.ceil(1000 / 8));
  for (const b of batches) assert.equal(b.maxLen, Math.max(...b.lengths));
  // Within-pool sorting keeps padding low: far below random batching's.
  const padded = batches.reduce((a, b) => a + b.size * b.maxLen, 0), real = reviews.reduce((a, r) => a + r.ids.length, 0);
  assert.ok(padded / real < 1.1, `padding ${padded / real}`);
});

test("bench gpu-engine runs end to end on the software adapter and writes its results file", async (t) => {
  try { (await acquireDevice({ kind: "software" })).device.destroy(); } catch (err) {
    return t.skip(`no WebGPU adapter could be created (${(err as Error).message})`);
  }
  const out = await mkdtemp(join(tmpdir(), "gpu-bench-"));
  try {
    const r = await runCli(["bench", "gpu-engine", "--adapter", "software", "--data", SHARED_ARCHIVE, "--count", "200",
      "--batch-sizes", "4", "--max-batches", "2", "--hidden", "16", "--embed-dim", "8", "--vocab-size", "500",
      "--check", "--skip-baseline", "--out", out, "--json"], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.json.check.max_rel_err < 1e-3, JSON.stringify(r.json.check));
    assert.equal(r.json.check.rows_bit_identical, true);
    const rows = JSON.parse(await readFile(r.json.file, "utf8"));
    assert.equal(rows.length, 1);
    assert.equal(rows[0].bench, "gpu-engine");
    assert.equal(rows[0].batch, 4);
    assert.equal(rows[0].ratio, null);
    assert.ok(rows[0].samples_per_s > 0);
    assert.ok(rows[0].rows_samples_per_s > 0);
    // rows form, per step: logits [4], the dense gradient (LSTM 16 on E 8: 1,681 values) and some of the
    // 502 embedding rows of 8, fewer than the whole table
    const dense = 4 * (4 + 1681);
    assert.ok(rows[0].rows_readback_bytes > dense && rows[0].rows_readback_bytes < dense + 4 * 502 * 8, String(rows[0].rows_readback_bytes));
    assert.equal(rows[0].software_adapter, true);
    if (hardwareAdapters(await listAdapters()).length === 0) {
      // No hardware adapter here: the default (--adapter gpu) refuses with a typed error naming what was tried.
      const gpuOnly = await runCli(["bench", "gpu-engine", "--data", SHARED_ARCHIVE, "--skip-baseline", "--out", ""], { timeoutMs: 60_000 });
      assert.equal(gpuOnly.code, 7, gpuOnly.stderr);
      assert.match(gpuOnly.stderr, /no WebGPU adapter/);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
