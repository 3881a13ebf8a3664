// Subcommands of this role: the RNN chapter's experiments. src/cli.ts wires them.
import type { CommandSpec } from "../command.js";
import { JSON_OPTION } from "../command.js";
import { UsageError } from "../errors.js";
import { emitJson, logger } from "../output.js";
import { RNN_COUNT_DEFAULTS, runRnnCount, runSummary, writeRnnCountPlots } from "./rnn-count.js";
import { COUNT_ONES_DEFAULTS, countOnesFigure, countOnesModel, trainCountOnes, type CountOnesOptions } from "./count-ones.js";
import { createEngine } from "../workers/engine/index.js";
import { BACKEND_CHOICES, type BackendChoice } from "../tfjs.js";
import { renderSvg } from "./plot.js";
import { writeFileAtomic } from "./files.js";
import { join } from "node:path";
import { progress } from "../output.js";

const DEFAULT_OUT = "runs/experiments";

function positive(name: string, v: unknown): number {
  const x = Number(v);
  if (!Number.isFinite(x) || x <= 0) throw new UsageError(`--${name} must be a positive number, got ${String(v)}`);
  return x;
}

const rnnCount: CommandSpec = {
  path: ["experiment", "rnn-count"],
  summary: "scalar linear RNN counting ones: BPTT, exploding gradients, clipping (3 runs, SVG plots)",
  help:
    "Trains s_t = x_t·U + s_{t-1}·W (output s_T, MSE) by backpropagation through time and plain gradient\n" +
    "descent from (U, W) = (-2, 0), in float64:\n" +
    "  run 1 \"10-step\"          (0,0,0,0,1,0,1,0,1,0), target 3 — the loss falls;\n" +
    "  run 2 \"40-step\"          that sequence 4 times (12 ones), target 12 — the gradients explode and the\n" +
    "                           weights become NaN/Inf (reported with its epoch, not as an error);\n" +
    "  run 3 \"40-step-clipped\"  run 2 with (dU, dW) clipped to norm --clip-norm — stays finite.\n" +
    "Writes rnn-count-<run>.svg (loss, |dU|, |dW| per epoch, log scale) to --out. With --json the last stdout\n" +
    "line is {\"runs\": [{\"name\", \"diverged\", \"diverged_epoch\", \"final_loss\", \"U\", \"W\", …}], …}; NaN and\n" +
    "Infinity are written as null there, with their text under \"non_finite\".",
  options: [
    { name: "out", value: "<dir>", type: "string", description: "folder for the SVG plots", default: DEFAULT_OUT },
    { name: "lr", value: "<x>", type: "float", description: "gradient-descent learning rate", default: RNN_COUNT_DEFAULTS.lr },
    { name: "epochs", value: "<n>", type: "int", description: "epochs (one full-sequence step each)", default: RNN_COUNT_DEFAULTS.epochs },
    { name: "clip-norm", value: "<x>", type: "float", description: "max norm of (dU, dW) in run 3", default: RNN_COUNT_DEFAULTS.clipNorm },
    JSON_OPTION,
  ],
  examples: ["npx imdb-train experiment rnn-count --out runs/rnn-count", "npx imdb-train experiment rnn-count --clip-norm 5 --json"],
  async run(opts) {
    const log = logger("rnn-count");
    const o = {
      lr: positive("lr", opts.lr),
      epochs: Math.round(positive("epochs", opts.epochs)),
      clipNorm: positive("clip-norm", opts.clipNorm),
      init: RNN_COUNT_DEFAULTS.init,
    };
    const out = String(opts.out ?? DEFAULT_OUT);
    const runs = runRnnCount(o);
    const plots = await writeRnnCountPlots(runs, o, out);
    const summaries = runs.map(runSummary);
    for (const s of summaries) {
      if (s.diverged) {
        log.info(`${s.name}: diverged at epoch ${s.diverged_epoch} (U=${s.non_finite?.U}, W=${s.non_finite?.W}); last finite (U, W) = (${fmt(s.last_finite.U)}, ${fmt(s.last_finite.W)}) after epoch ${s.last_finite.epoch}`);
      } else {
        log.info(`${s.name}: final loss ${fmt(s.final_loss)}, (U, W) = (${fmt(s.U)}, ${fmt(s.W)})${s.clip_norm !== null ? `, clipped in ${s.clipped_epochs}/${s.epochs_run} epochs` : ""}`);
      }
    }
    log.info(`plots: ${plots.join(", ")}`);
    if (opts.json) emitJson({ experiment: "rnn-count", lr: o.lr, epochs: o.epochs, init: o.init, clip_norm: o.clipNorm, runs: summaries, plots });
  },
};

