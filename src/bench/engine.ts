// `bench engine`: training steps (forward + backward) of the fused engine and, in the same run and on the
// same backend, of tf.layers trained by tfjs autodiff, on real IMDB batches at the archive's median and
// 90th-percentile review lengths. Also checks the engine's loss and accuracy against the slow reference.
import type { CellKind, ModelConfig } from "../config.js";
import { errorMessage } from "../errors.js";
import { logger, progress } from "../output.js";
import { initParams } from "../model/layout.js";
import { useBackend, type BackendChoice } from "../tfjs.js";
import { createLayersBaseline } from "./engine-baseline.js";
import { backendLoaders, createEngine } from "../engine/index.js";
import { ReferenceModel } from "../engine/reference.js";
import { batchNearLength, lengthQuantile, loadReviewSample } from "./sample.js";

const log = logger("bench-engine");

export interface BenchEngineOptions {
  data: string;
  batchSize: number;
  /** Length quantiles to time, e.g. [0.5, 0.9]. */
  quantiles: number[];
  steps: number;
  baselineSteps: number;
  /** Quantiles at which the baseline runs too (a subset of `quantiles`). */
  baselineQuantiles: number[];
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
  engine_step_s: number;
  /** Absent when the baseline was not run at this length or failed (then `baseline_error`). */
  baseline_samples_per_s?: number;
  baseline_step_s?: number;
  ratio?: number;
  baseline_error?: string;
  /** |engine − reference| loss (relative) and whether the correct counts agree; absent with --no-check. */
  loss_rel_diff?: number;
  correct_agrees?: boolean;
}

export interface BenchEngineResult {
  bench: "engine";
  backend: string;
  /** Engine: timed samples / seconds over the cases where the baseline ran too (all cases if none did). */
  samples_per_s: number;
  /** Baseline: the same over those cases (null if it ran nowhere). */
  baseline_samples_per_s: number | null;
  /** samples_per_s / baseline_samples_per_s (null if the baseline ran nowhere). */
  ratio: number | null;
  /** Engine over every case, including those where the baseline failed or was not run. */
  samples_per_s_all_cases: number;
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
  // The baseline and the reference run on tfjs: the same backend choice (when createEngine handed the model
  // to the WebGPU engine, tfjs was not started yet).
  const tfBackend = await useBackend(o.backend, backendLoaders);
  const reference = o.check ? new ReferenceModel({ model }) : undefined;
  log.info(`${sample.reviews.length} reviews, vocabulary ${sample.vocab.length}, engine backend ${engine.backend}, tf.layers backend ${tfBackend}`);
  const batches = o.quantiles.map((q) => ({ q, batch: batchNearLength(sample.reviews, lengthQuantile(sample.reviews, q), o.batchSize) }));

  // 1. The engine on every batch (before the baseline, whose autodiff tape fragments the wasm heap).
  const cases: BenchCase[] = [];
  for (const { q, batch } of batches) {
    const B = batch.size, T = batch.maxLen;
    let tokens = 0;
    for (const l of batch.lengths) tokens += l;
    const bar = progress(`engine q${q} T=${T}`, o.steps + 1, "steps");
    await engine.step(params, batch); // warm-up (backend kernels, allocations)
    bar.tick();
    const t0 = performance.now();
    for (let i = 0; i < o.steps; i++) { await engine.step(params, batch); bar.tick(); }
    const eStep = (performance.now() - t0) / 1000 / o.steps;
    bar.done();
    const c: BenchCase = { quantile: q, length: T, samples_per_s: B / eStep, tokens_per_s: tokens / eStep, engine_step_s: eStep };
    if (reference) {
      const got = await engine.evaluate(params, batch);
      const want = reference.evaluate(params, batch);
      c.loss_rel_diff = Math.abs(got.lossSum - want.lossSum) / Math.max(1e-12, Math.abs(want.lossSum));
      c.correct_agrees = got.correct === want.correct;
    }
    log.info(`q${q} T=${T}: engine ${c.samples_per_s.toFixed(1)} samples/s (${eStep.toFixed(2)} s/step)` +
      (c.loss_rel_diff !== undefined ? `, loss vs reference ${c.loss_rel_diff.toExponential(1)}, correct ${c.correct_agrees ? "agrees" : "DIFFERS"}` : ""));
    cases.push(c);
  }
  engine.dispose();

  // 2. The baseline, shortest batches first; a failure (e.g. out of wasm memory) is recorded, not fatal.
  const baseline = createLayersBaseline(model);
  for (const i of cases.map((_, i) => i).sort((a, b) => cases[a].length - cases[b].length)) {
    const c = cases[i], batch = batches[i].batch;
    if (!o.baselineQuantiles.includes(c.quantile)) continue;
    const bar = progress(`tf.layers q${c.quantile} T=${c.length}`, o.baselineSteps, "steps");
    const times: number[] = [];
    try {
      for (let k = 0; k < o.baselineSteps; k++) {
        const s = performance.now();
        baseline.step(batch);
        times.push((performance.now() - s) / 1000);
        bar.tick();
      }
    } catch (err) {
      c.baseline_error = errorMessage(err);
      log.warn(`q${c.quantile} T=${c.length}: tf.layers step failed: ${c.baseline_error}`);
      continue;
    } finally {
      bar.done();
    }
    // The first step includes graph building: time the later ones when there are several.
    const timed = times.length > 1 ? times.slice(1) : times;
    const bStep = timed.reduce((a, b) => a + b, 0) / timed.length;
    c.baseline_step_s = bStep;
    c.baseline_samples_per_s = batch.size / bStep;
    c.ratio = bStep / c.engine_step_s;
    log.info(`q${c.quantile} T=${c.length}: tf.layers ${c.baseline_samples_per_s.toFixed(2)} samples/s (${bStep.toFixed(1)} s/step), engine ${c.ratio.toFixed(1)}x faster`);
  }
  baseline.dispose();

  // Totals over the cases where both ran (same samples), so that ratio = samples_per_s / baseline_samples_per_s;
  // the engine over every case as well.
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const B = o.batchSize;
  const both = cases.filter((c) => c.baseline_step_s !== undefined);
  const all = (cases.length * B) / sum(cases.map((c) => c.engine_step_s));
  const sps = both.length ? (both.length * B) / sum(both.map((c) => c.engine_step_s)) : all;
  const bsps = both.length ? (both.length * B) / sum(both.map((c) => c.baseline_step_s!)) : null;
  const ratio = bsps ? sps / bsps : null;
  return { bench: "engine", backend: engine.backend, samples_per_s: sps, baseline_samples_per_s: bsps, ratio,
    samples_per_s_all_cases: all, batch_size: B, model, cases };
}
