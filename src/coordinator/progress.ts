// Plain progress lines of a training run, for logs where no bar is drawn (`train` piped or in a container,
// the `coordinator` role on its own): the run's position, the epoch's, and the time left in both.
// Time left = steps left × a moving average of the wall time between steps, plus the epoch ends still to come
// (validation pass and checkpoint), each timed as the gap between an epoch's last step and the next one's
// first, less one step. Until the first epoch end is timed, the run's time left says "+ validation".
import { MovingAverage, fmtSecs } from "../output.js";
import type { CoordinatorEvent } from "./types.js";

export type StepEvent = Extract<CoordinatorEvent, { type: "step" }>;

/** Lines at least this far apart (s), unless a step is one of the first three or ends an epoch. */
const MIN_GAP_S = 5;
/** A line at least this often (s) while steps arrive, however slow they are. */
const MAX_GAP_S = 30;
/** Otherwise one line every this many steps. */
const EVERY_STEPS = 10;

export interface TimeLeft {
  /** Seconds left in the current epoch (its validation included); NaN until a step has been timed. */
  epoch: number;
  /** Seconds left in the run. */
  run: number;
  /** False until an epoch end (validation + checkpoint) has been timed: `epoch` and `run` leave it out. */
  epochEndTimed: boolean;
}

export class RunClock {
  private readonly stepSeconds = new MovingAverage(50);
  private readonly epochEndSeconds = new MovingAverage(5);
  private lastAt = NaN;
  private lastEpoch = -1;
  private lineAt = -Infinity;
  private lineStep = 0;
  private seen = 0;
  private firstAt = NaN;
  private samples = 0;

  /** `epochs`: the run's epoch count; `now`: a clock in seconds (tests pass their own). */
  constructor(readonly epochs: number, private readonly now: () => number = () => performance.now() / 1000) {}

  /** Records a step event; returns the time left after it. */
  step(e: StepEvent): TimeLeft {
    const t = this.now();
    if (Number.isFinite(this.firstAt)) this.samples += e.samples;
    else this.firstAt = t;
    if (Number.isFinite(this.lastAt)) {
      const gap = t - this.lastAt;
      if (e.epoch === this.lastEpoch) this.stepSeconds.add(gap);
      // (events may arrive in a burst, making the gap shorter than a step: then the epoch end took no time to see)
      else if (e.epoch === this.lastEpoch + 1 && this.stepSeconds.count > 0) this.epochEndSeconds.add(Math.max(0, gap - this.stepSeconds.value));
    }
    this.lastAt = t;
    this.lastEpoch = e.epoch;
    return this.left(e);
  }

  /** Time left after step event `e` (the last one recorded). */
  left(e: StepEvent): TimeLeft {
    const perStep = this.stepSeconds.value;
    const timed = this.epochEndSeconds.count > 0;
    const end = timed ? this.epochEndSeconds.value : 0;
    const epoch = Math.max(0, e.stepsInEpoch - e.stepInEpoch) * perStep + end;
    const after = Math.max(0, this.epochs - e.epoch - 1);
    return { epoch, run: epoch + after * (e.stepsInEpoch * perStep + end), epochEndTimed: timed };
  }

  /** Whether step `e` deserves a log line: the first three seen, an epoch's last, else every 10 steps or 30 s (≥ 5 s apart). */
  due(e: StepEvent): boolean {
    const t = this.now();
    const since = t - this.lineAt;
    const yes = ++this.seen <= 3 || e.stepInEpoch >= e.stepsInEpoch ||
      since >= MAX_GAP_S || (since >= MIN_GAP_S && e.step - this.lineStep >= EVERY_STEPS);
    if (yes) { this.lineAt = t; this.lineStep = e.step; }
    return yes;
  }

  /** Reviews per second in the steps applied since the first one this clock saw. */
  samplesPerS(): number {
    const s = this.lastAt - this.firstAt;
    return s > 0 ? this.samples / s : NaN;
  }

  /** The log line of step `e`, e.g. `step 910/1760 · epoch 2/5, step 30/352 · loss 0.412 acc 81.2% · 95.1 samples/s, 0.67 s/step · left: epoch 3m12s, run 12m40s`. */
  line(e: StepEvent): string {
    const rate = this.samplesPerS();
    const total = e.stepsInEpoch * this.epochs;
    const parts = [
      `step ${e.step}/${total}`,
      `epoch ${e.epoch + 1}/${this.epochs}, step ${e.stepInEpoch}/${e.stepsInEpoch}`,
      `loss ${fixed(e.loss, 3)} acc ${fixed(e.accuracy, 1, 100)}%`,
      `${Number.isFinite(rate) ? `${rate.toFixed(1)} samples/s, ` : ""}${e.seconds.toFixed(2)} s/step`,
      `left: ${formatLeft(this.left(e))}`,
    ];
    return parts.join(" · ");
  }
}

/** x·k with `digits` decimals, or "–" when it is no number: a step without samples has no loss (NaN, which
 *  arrives as null when the event crossed a process boundary as JSON). */
export function fixed(x: number | null | undefined, digits: number, k = 1): string {
  return typeof x === "number" && Number.isFinite(x) ? (x * k).toFixed(digits) : "–";
}

export function formatLeft(l: TimeLeft): string {
  if (!Number.isFinite(l.run)) return "timing the first steps";
  return `epoch ${fmtSecs(l.epoch)}, run ${fmtSecs(l.run)}${l.epochEndTimed ? "" : " + validation"}`;
}
