// `bench engine`: training steps (forward + backward) of the fused engine and, in the same run and on the
// same backend, of tf.layers trained by tfjs autodiff, on real IMDB batches at the archive's median and
// 90th-percentile review lengths. Also checks the engine's loss and accuracy against the slow reference.
import type { CellKind, ModelConfig } from "../../config.js";
import { logger, progress } from "../../output.js";
import { initParams } from "../../model.js";
import type { BackendChoice } from "../../tfjs.js";
import { createLayersBaseline } from "./baseline.js";
import { createEngine } from "./index.js";
import { ReferenceModel } from "./reference.js";
import { batchNearLength, lengthQuantile, loadReviewSample } from "./sample.js";

const log = logger("bench-engine");

export interface BenchEngineOptions {
  data: string;
  batchSize: number;
  /** Length quantiles to time, e.g. [0.5, 0.9]. */
  quantiles: number[];
  steps: number;
  baselineSteps: number;
  backend: BackendChoice;
  cell: CellKind;
  hidden: number;
  embedDim: number;
  vocabSize: number;
  check: boolean;
}

export interface BenchCase {
  quantile: number;
  /** T: padded length of the batch (the review length at that quantile). */
  length: number;
  samples_per_s: number;
  tokens_per_s: number;
  baseline_samples_per_s: number;
  ratio: number;
  engine_step_s: number;
  baseline_step_s: number;
  /** |engine − reference| loss (relative) and whether the correct counts agree; absent with --no-check. */
  loss_rel_diff?: number;
  correct_agrees?: boolean;
}

export interface BenchEngineResult {
  bench: "engine";
  backend: string;
  /** Over all cases: samples timed / seconds spent, engine and baseline. */
  samples_per_s: number;
  baseline_samples_per_s: number;
  ratio: number;
  batch_size: number;
  model: ModelConfig;
  cases: BenchCase[];
}

export async function benchEngine(o: BenchEngineOptions): Promise<BenchEngineResult> {
  log.info(`reading and tokenizing ${o.data}`);
  const sample = await loadReviewSample(o.data, { vocabSize: o.vocabSize });
  const model: ModelConfig = { cell: o.cell, vocabSize: sample.vocab.length, embedDim: o.embedDim, hidden: o.hidden, layers: 1, bidirectional: false };
  const engine = await createEngine({ model, backend: o.backend });
  const params = initParams(model, 1234);
  const baseline = createLayersBaseline(model);
  const reference = o.check ? new ReferenceModel({ model }) : undefined;
  log.info(`${sample.reviews.length} reviews, vocabulary ${sample.vocab.length}, backend ${engine.backend}`);
  const cases: BenchCase[] = [];
  let eSamples = 0, eSecs = 0, bSamples = 0, bSecs = 0;
  for (const q of o.quantiles) {
    const target = lengthQuantile(sample.reviews, q);
    const batch = batchNearLength(sample.reviews, target, o.batchSize);
    const B = batch.size, T = batch.maxLen;
    let tokens = 0;
    for (const l of batch.lengths) tokens += l;
    const bar = progress(`engine   q${q} T=${T}`, o.steps + 1, "steps");
    await engine.step(params, batch); // warm-up (backend kernels, allocations)
    bar.tick();
    const t0 = performance.now();
    for (let i = 0; i < o.steps; i++) { await engine.step(params, batch); bar.tick(); }
    const eStep = (performance.now() - t0) / 1000 / o.steps;
    bar.done();
    let check: Pick<BenchCase, "loss_rel_diff" | "correct_agrees"> = {};
    if (reference) {
      const got = await engine.evaluate(params, batch);
      const want = reference.evaluate(params, batch);
      check = { loss_rel_diff: Math.abs(got.lossSum - want.lossSum) / Math.max(1e-12, Math.abs(want.lossSum)), correct_agrees: got.correct === want.correct };
    }
    // Baseline: the first step includes graph building; time the later ones when there are several.
    const bbar = progress(`baseline q${q} T=${T}`, o.baselineSteps, "steps");
    const times: number[] = [];
    for (let i = 0; i < o.baselineSteps; i++) {
      const s = performance.now();
      baseline.step(batch);
      times.push((performance.now() - s) / 1000);
      bbar.tick();
    }
    bbar.done();
    const timed = times.length > 1 ? times.slice(1) : times;
    const bStep = timed.reduce((a, b) => a + b, 0) / timed.length;
    const c: BenchCase = {
      quantile: q, length: T,
      samples_per_s: B / eStep, tokens_per_s: tokens / eStep,
      baseline_samples_per_s: B / bStep, ratio: bStep / eStep,
      engine_step_s: eStep, baseline_step_s: bStep, ...check,
    };
    log.info(`q${q} T=${T}: engine ${c.samples_per_s.toFixed(1)} samples/s (${eStep.toFixed(2)} s/step), ` +
      `tf.layers ${c.baseline_samples_per_s.toFixed(2)} samples/s (${bStep.toFixed(2)} s/step), ratio ${c.ratio.toFixed(1)}x` +
      (check.loss_rel_diff !== undefined ? `, loss vs reference ${check.loss_rel_diff.toExponential(1)}` : ""));
    cases.push(c);
    eSamples += B; eSecs += eStep; bSamples += B; bSecs += bStep;
  }
  baseline.dispose();
  engine.dispose();
  const sps = eSamples / eSecs, bsps = bSamples / bSecs;
  return { bench: "engine", backend: engine.backend, samples_per_s: sps, baseline_samples_per_s: bsps, ratio: sps / bsps, batch_size: o.batchSize, model, cases };
}
