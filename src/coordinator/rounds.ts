// Rounds: one step's (or one evaluation's) batches dealt to the live workers as tasks, and their results
// collected. A train round folds every gradient into the sum as soon as it and all tasks before it have
// arrived (task order: float addition is not associative). A task whose worker leaves or is evicted goes
// to the least-loaded live worker once; with none left, its batches wait for one to join (elastic).
import { AbortedError, TrainingError } from "../errors.js";
import { logger } from "../output.js";
import type { Telemetry } from "../telemetry.js";
import type { StepArithmetic, GradPart } from "../optim/step.js";
import type { SparseBlock } from "../protocol/gradcodec.js";
import { Kind, WireError, checkGradient, nonFiniteGradient, type Message } from "../protocol/wire.js";
import { readBody } from "../protocol/bodies.js";
import type { Peers } from "./peers.js";

const log = logger("coordinator");

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
  /** Sample ids the worker reports having used (exactly-once accounting). */
  ids?: number[];
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
  orphanTimer?: NodeJS.Timeout;
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

export interface RoundsOptions {
  peers: Peers;
  arith: StepArithmetic;
  tel: Telemetry;
  layoutHash: string;
  runId: number;
  /** The embedding block, when gradients may carry only its touched rows. */
  sparse: SparseBlock | null;
  /** Workers' parameters come from a sharded coordinator (never inline). */
  sharded: boolean;
  workers: number;
  batchesPerStep?: number;
  stepTimeoutS?: number;
  joinTimeoutS: number;
  signal?: AbortSignal;
  /** Seconds spent sending tasks and waiting for results, over the run (train rounds). */
  phases: { broadcast: number; wait: number };
}

export class Rounds {
  /** The round in progress, and the last one finished. */
  current: Round | null = null;
  last: Round | null = null;
  /** Payload bytes of the gradients summed (float32 or half, dense or rows, with the row ids). */
  gradientBytes = 0;
  private nextTask = 1;
  private slowestPerBatchMs = 0;

  constructor(private readonly o: RoundsOptions) {}

  /** Hand out `batches`, wait for every task (re-dealing those of departed workers), return the round. */
  async run(kind: RoundKind, split: Round["split"], at: { step: number; version: number; epoch: number }, batches: number[], deal: (b: number[], n: number) => number[][]): Promise<Round> {
    const live = this.o.peers.members.live();
    const round: Round = {
      kind, split, step: at.step, version: at.version, epoch: at.epoch, params: this.o.arith.params, tasks: [], folded: 0, orphans: [],
      resolve: () => {}, reject: () => {},
    };
    const done = new Promise<void>((resolve, reject) => { round.resolve = resolve; round.reject = reject; });
    this.current = round;
    if (kind === "train") this.o.arith.reset();
    const tSend = performance.now();
    await Promise.all(deal(batches, live.length).map((part, i) => (part.length ? this.sendTask(round, live[i]!.id, part) : null)));
    if (kind === "train") this.phase("broadcast", (performance.now() - tSend) / 1000);
    const tWait = performance.now();
    this.maybeFinish(round);
    const onAbort = () => round.reject(new AbortedError());
    this.o.signal?.addEventListener("abort", onAbort, { once: true });
    if (this.o.signal?.aborted) onAbort(); // aborted before the listener was in place
    try {
      await done;
    } finally {
      this.o.signal?.removeEventListener("abort", onAbort);
      if (round.orphanTimer) clearTimeout(round.orphanTimer);
      this.current = null;
    }
    this.last = round;
    if (kind === "train") this.phase("wait", (performance.now() - tWait) / 1000);
    return round;
  }

  private phase(p: "broadcast" | "wait", s: number): void {
    this.o.phases[p] += s;
    this.o.tel.phase(p, s);
  }

  /** Deadline of a task of `batches` batches: --step-timeout per step's worth of batches, or automatic
   *  (max(120 s, 5 × the slowest seconds per batch seen so far × batches)). */
  deadlineMs(batches: number): number {
    const s = this.o.stepTimeoutS ?? 0;
    const perWorker = Math.max(1, Math.ceil((this.o.batchesPerStep ?? this.o.workers) / Math.max(1, this.o.workers)));
    if (s > 0) return s * 1000 * Math.max(1, batches / perWorker);
    return Math.max(120_000, 5 * this.slowestPerBatchMs * batches);
  }

  private async sendTask(round: Round, peer: string, batches: number[]): Promise<void> {
    const task: Task = { id: this.nextTask++, peer, batches, done: false, lossSum: 0, correct: 0, count: 0, tokens: 0, skipped: false };
    round.tasks.push(task);
    this.o.peers.members.assign(peer, Date.now() + this.deadlineMs(batches.length));
    // parameters inline only for a worker that has not received this version in Params chunks
    const inline = this.o.sharded || this.o.peers.hasParams.get(peer) === round.version ? undefined : round.params;
    const body = { task: task.id, epoch: round.epoch, split: round.split, batches };
    const at = { step: round.step, version: round.version };
    if (round.kind === "train") await this.o.peers.send(peer, Kind.Assign, body, inline, at);
    else await this.o.peers.send(peer, Kind.Eval, body, inline, at);
  }

