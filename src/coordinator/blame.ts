// Whom to blame when a step's sum is not finite: the parts with a NaN/Inf value; else, when finite parts
// overflowed the float32 sum, the parts whose norm per sample no gradient of this model reaches. Pure: ./rounds.ts
// refuses what these find.
import type { GradPart } from "../optim/step.js";
import { halfTable } from "../protocol/gradcodec.js";
import { WireError, nonFiniteGradient, workerName } from "../protocol/wire.js";
import type { Round, Task } from "./round.js";

/** A mean gradient with a norm above this per sample is no gradient of this model: refused as absurd when
 *  the sum overflows (float32 needs ~1e38 to overflow; real gradients stay within ~1e3). */
const ABSURD_NORM_PER_SAMPLE = 1e15;

/** Σ x² of a part as it arrived (half floats decoded with their scale), in double. */
function partSumsq(p: GradPart): number {
  let s = 0;
  if (p.values instanceof Uint16Array) {
    const t = halfTable();
    for (let i = 0; i < p.values.length; i++) { const x = t[p.values[i]!]! * p.scale; s += x * x; }
  } else {
    for (let i = 0; i < p.values.length; i++) { const x = p.values[i]!; s += x * x; }
  }
  return s;
}

/** The tasks whose gradients are in the round's sum. */
export function inSum(r: Round): Task[] {
  return r.tasks.filter((t) => t.done && !t.skipped && t.grads);
}

/** The parts of the sum with a NaN/Inf value, each with the reason to refuse it. */
export function nonFiniteParts(r: Round): { task: Task; why: WireError }[] {
  const out: { task: Task; why: WireError }[] = [];
  for (const task of inSum(r)) {
    const why = nonFiniteGradient(task.grads!.values, `worker ${workerName(task.peer)}`);
    if (why) out.push({ task, why });
  }
  return out;
}

/** The finite parts of an overflowed sum whose norm per sample no gradient of this model reaches. */
export function absurdParts(r: Round): { task: Task; why: WireError }[] {
  const out: { task: Task; why: WireError }[] = [];
  for (const task of inSum(r)) {
    const norm = Math.sqrt(partSumsq(task.grads!)) / Math.max(1, task.count);
    if (norm > ABSURD_NORM_PER_SAMPLE) out.push({ task, why: new WireError("nan", `gradient from worker ${workerName(task.peer)} (task ${task.id}) has a norm of ${norm.toExponential(2)} per sample, far beyond any gradient of this model: contribution skipped`) });
  }
  return out;
}
