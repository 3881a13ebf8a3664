// `experiment count-ones`: the command around src/experiments/count-ones.ts (engine, progress, plot, JSON).
import { join } from "node:path";
import { JSON_OPTION, defineCommand } from "../command.js";
import { emitJson, logger, progress } from "../output.js";
import { BACKEND_CHOICES } from "../backend-choice.js";
import { COUNT_ONES_DEFAULTS, countOnesFigure, countOnesModel, trainCountOnes, type CountOnesOptions } from "./count-ones.js";
import { writeFileAtomic } from "./files.js";
import { DEFAULT_OUT } from "./options.js";
import { renderSvg } from "./plot.js";

export const countOnes = defineCommand({
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
    { name: "train", value: "<n>", type: "int", description: "training sequences", default: COUNT_ONES_DEFAULTS.train, min: 1 },
    { name: "test", value: "<n>", type: "int", description: "test sequences", default: COUNT_ONES_DEFAULTS.test, min: 1 },
    { name: "length", value: "<T>", type: "int", description: "steps per sequence", default: COUNT_ONES_DEFAULTS.length, min: 1 },
    { name: "hidden", value: "<H>", type: "int", description: "hidden size of the cell", default: COUNT_ONES_DEFAULTS.hidden, min: 1 },
    { name: "batch-size", value: "<B>", type: "int", description: "sequences per Adam step", default: COUNT_ONES_DEFAULTS.batchSize, min: 1 },
    { name: "epochs", value: "<n>", type: "int", description: "passes over the training set", default: COUNT_ONES_DEFAULTS.epochs, min: 1 },
    { name: "lr", value: "<x>", type: "float", description: "Adam learning rate", default: COUNT_ONES_DEFAULTS.lr, above: 0 },
    { name: "clip", value: "<x>", type: "float", description: "global-norm clipping of the mean gradient (0 = none)", default: COUNT_ONES_DEFAULTS.clip, min: 0 },
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
      cell: opts.cell, train: opts.train, test: opts.test, length: opts.length, hidden: opts.hidden,
      batchSize: opts.batchSize, epochs: opts.epochs, lr: opts.lr, clip: opts.clip, seed: opts.seed,
      meanOutputBias: opts.outputBias !== "random",
    };
    const out = opts.out;
    const { createEngine } = await import("../engine/index.js");
    const engine = await createEngine({ model: countOnesModel(o.cell, o.hidden), input: "dense", inputDim: 1, loss: "mse", backend: opts.backend });
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
});