  /** A member left or was evicted: its open tasks go to the least-loaded live worker, or wait for one. */
  reassign(id: string, why: string): void {
    const round = this.current;
    if (!round) return;
    const lost = round.tasks.filter((t) => t.peer === id && !t.done);
    if (!lost.length) return;
    for (const t of lost) { t.done = true; t.skipped = true; }
    const others = this.o.peers.members.live();
    if (!others.length) {
      round.orphans.push(...lost.map((t) => t.batches));
      const waitS = this.o.joinTimeoutS;
      log.warn(`step ${round.step}: no ready workers; waiting up to ${waitS} s for one to join`);
      round.orphanTimer ??= setTimeout(() => round.reject(new TrainingError(`no live workers left after ${why}, and none joined within ${waitS} s`)), waitS * 1000);
      return;
    }
    for (const t of lost) {
      const load = (p: string) => round.tasks.filter((x) => x.peer === p && !x.done).length;
      const target = others.slice().sort((a, b) => load(a.id) - load(b.id))[0]!;
      log.info(`step ${round.step}: batches [${t.batches.join(", ")}] of ${id} reassigned to ${target.id}`);
      void this.sendTask(round, target.id, t.batches);
    }
  }

  /** A worker became ready: batches waiting for one go to it. */
  adopt(peer: string): void {
    const r = this.current;
    if (!r || !r.orphans.length) return;
    if (r.orphanTimer) clearTimeout(r.orphanTimer);
    r.orphanTimer = undefined;
    const orphans = r.orphans.splice(0);
    log.info(`step ${r.step}: batches [${orphans.flat().join(", ")}] handed to ${peer}`);
    for (const b of orphans) void this.sendTask(r, peer, b);
  }

  // ---- results --------------------------------------------------------------------------------------------

  gradient(peer: string, m: Message, now: number): void {
    const r = this.current;
    const from = `worker ${peer}`;
    const body = readBody(m, Kind.Gradient, from);
    const want = { runId: this.o.runId, step: r?.step ?? -1, paramVersion: r?.version ?? -1, layoutHash: this.o.layoutHash, size: this.o.arith.size, sparse: this.o.sparse };
    const bad = checkGradient(m, want, from, { finite: false, gradScale: body.gradScale }); // NaN/Inf: found at the reduce
    if (bad && bad.reason !== "nan") return this.o.peers.reject(peer, bad, m.header.step);
    const task = r && r.kind === "train" ? this.openTask(peer, body.task) : null;
    if (!task) return this.o.peers.reject(peer, new WireError("stale", `gradient from worker ${peer} for task ${body.task} of step ${m.header.step} matches no open task`), m.header.step);
    this.o.peers.members.done(peer, now);
    task.done = true;
    if (bad) {
      // NaN/Inf: skip this contribution for the step, count it, keep the worker
      task.skipped = true;
      this.o.peers.reject(peer, bad, m.header.step);
    } else {
      this.gradientBytes += (m.half ?? m.payload).byteLength + (m.rows?.byteLength ?? 0);
      task.grads = { values: m.half ?? m.payload, scale: m.half ? 1 / (body.gradScale ?? 1) : 1, rows: m.rows };
      task.lossSum = body.lossSum ?? 0; task.correct = body.correct ?? 0; task.count = body.count ?? 0;
      task.tokens = body.tokens ?? 0;
      if (body.ids) task.ids = body.ids;
      if (body.seconds !== undefined) {
        this.o.tel.phase("compute", body.seconds, peer);
        this.slowestPerBatchMs = Math.max(this.slowestPerBatchMs, (body.seconds * 1000) / Math.max(1, task.batches.length));
      }
      this.foldArrived(r!);
    }
    this.dueAgain(peer);
    this.maybeFinish(r!);
  }

  evalResult(peer: string, m: Message, now: number): void {
    const body = readBody(m, Kind.EvalResult, `worker ${peer}`);
    const task = this.current?.kind === "eval" ? this.openTask(peer, body.task) : null;
    if (!task) { log.debug(`late evaluation result from ${peer} ignored`); return; }
    this.o.peers.members.done(peer, now);
    task.done = true;
    task.lossSum = body.lossSum; task.correct = body.correct; task.count = body.count;
    this.dueAgain(peer);
    this.maybeFinish(this.current!);
  }

  private openTask(peer: string, taskId: number): Task | null {
    return this.current?.tasks.find((t) => t.id === taskId && t.peer === peer && !t.done) ?? null;
  }

  /** After a task finished, the worker is due again only if it has other open tasks. */
  private dueAgain(peer: string): void {
    const open = this.current?.tasks.filter((t) => t.peer === peer && !t.done) ?? [];
    if (open.length) this.o.peers.members.assign(peer, Date.now() + this.deadlineMs(open.reduce((n, t) => n + t.batches.length, 0)));
  }

  /** Fold the gradients of the finished tasks from `r.folded` on, in task order, up to the first open task. */
  foldArrived(r: Round): void {
    while (r.folded < r.tasks.length && r.tasks[r.folded]!.done) {
      const t = r.tasks[r.folded++]!;
      if (!t.skipped && t.grads) this.o.arith.add(t.grads);
    }
  }

  /** Start the sum over again from the tasks still in it (after some were skipped). */
  refold(r: Round): void {
    this.o.arith.reset();
    r.folded = 0;
    this.foldArrived(r);
  }

  /** Mark the parts with a NaN/Inf value skipped, counted and answered with a Reject; true when any was. */
  skipNonFinite(r: Round): boolean {
    let found = false;
    for (const t of r.tasks) {
      if (!t.done || t.skipped || !t.grads) continue;
      const bad = nonFiniteGradient(t.grads.values, `worker ${t.peer}`);
      if (!bad) continue;
      t.skipped = true;
      found = true;
      this.o.peers.reject(t.peer, bad, r.step);
    }
    return found;
  }

  private maybeFinish(round: Round): void {
    if (this.current !== round) return;
    if (round.orphans.length === 0 && round.tasks.every((t) => t.done)) round.resolve();
  }
}
