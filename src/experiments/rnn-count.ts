// `experiment rnn-count`: the chapter's three runs of the scalar RNN (src/experiments/scalar-rnn.ts).
//   run 1  "10-step"          (0,0,0,0,1,0,1,0,1,0), target 3: the loss falls
//   run 2  "40-step"          the same 10 steps repeated 4 times (12 ones), target 12: gradients explode
//   run 3  "40-step-clipped"  run 2 with the gradient (dU, dW) clipped to norm `clipNorm`: stays finite
import { join } from "node:path";
import { trainScalarRnn, type ScalarRnnParams, type TrainResult } from "./scalar-rnn.js";
import { renderSvg, type Figure } from "./plot.js";
import { writeFileAtomic } from "./files.js";

/** The chapter's 10-step sequence (3 ones). */
export const SEQUENCE_10 = [0, 0, 0, 0, 1, 0, 1, 0, 1, 0] as const;
/** The 40-step sequence: SEQUENCE_10 four times over, so 12 ones at steps 4, 6, 8, 14, 16, 18, … (0-based). */
export const SEQUENCE_40 = [...SEQUENCE_10, ...SEQUENCE_10, ...SEQUENCE_10, ...SEQUENCE_10] as const;

export const RNN_COUNT_DEFAULTS = {
  init: { U: -2, W: 0 } as ScalarRnnParams, // the chapter's starting point
  lr: 0.0005, //                                plain gradient descent step
  epochs: 150,
  /** Max norm of (dU, dW) in run 3. With lr 0.0005 a clipped step moves (U, W) by at most 0.01; at 20 the
   *  run reaches loss ≈ 0.11 in 150 epochs (10 is too timid: loss ≈ 80; the unclipped run reaches 1e5). */
  clipNorm: 20,
};

export interface RnnCountRunSpec {
  name: string;
  sequence: readonly number[];
  target: number;
  clipNorm?: number;
}

export function rnnCountRuns(clipNorm: number = RNN_COUNT_DEFAULTS.clipNorm): RnnCountRunSpec[] {
  return [
    { name: "10-step", sequence: SEQUENCE_10, target: 3 },
    { name: "40-step", sequence: SEQUENCE_40, target: 12 },
    { name: "40-step-clipped", sequence: SEQUENCE_40, target: 12, clipNorm },
  ];
}

export interface RnnCountOptions {
  lr: number;
  epochs: number;
  clipNorm: number;
  init: ScalarRnnParams;
}

export interface RnnCountRun {
  spec: RnnCountRunSpec;
  result: TrainResult;
}

export function runRnnCount(o: RnnCountOptions): RnnCountRun[] {
  return rnnCountRuns(o.clipNorm).map((spec) => ({
    spec,
    result: trainScalarRnn(spec.sequence, spec.target, o.init, { lr: o.lr, epochs: o.epochs, clipNorm: spec.clipNorm }),
  }));
}

/** Loss, |dU| and |dW| per epoch on log axes, with the divergence epoch marked. */
export function rnnCountFigure(run: RnnCountRun, o: RnnCountOptions): Figure {
  const h = run.result.history;
  const markers = run.result.divergedEpoch !== null ? [{ x: run.result.divergedEpoch, label: `NaN/Inf at epoch ${run.result.divergedEpoch}` }] : [];
  const clip = run.spec.clipNorm !== undefined ? `; (dU, dW) clipped to norm ${run.spec.clipNorm} (plots show unclipped values)` : "; no clipping";
  return {
    title: `Scalar RNN "${run.spec.name}": ${run.spec.sequence.length} steps, target ${run.spec.target}`,
    subtitle: `gradient descent, lr ${o.lr}, start (U, W) = (${o.init.U}, ${o.init.W})${clip}`,
    xLabel: "epoch",
    xEnd: o.epochs,
    panels: [
      { title: "loss (MSE of the last state)", yScale: "log", series: [{ name: "loss", values: h.map((e) => e.loss) }], markers },
      { title: "|∂loss/∂U|", yScale: "log", series: [{ name: "|dU|", values: h.map((e) => Math.abs(e.dU)), color: "#d62728" }], markers },
      { title: "|∂loss/∂W|", yScale: "log", series: [{ name: "|dW|", values: h.map((e) => Math.abs(e.dW)), color: "#2ca02c" }], markers },
    ],
  };
}

/** Writes one SVG per run into `outDir`; returns the paths. */
export async function writeRnnCountPlots(runs: RnnCountRun[], o: RnnCountOptions, outDir: string): Promise<string[]> {
  const paths: string[] = [];
  for (const run of runs) {
    const path = join(outDir, `rnn-count-${run.spec.name}.svg`);
    await writeFileAtomic(path, renderSvg(rnnCountFigure(run, o)));
    paths.push(path);
  }
  return paths;
}

/** A number for JSON: finite numbers as they are, NaN/±Infinity as null (see `non_finite`). */
function num(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** The `--json` summary of one run. */
export function runSummary(run: RnnCountRun) {
  const r = run.result;
  const last = r.history[r.history.length - 1];
  return {
    name: run.spec.name,
    diverged: r.diverged,
    diverged_epoch: r.divergedEpoch,
    final_loss: num(r.finalLoss),
    U: num(r.final.U),
    W: num(r.final.W),
    steps: run.spec.sequence.length,
    target: run.spec.target,
    clip_norm: run.spec.clipNorm ?? null,
    epochs_run: r.history.length,
    min_loss: num(Math.min(...r.history.map((e) => e.loss))),
    clipped_epochs: r.history.filter((e) => e.clipped).length,
    max_grad_norm: num(Math.max(...r.history.map((e) => e.gradNorm))),
    last_finite: r.lastFinite,
    /** The actual values where the JSON numbers above are null. */
    non_finite: r.diverged ? { final_loss: String(r.finalLoss), U: String(r.final.U), W: String(r.final.W), last_grads: last ? { dU: String(last.dU), dW: String(last.dW) } : null } : null,
  };
}
