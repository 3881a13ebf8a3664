// One training step, as the coordinator runs it:
//
//   1. round      deal the step's batches to the live workers, fold each gradient into the sum as it arrives
//                 (in task order, rounding to float32 after each add as a worker's accumulator does, so
//                 2 workers × b batches == 1 worker × 2b bit for bit)                                ./rounds.ts
//   2. norm       ‖sum / samples‖ in one pass; a NaN/Inf makes it non-finite, and only then are the parts
//                 searched for the culprit (skipped, counted) and the sum rebuilt without it
//                 (sharded: every shard sums the same tasks in the same order; the norm is the root of all
//                 slices' parts)
//   3. clip       torch's clip_grad_norm_ factor of that norm
//   4. Adam       over the mean · clip factor, one chunk at a time into the other parameter buffer; each
//                 finished chunk goes out to every ready worker (Params) while the next one is computed,
//                 so the next Assign carries no parameters                              src/optim/step.ts
import { logger } from "../output.js";
import type { Telemetry } from "../telemetry.js";
import { clipCoefficient, type Adam } from "../optim/adam.js";
import type { StepArithmetic } from "../optim/step.js";
import { Kind, WireError, workerName } from "../protocol/wire.js";
import type { ShardLinks } from "./shards.js";
import type { Peers } from "./peers.js";
import type { Rounds } from "./rounds.js";
import { tally, type Round } from "./round.js";

const log = logger("coordinator");

export interface StepOutcome { lossSum: number; correct: number; count: number; tokens: number; seconds: number; norm: number }

export interface StepContext {
  peers: Peers;
  rounds: Rounds;
  arith: StepArithmetic;
  adam: Adam;
  tel: Telemetry;
  clip: number;
  paramChunk?: number;
  /** Row pull: Adam runs in phases (the dense part now, rows as tasks need them, the rest after the sends);
   *  nothing is broadcast. */
  rowPull: boolean;
  /** The shard processes of a sharded coordinator, and the header they expect. */
  shards: ShardLinks | null;
  shardHead(): { runId: number; layoutHash: string; version: number };
  phases: { reduce: number; optimizer: number; broadcast: number };
}

/** The tasks in the sum and who computed each, in task order (what each shard sums). */
function inSumIds(r: Round): { tasks: number[]; peers: string[] } {
  const parts = r.tasks.filter((x) => x.done && !x.skipped && x.grads);
  return { tasks: parts.map((x) => x.id), peers: parts.map((x) => x.peer) };
}

/**
 * The squared norm of the mean over the tasks still in the sum, after refusing every part with a NaN/Inf (here
 * or in a shard's slice) and, when finite parts overflowed the float32 sum, the parts of absurd size; when no
 * part is to blame for a non-finite sum, every part is refused and the step skipped (parameters and Adam
 * untouched, its batches dealt again). The tally is of the tasks that remain.
 */
async function normOfMean(c: StepContext, r: Round): Promise<{ sumsq: number; t: ReturnType<typeof tally>; overflow: boolean }> {
  c.rounds.foldArrived(r);
  let overflow = false;
  for (;;) {
    const t = tally(r);
    const remote = c.shards && t.count > 0
      ? c.shards.reduce(c.shardHead(), { step: r.step, ...inSumIds(r), count: t.count })
      : null;
    let sumsq = t.count > 0 ? c.arith.sumsq(1 / t.count) : 0;
    let again = !Number.isFinite(sumsq) && (c.rounds.refuseNonFinite(r) || c.rounds.refuseAbsurd(r));
    const rs = await remote;
    if (rs) {
      sumsq += rs.sumsq.reduce((a, b) => a + b, 0);
      for (const id of rs.bad) {
        const task = r.tasks.find((x) => x.id === id);
        if (!task || task.skipped) continue;
        again = true;
        c.rounds.refuse(task, new WireError("nan", `gradient from worker ${workerName(task.peer)} (task ${id}) has a non-finite value in a coordinator shard's slice, or the slice never arrived: contribution skipped`));
      }
    }
    if (!again && !Number.isFinite(sumsq) && t.count > 0) {
      c.rounds.refuseAll(r, `step ${r.step}: the sum of the gradients is not finite and no single part is to blame: step skipped, its batches dealt again`);
      c.tel.skippedStep("overflow");
      again = overflow = true;
    }
    if (!again) return { sumsq, t, overflow };
    c.rounds.refold(r);
  }
}

/** Adam over the mean · `coef` into the next parameter version, each chunk broadcast as soon as it is done. */
async function applyAndBroadcast(c: StepContext, at: { step: number; version: number }, count: number, coef: number): Promise<number> {
  const peers = new Set(c.peers.members.live().map((m) => m.id));
  let sendMs = 0;
  for (const chunk of c.arith.update(1 / count, coef, c.paramChunk)) {
    if (!peers.size) continue;
    const ts = performance.now();
    const part = chunk.params.subarray(chunk.start, chunk.end);
    await Promise.all([...peers].map(async (p) => {
      if (!(await c.peers.send(p, Kind.Params, { offset: chunk.start }, part, at))) peers.delete(p);
    }));
    sendMs += performance.now() - ts;
  }
  for (const p of peers) c.peers.hasParams.set(p, at.version);
  return sendMs;
}

/**
 * Steps 2–4 over a finished train round `r`: returns what the step summed and its norm; `version` is the
 * parameter version the step makes. No usable gradient (every part skipped): the parameters stay as they are.
 */
export async function applyStep(c: StepContext, r: Round, version: number): Promise<Omit<StepOutcome, "seconds">> {
  const tWait = performance.now();
  const { sumsq, t, overflow } = await normOfMean(c, r);
  if (t.count === 0) {
    c.arith.discardAhead(); // the step is not taken: rows done ahead for it are put back
    const skipped = r.tasks.some((x) => x.skipped);
    if (!overflow && r.tasks.some((x) => x.refused)) c.tel.skippedStep("refused");
    // a step whose batches hold no samples (a pretraining task can draw none from very short reviews) is no fault
    if (skipped || overflow) log.warn(`step ${r.step}: no usable gradient (all contributions skipped); parameters and Adam unchanged`);
    else log.info(`step ${r.step}: its batches hold no samples of this task; parameters and Adam unchanged`);
    if (c.shards) await c.shards.apply(c.shardHead(), { step: r.step, version, scale: 0, coef: 1, lr: 0, skip: true });
    return { ...t, norm: 0 };
  }
  const tReduce = performance.now();
  const norm = Math.sqrt(sumsq);
  const coef = clipCoefficient(norm, c.clip);
  c.tel.gradNorm(norm, coef !== 1);
  if (c.shards) await c.shards.apply(c.shardHead(), { step: r.step, version, scale: 1 / t.count, coef, lr: c.adam.o.lr });
  if (c.rowPull) c.arith.begin(1 / t.count, coef);
  const sendMs = c.rowPull ? 0 : await applyAndBroadcast(c, { step: r.step, version }, t.count, coef);
  const tOpt = performance.now();
  const reduceS = (tReduce - tWait) / 1000, optS = (tOpt - tReduce - sendMs) / 1000, sendS = sendMs / 1000;
  c.phases.reduce += reduceS; c.phases.optimizer += optS; c.phases.broadcast += sendS;
  c.tel.phase("reduce", reduceS);
  c.tel.phase("optimizer", optS);
  c.tel.phase("broadcast", sendS);
  return { ...t, norm };
}
