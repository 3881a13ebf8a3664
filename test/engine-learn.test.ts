// A single-process training loop (fused engine + Adam + global-norm clipping) learns on real reviews.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ModelConfig } from "../src/config.js";
import { Adam, clipByGlobalNorm } from "../src/optim/adam.js";
import { initParams } from "../src/model/layout.js";
import { Rng } from "../src/rng.js";
import { createEngine } from "../src/engine/index.js";
import { bucketedBatches, loadReviewSample } from "../src/bench/sample.js";

const ARCHIVE = fileURLToPath(new URL("../../../shared/data/aclImdb-train.tar.gz", import.meta.url));

test("320 real reviews: training loss falls from ~0.69 to well below it", { skip: !existsSync(ARCHIVE) && `no archive at ${ARCHIVE}` }, async () => {
  const sample = await loadReviewSample(ARCHIVE, { count: 320, seed: 3, vocabSize: 3000, maxLen: 100 });
  assert.equal(sample.reviews.length, 320);
  const model: ModelConfig = { cell: "lstm", vocabSize: sample.vocab.length, embedDim: 32, hidden: 64, layers: 1, bidirectional: false };
  const engine = await createEngine({ model, backend: "wasm" });
  const params = initParams(model, 1);
  const adam = new Adam(params.length, { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const rng = new Rng(1);
  const epochLoss: number[] = [];
  for (let epoch = 0; epoch < 8; epoch++) {
    let loss = 0, n = 0;
    for (const batch of bucketedBatches(sample.reviews, 32, rng)) {
      const r = await engine.step(params, batch);
      assert.ok(Number.isFinite(r.lossSum));
      loss += r.lossSum; n += r.count;
      for (let i = 0; i < r.grads.length; i++) r.grads[i] /= r.count;
      clipByGlobalNorm(r.grads, 5);
      adam.step(params, r.grads);
    }
    epochLoss.push(loss / n);
  }
  assert.ok(Math.abs(epochLoss[0] - Math.log(2)) < 0.05, `first epoch loss ${epochLoss[0]} should be near ln 2`);
  assert.ok(epochLoss[7] < 0.45, `last epoch loss ${epochLoss[7]} should be well below 0.69 (losses ${epochLoss.map((x) => x.toFixed(3))})`);
  // The trained parameters also score the whole sample better than chance in evaluation mode.
  let loss = 0, correct = 0, n = 0;
  for (const batch of bucketedBatches(sample.reviews, 64, rng)) {
    const r = await engine.evaluate(params, batch);
    loss += r.lossSum; correct += r.correct; n += r.count;
  }
  assert.ok(loss / n < 0.45 && correct / n > 0.8, `eval loss ${loss / n}, accuracy ${correct / n}`);
});
