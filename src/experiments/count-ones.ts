// `experiment count-ones`: an LSTM or GRU cell (hidden H) → Linear(H, 1) regresses the number of ones in a
// binary sequence, trained with MSE and Adam on the SAME engine that trains on IMDB (src/workers/engine), with
// dense inputs of width 1. Accuracy = round(prediction) == count.
// Legend: B batch, T sequence length, H hidden, N parameters (engine layout).
import type { CellKind, ModelConfig } from "../config.js";
import { TrainingError } from "../errors.js";
import { initParams, view, type LayoutConfig } from "../model/layout.js";
import { Adam, clipByGlobalNorm } from "../optim/adam.js";
import { Rng } from "../rng.js";
import type { Engine } from "../engine/types.js";
import { batchRows, countBatch, makeCountSplits, type CountDataset } from "./count-data.js";
import type { Figure } from "./plot.js";

export interface CountOnesOptions {
  cell: CellKind;
  /** Training and test sequences. */
  train: number;
  test: number;
  /** T: steps per sequence. */
  length: number;
  /** H */
  hidden: number;
  batchSize: number;
  epochs: number;
  /** Adam learning rate (β1 0.9, β2 0.999, ε 1e-8). */
  lr: number;
  /** Global-norm gradient clipping of the batch-mean gradient; 0 = none. */
  clip: number;
  /** Seeds the data, the initial parameters and the shuffles. */
  seed: number;
  /** Start the output bias (fc.bias) at the training set's mean count instead of the random init, so the
   *  first steps need not spend themselves moving the prediction from ≈0 to ≈T/2. */
  meanOutputBias?: boolean;
}

export const COUNT_ONES_DEFAULTS = {
  train: 10_000,
  test: 1_000,
  length: 20,
  hidden: 20,
  batchSize: 16,
  epochs: 10,
  lr: 5e-3,
  clip: 0,
  seed: 1234,
  meanOutputBias: true,
};

export interface CountEpoch {
  epoch: number; //          1-based
  /** Mean per-sequence MSE over the epoch's training batches (at the parameters each batch saw). */
  trainLoss: number;
  trainAccuracy: number;
  /** Mean per-sequence MSE and accuracy on the test set after the epoch. */
  testLoss: number;
  testAccuracy: number;
  seconds: number;
}

export interface CountOnesHooks {
  /** After every training batch. */
  onStep?(step: number, meanLoss: number): void;
  onEpoch?(e: CountEpoch): void;
}

/** The model the experiment trains: one unidirectional layer, dense inputs of width 1. */
export function countOnesModel(cell: CellKind, hidden: number): ModelConfig {
  return { cell, vocabSize: 0, embedDim: 1, hidden, layers: 1, bidirectional: false };
}

export function countOnesLayoutConfig(cell: CellKind, hidden: number): LayoutConfig {
  return { ...countOnesModel(cell, hidden), inputDim: 1 };
}

const EVAL_BATCH = 250; // test sequences per forward pass (evaluation only)

/** Mean loss and accuracy of `params` on `ds`. */
export async function evaluateCount(engine: Engine, params: Float32Array, ds: CountDataset): Promise<{ loss: number; accuracy: number }> {
  let lossSum = 0;
  let correct = 0;
  let count = 0;
  for (const rows of batchRows(ds.size, EVAL_BATCH)) {
    const r = await engine.evaluate(params, countBatch(ds, rows));
    lossSum += r.lossSum;
    correct += r.correct;
    count += r.count;
  }
  return { loss: lossSum / count, accuracy: correct / count };
}

/**
 * Trains from seeded initial parameters; per epoch: shuffled batches, engine.step (gradient of the loss SUM),
 * divide by B for the batch mean, optional clipping, Adam; then the test set. Deterministic for a seed.
 */
export async function trainCountOnes(engine: Engine, o: CountOnesOptions, hooks: CountOnesHooks = {}): Promise<{ epochs: CountEpoch[]; params: Float32Array }> {
  const data = makeCountSplits(o.seed, o.train, o.test, o.length);
  const params = initParams(countOnesLayoutConfig(o.cell, o.hidden), o.seed); //   [N]
  if (params.length !== engine.layout.size) {
    throw new TrainingError(`count-ones: initial parameters have ${params.length} values, the engine's layout ${engine.layout.size}`);
  }
  if (o.meanOutputBias) {
    const mean = data.train.counts.reduce((a, c) => a + c, 0) / data.train.size;
    view(engine.layout, params, "fc.bias")[0] = mean; //                        [1]
  }
  const adam = new Adam(params.length, { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const shuffle = new Rng(o.seed).fork(3);
  const epochs: CountEpoch[] = [];
  let step = 0;
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const t0 = performance.now();
    let lossSum = 0;
    let correct = 0;
    let count = 0;
    for (const rows of batchRows(data.train.size, o.batchSize, shuffle.fork(epoch))) {
      const batch = countBatch(data.train, rows);
      const r = await engine.step(params, batch);
      if (!Number.isFinite(r.lossSum)) throw new TrainingError(`count-ones: the loss became ${r.lossSum} at step ${step + 1} (epoch ${epoch})`);
      const grads = r.grads; //                                  [N] gradient of the loss SUM
      const B = batch.size;
      for (let i = 0; i < grads.length; i++) grads[i] /= B; //    → gradient of the batch MEAN
      if (o.clip > 0) clipByGlobalNorm(grads, o.clip);
      adam.step(params, grads);
      lossSum += r.lossSum;
      correct += r.correct;
      count += r.count;
      step++;
      hooks.onStep?.(step, r.lossSum / B);
    }
    const test = await evaluateCount(engine, params, data.test);
    const e: CountEpoch = {
      epoch,
      trainLoss: lossSum / count,
      trainAccuracy: correct / count,
      testLoss: test.loss,
      testAccuracy: test.accuracy,
      seconds: (performance.now() - t0) / 1000,
    };
    epochs.push(e);
    hooks.onEpoch?.(e);
  }
  return { epochs, params };
}

/** Train loss (log scale) and test accuracy per epoch. */
export function countOnesFigure(o: CountOnesOptions, epochs: CountEpoch[], backend: string): Figure {
  const hit = epochs.find((e) => e.testAccuracy === 1);
  return {
    title: `Counting ones with the engine's ${o.cell.toUpperCase()} (hidden ${o.hidden}) → Linear(${o.hidden}, 1)`,
    subtitle: `${o.train}/${o.test} train/test sequences of length ${o.length} · MSE · batch ${o.batchSize} · Adam lr ${o.lr}${o.clip > 0 ? ` · clip ${o.clip}` : ""} · output bias ${o.meanOutputBias ? "mean" : "random"} · seed ${o.seed} · ${backend}`,
    xLabel: "epoch",
    xEnd: o.epochs,
    panels: [
      {
        title: "mean squared error",
        yScale: "log",
        series: [
          { name: "train", values: epochs.map((e) => e.trainLoss) },
          { name: "test", values: epochs.map((e) => e.testLoss), color: "#ff7f0e" },
        ],
      },
      {
        title: "accuracy (round(prediction) = count)",
        legend: "bottom",
        yRange: [0, 1],
        series: [
          { name: "test", values: epochs.map((e) => e.testAccuracy), color: "#2ca02c" },
          { name: "train", values: epochs.map((e) => e.trainAccuracy), color: "#1f77b4" },
        ],
        markers: hit ? [{ x: hit.epoch, label: `100% test at epoch ${hit.epoch}` }] : [],
      },
    ],
  };
}
