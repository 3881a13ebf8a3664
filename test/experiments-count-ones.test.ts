// count-ones on the real IMDB engine (wasm backend): the chapter's target on a reduced data set, determinism,
// and the CLI. The full 10,000/1,000 run's figures are in README.md ("Experiments").
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEngine } from "../src/engine/index.js";
import { COUNT_ONES_DEFAULTS, countOnesLayoutConfig, countOnesModel, trainCountOnes, type CountOnesOptions } from "../src/experiments/count-ones.js";
import { initParams, paramLayout } from "../src/model/layout.js";
import { assertMoved } from "./helpers/params.js";
import type { CellKind } from "../src/config.js";
import { runCli } from "./helpers/cli.js";

async function run(cell: CellKind, over: Partial<CountOnesOptions>) {
  const o: CountOnesOptions = { ...COUNT_ONES_DEFAULTS, cell, ...over };
  const engine = await createEngine({ model: countOnesModel(cell, o.hidden), input: "dense", inputDim: 1, loss: "mse", backend: "wasm" });
  try {
    return await trainCountOnes(engine, o);
  } finally {
    engine.dispose();
  }
}

// Reduced size (2,000 train / 200 test instead of 10,000 / 1,000) so that CI stays short: ~4 s per cell.
for (const cell of ["lstm", "gru"] as const) {
  test(`count-ones ${cell}: 100% test accuracy within 6 epochs (2,000 train / 200 test sequences)`, async () => {
    const r = await run(cell, { train: 2000, test: 200, epochs: 6 });
    const acc = r.epochs.map((e) => e.testAccuracy);
    assert.ok(acc.includes(1), `test accuracy per epoch: ${acc.join(", ")}`);
    assert.ok(r.epochs[r.epochs.length - 1]!.trainLoss < r.epochs[0]!.trainLoss / 10, `train loss ${r.epochs.map((e) => e.trainLoss).join(", ")}`);
  });
}

test("count-ones is deterministic for a seed and depends on it", async (t) => {
  const small = { train: 160, test: 40, epochs: 1 };
  const a = await run("gru", small);
  const b = await run("gru", small);
  const c = await run("gru", { ...small, seed: 99 });
  assert.deepEqual(a.params, b.params);
  // not vacuous: 160 sequences in batches of 16 are 10 Adam steps of lr 0.005, the first of which alone moves
  // each value with a gradient by 0.005. Every tensor but fc.bias (which starts at the data's mean count, not
  // at its random initial value) must have moved by an RMS change of at least half that
  const cfg = countOnesLayoutConfig("gru", COUNT_ONES_DEFAULTS.hidden);
  const floors = Object.fromEntries(paramLayout(cfg).entries.filter((e) => e.name !== "fc.bias").map((e) => [e.name, COUNT_ONES_DEFAULTS.lr / 2]));
  const moved = assertMoved(initParams(cfg, COUNT_ONES_DEFAULTS.seed), a.params, { minRel: 0, layout: paramLayout(cfg), tensors: floors });
  t.diagnostic(moved.summary);
  assert.deepEqual(a.epochs.map((e) => e.testLoss), b.epochs.map((e) => e.testLoss));
  assert.notDeepEqual(a.params, c.params);
});

test("CLI: experiment count-ones --json prints the per-epoch figures and writes the plot", async (t) => {
  const out = await mkdtemp(join(tmpdir(), "count-ones-"));
  try {
    const r = await runCli(["experiment", "count-ones", "--cell", "gru", "--train", "320", "--test", "50", "--epochs", "2", "--backend", "wasm", "--out", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json;
    assert.equal(j.cell, "gru");
    assert.equal(j.test_accuracy.length, 2);
    // the figures are the experiment's own (the same seeded run in this process), and they show learning: the
    // second epoch's mean training loss is at least 10% below the first's (5.20 → 4.14 when written). Test
    // accuracy after two short epochs is near chance (predicting 10 of 20 is right 17.6% of the time), so it
    // is checked for equality, not for a level
    const same = await run("gru", { train: 320, test: 50, epochs: 2 });
    t.diagnostic(`test accuracy ${j.test_accuracy}, train loss ${j.train_loss}`);
    assert.deepEqual(j.test_accuracy, same.epochs.map((e) => e.testAccuracy));
    assert.deepEqual(j.train_loss, same.epochs.map((e) => e.trainLoss));
    assert.ok(j.train_loss[1] < 0.9 * j.train_loss[0], `train loss ${j.train_loss}`);
    assert.equal(j.train_loss.length, 2);
    assert.equal(j.backend, "wasm");
    assert.equal(j.settings.batch_size, 16);
    assert.equal(j.settings.hidden, 20);
    const svg = await readFile(join(out, "count-ones-gru.svg"), "utf8");
    assert.match(svg, /^<svg /);
    assert.match(svg, /accuracy/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("CLI: count-ones rejects an unknown cell", async () => {
  const r = await runCli(["experiment", "count-ones", "--cell", "rnn"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /lstm, gru|Allowed choices/);
});