function fmt(v: number | null): string {
  return v === null ? "null" : Number(v.toPrecision(5)).toString();
}

function positiveInt(name: string, v: unknown): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1) throw new UsageError(`--${name} must be a positive integer, got ${String(v)}`);
  return x;
}

const countOnes: CommandSpec = {
  path: ["experiment", "count-ones"],
  summary: "LSTM or GRU (the IMDB engine's cells) learns to count the ones in binary sequences",
  help:
    "Regression with MSE: a cell with hidden size --hidden reads a binary sequence of length --length (one\n" +
    "input per step) and Linear(hidden, 1) predicts the number of ones; accuracy = round(prediction) == count.\n" +
    "Uses the same hand-written LSTM/GRU forward and backward as IMDB training (dense inputs of width 1), Adam\n" +
    "on the batch-mean gradient, and seeded data, initialisation and shuffles (deterministic for a --seed).\n" +
    "The Linear's bias starts at the mean training count (≈ length/2) unless --output-bias random: from the\n" +
    "random init the LSTM first spends ~2 epochs on a plateau (MSE ≈ 5, the count's variance) while the bias\n" +
    "climbs from 0 to ≈ 10 by about one learning rate per Adam step.\n" +
    "Writes count-ones-<cell>.svg (train/test loss and accuracy per epoch) to --out. With --json the last stdout\n" +
    "line is {\"cell\", \"test_accuracy\": [per epoch], \"train_loss\": [per epoch], …}.",
  options: [
    { name: "cell", value: "<cell>", type: "string", description: "recurrent cell", choices: ["lstm", "gru"], default: "lstm" },
    { name: "train", value: "<n>", type: "int", description: "training sequences", default: COUNT_ONES_DEFAULTS.train },
    { name: "test", value: "<n>", type: "int", description: "test sequences", default: COUNT_ONES_DEFAULTS.test },
    { name: "length", value: "<T>", type: "int", description: "steps per sequence", default: COUNT_ONES_DEFAULTS.length },
    { name: "hidden", value: "<H>", type: "int", description: "hidden size of the cell", default: COUNT_ONES_DEFAULTS.hidden },
    { name: "batch-size", value: "<B>", type: "int", description: "sequences per Adam step", default: COUNT_ONES_DEFAULTS.batchSize },
    { name: "epochs", value: "<n>", type: "int", description: "passes over the training set", default: COUNT_ONES_DEFAULTS.epochs },
    { name: "lr", value: "<x>", type: "float", description: "Adam learning rate", default: COUNT_ONES_DEFAULTS.lr },
    { name: "clip", value: "<x>", type: "float", description: "global-norm clipping of the mean gradient (0 = none)", default: COUNT_ONES_DEFAULTS.clip },
    { name: "seed", value: "<n>", type: "int", description: "seed of data, initialisation and shuffles", default: COUNT_ONES_DEFAULTS.seed },
    { name: "output-bias", value: "<init>", type: "string", description: "start of the Linear's bias: \"mean\" = the mean training count, \"random\" = the engine's PyTorch-like init", choices: ["mean", "random"], default: "mean" },
    { name: "backend", value: "<name>", type: "string", description: "tfjs backend of the engine", choices: BACKEND_CHOICES, default: "auto" },
    { name: "out", value: "<dir>", type: "string", description: "folder for the SVG plot", default: DEFAULT_OUT },
    JSON_OPTION,
  ],
  examples: [
    "npx imdb-train experiment count-ones --cell lstm --out runs/count-ones",
    "npx imdb-train experiment count-ones --cell gru --json",
    "npx imdb-train experiment count-ones --cell lstm --train 2000 --test 200 --epochs 6   # a quick run",
  ],
  async run(opts) {
    const log = logger("count-ones");
    const o: CountOnesOptions = {
      cell: opts.cell === "gru" ? "gru" : "lstm",
      train: positiveInt("train", opts.train),
      test: positiveInt("test", opts.test),
      length: positiveInt("length", opts.length),
      hidden: positiveInt("hidden", opts.hidden),
      batchSize: positiveInt("batch-size", opts.batchSize),
      epochs: positiveInt("epochs", opts.epochs),
      lr: positive("lr", opts.lr),
      clip: Number(opts.clip),
      seed: Number(opts.seed),
      meanOutputBias: opts.outputBias !== "random",
    };
    if (!(o.clip >= 0)) throw new UsageError(`--clip must be 0 (none) or a positive number, got ${String(opts.clip)}`);
    const out = String(opts.out ?? DEFAULT_OUT);
    const engine = await createEngine({ model: countOnesModel(o.cell, o.hidden), input: "dense", inputDim: 1, loss: "mse", backend: String(opts.backend) as BackendChoice });
    log.info(`${o.cell} H=${o.hidden}, ${engine.layout.size} parameters, backend ${engine.backend}; ${o.train} train / ${o.test} test sequences of length ${o.length}`);
    const stepsPerEpoch = Math.ceil(o.train / o.batchSize);
    const t0 = performance.now();
    let bar = progress(`epoch 1/${o.epochs}`, stepsPerEpoch, "steps");
    let recent = 0;
    const result = await trainCountOnes(engine, o, {
      onStep: (step, loss) => {
        recent = recent === 0 ? loss : 0.98 * recent + 0.02 * loss;
        bar.tick(1, `loss ${recent.toFixed(4)}`);
      },
      onEpoch: (e) => {
        bar.done();
        log.info(`epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(5)}, train acc ${(100 * e.trainAccuracy).toFixed(2)}%, test loss ${e.testLoss.toFixed(5)}, test acc ${(100 * e.testAccuracy).toFixed(2)}% (${e.seconds.toFixed(1)} s)`);
        if (e.epoch < o.epochs) bar = progress(`epoch ${e.epoch + 1}/${o.epochs}`, stepsPerEpoch, "steps");
      },
    });
    engine.dispose();
    const seconds = (performance.now() - t0) / 1000;
    const plot = join(out, `count-ones-${o.cell}.svg`);
    await writeFileAtomic(plot, renderSvg(countOnesFigure(o, result.epochs, engine.backend)));
    const first = result.epochs.find((e) => e.testAccuracy === 1)?.epoch ?? null;
    log.info(first !== null ? `100% test accuracy first at epoch ${first}` : `test accuracy never reached 100%`);
    log.info(`plot: ${plot}`);
    if (opts.json) {
      emitJson({
        experiment: "count-ones",
        cell: o.cell,
        test_accuracy: result.epochs.map((e) => e.testAccuracy),
        train_loss: result.epochs.map((e) => e.trainLoss),
        test_loss: result.epochs.map((e) => e.testLoss),
        train_accuracy: result.epochs.map((e) => e.trainAccuracy),
        first_epoch_100: first,
        epoch_seconds: result.epochs.map((e) => e.seconds),
        seconds,
        backend: engine.backend,
        parameters: engine.layout.size,
        layout_hash: engine.layout.hash,
        settings: { train: o.train, test: o.test, length: o.length, hidden: o.hidden, batch_size: o.batchSize, epochs: o.epochs, lr: o.lr, clip: o.clip, seed: o.seed, output_bias: o.meanOutputBias ? "mean" : "random" },
        plot,
      });
    }
  },
};

export const commands: CommandSpec[] = [rnnCount, countOnes];
