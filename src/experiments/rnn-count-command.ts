// `experiment rnn-count`: the command around src/experiments/rnn-count.ts.
import { JSON_OPTION, defineCommand } from "../command.js";
import { emitJson, logger } from "../output.js";
import { DEFAULT_OUT } from "./options.js";
import { RNN_COUNT_DEFAULTS, runRnnCount, runSummary, writeRnnCountPlots } from "./rnn-count.js";

export const rnnCount = defineCommand({
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
    { name: "lr", value: "<x>", type: "float", description: "gradient-descent learning rate", default: RNN_COUNT_DEFAULTS.lr, above: 0 },
    { name: "epochs", value: "<n>", type: "int", description: "epochs (one full-sequence step each)", default: RNN_COUNT_DEFAULTS.epochs, min: 1 },
    { name: "clip-norm", value: "<x>", type: "float", description: "max norm of (dU, dW) in run 3", default: RNN_COUNT_DEFAULTS.clipNorm, above: 0 },
    JSON_OPTION,
  ],
  examples: ["npx imdb-train experiment rnn-count --out runs/rnn-count", "npx imdb-train experiment rnn-count --clip-norm 5 --json"],
  async run(opts) {
    const log = logger("rnn-count");
    const o = {
      lr: opts.lr,
      epochs: opts.epochs,
      clipNorm: opts.clipNorm,
      init: RNN_COUNT_DEFAULTS.init,
    };
    const out = opts.out;
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
});

function fmt(v: number | null): string {
  return v === null ? "null" : Number(v.toPrecision(5)).toString();
}
