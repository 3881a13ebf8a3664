// A round's data: one step's (or one evaluation's) tasks, each a piece of work for one worker, and what the
// finished ones add up to. ./rounds.ts deals and collects them.
import type { GradPart } from "../optim/step.js";

export type RoundKind = "train" | "eval";

/** One piece of work handed to one worker within a round. */
export interface Task {
  id: number;
  peer: string;
  batches: number[];
  done: boolean;
  grads?: GradPart;
  lossSum: number;
  correct: number;
  count: number;
  tokens: number;
  skipped: boolean;
  /** Skipped because its gradient was refused (NaN/Inf, absurdly large, or not what was assigned): its
   *  batches go back to the sampler, to be dealt again in a later step. */
  refused: boolean;
  /** When it was sent and when it is due (the coordinator's clock: no member's state can move it). */
  sentAt: number;
  dueAt: number;
  /** Samples in its batches, as the coordinator counts them (null: the dataset is not known here). */
  assigned: number | null;
  /** Sample ids the worker reports having used (exactly-once accounting). */
  ids?: number[];
  /** The buffer its parameters went out in (row pull): reused once the worker has answered (it had them all). */
  lease?: Float32Array;
  /** Wall-clock ms (sub-millisecond, `wallClock()`): when the task was handed to ZeroMQ, and when its gradient
   *  was taken in (what `--timeline` records). */
  queuedClock?: number;
  gradientClock?: number;
  /** When its worker's Started came in (wall-clock ms, as above); absent: none has. */
  startedClock?: number;
}

export interface Round {
  kind: RoundKind;
  step: number;
  version: number;
  split: "train" | "val";
  epoch: number;
  params: Float32Array;
  tasks: Task[];
  /** Train rounds: tasks [0, folded) are in the sum (folded in task order as their gradients arrive). */
  folded: number;
  /** Batches of lost tasks waiting for a worker (when none was ready to take them). */
  orphans: number[][];
  /** True while its first tasks are being sent (it cannot be finished before they all exist). */
  dealing: boolean;
  orphanTimer?: NodeJS.Timeout;
  /** The coordinator's work off the critical path, until it runs (./rounds.ts). */
  offPath?: () => void;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Loss, accuracy and sample totals of the finished tasks that count (in the sum, for a train round). */
export function tally(r: Round): { lossSum: number; correct: number; count: number; tokens: number } {
  let lossSum = 0, correct = 0, count = 0, tokens = 0;
  for (const t of r.tasks) {
    if (!t.done || t.skipped || (r.kind === "train" && !t.grads)) continue;
    lossSum += t.lossSum; correct += t.correct; count += t.count; tokens += t.tokens;
  }
  return { lossSum, correct, count, tokens };
}

/** Batches given back to the sampler: the tasks refused in a finished train round. */
export function refusedBatches(r: Round): number[] {
  return r.tasks.filter((t) => t.refused).flatMap((t) => t.batches);
}
