// Rounds: one step's (or one evaluation's) batches dealt to the live workers as tasks, and their results
// collected. A train round folds every gradient into the sum as soon as it and all tasks before it have
// arrived (task order: float addition is not associative). A task whose worker leaves or is evicted goes
// to the least-loaded live worker once; with none left, its batches wait for one to join (elastic).
import { AbortedError, TrainingError } from "../errors.js";
import { logger } from "../output.js";
import type { Telemetry } from "../telemetry.js";
import type { StepArithmetic } from "../optim/step.js";
import type { SparseBlock } from "../protocol/gradcodec.js";
import type { SliceView } from "../protocol/slices.js";
import { Kind, WireError, checkGradient, workerName, type Message } from "../protocol/wire.js";
import { readBody } from "../protocol/bodies.js";
import type { Peers } from "./peers.js";
import { RowPull } from "./row-pull.js";
import { absurdParts, inSum, nonFiniteParts } from "./blame.js";
import { type Round, type RoundKind, type Task } from "./round.js";
import { wallClock } from "../clock.js";

const log = logger("coordinator");

/** A worker whose gradients are refused this many times in a row is evicted. */
export const MAX_REFUSED_IN_A_ROW = 3;

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
  /** Sharded with row pull: this process's slice and the shards' (../protocol/slices.ts), and how to ask the
   *  shards for a task's pieces (rows local to each shard's slice, in slice order); `rows`: the embedding's rows
   *  in all slices. */
  slices?: { own: SliceView; others: SliceView[]; rows: number };
  pullShards?: (task: number, peer: string, rows: Uint32Array[]) => void;
  workers: number;
  batchesPerStep?: number;
  stepTimeoutS?: number;
  joinTimeoutS: number;
  signal?: AbortSignal;
  /** Seconds spent sending tasks and waiting for results, over the run (train rounds). */
  phases: { broadcast: number; wait: number };
  /** Samples in a batch (the dataset as the coordinator reads it); absent: workers' counts are checked only
   *  for sanity (benchmarks without a dataset). */
  batchSamples?: (split: "train" | "val", index: number, epoch: number) => number;
  /** Row pull: the embedding rows a batch reads (sorted, unique). With it, a task carries the dense parameters
   *  and only its batches' rows, the newest values (`arith.ensureRows`), instead of the whole vector. */
  batchRows?: (split: "train" | "val", index: number) => Int32Array;
  /** Called once a round's tasks are out (the coordinator finishes Adam over the other rows then). */
  afterSend?: () => void;
  /** The batches the next training step will most likely take (row pull: the rows they read that this step's
   *  batches do not are updated ahead while the workers compute: optim/step.ts's `ahead`). */
  nextBatches?: () => number[];
  /** A training batch's cost (padded tokens): a step's costliest task goes out first (its worker, the one the
   *  step waits for, starts first). */
  batchCost?: (index: number) => number;
}

export class Rounds {
  /** The round in progress, and the last one finished. */
  current: Round | null = null;
  last: Round | null = null;
  /** Payload bytes of the gradients summed (float32 or half, dense or rows, with the row ids). */
  gradientBytes = 0;
  private nextTask = 1;
  /** Slowest task seen, ms per batch, measured here (send to result), never as a worker reports it. */
  private slowestPerBatchMs = 0;
  private readonly refusedInARow = new Map<string, number>();
  /** Row pull: what each task carries (./row-pull.ts). */
  private readonly pull: RowPull | null;

  constructor(private readonly o: RoundsOptions) {
    this.pull = o.batchRows && o.sparse ? new RowPull(o.arith, o.sparse, o.batchRows, o.slices ?? null) : null;
  }

  /** Hand out `batches`, wait for every task (re-dealing those of departed workers), return the round. */
  async run(kind: RoundKind, split: Round["split"], at: { step: number; version: number; epoch: number }, batches: number[], deal: (b: number[], n: number) => number[][]): Promise<Round> {
    // the last round's gradients are summed and applied: their received buffers may be freed
    for (const t of this.last?.tasks ?? []) t.grads = undefined;
    const live = this.o.peers.members.live();
    const round: Round = {
      kind, split, step: at.step, version: at.version, epoch: at.epoch, params: this.o.arith.params, tasks: [], folded: 0, orphans: [], dealing: true,
      resolve: () => {}, reject: () => {},
    };
    const done = new Promise<void>((resolve, reject) => { round.resolve = resolve; round.reject = reject; });
    this.current = round;
    if (kind === "train") this.o.arith.reset();
    const tSend = performance.now();
    // a training step's costliest task goes first (ties in the order dealt): task order is also the order the
    // gradients are summed in, so it is fixed by the batches alone
    const cost = this.o.batchCost;
    const costOf = (part: number[]) => part.reduce((s, b) => s + cost!(b), 0);
    const parts = deal(batches, live.length).map((part, i) => ({ part, peer: live[i]!.id, cost: kind === "train" && cost ? costOf(part) : 0 })).filter((p) => p.part.length);
    parts.sort((a, b) => b.cost - a.cost);
    const order = parts.map((p) => this.newTask(round, p.peer, p.part));
    const sends: Promise<void>[] = [];
    for (const t of order) {
      if (t.done) continue; // its worker left meanwhile: reassigned
      sends.push(this.transmit(round, t));
      // each task's parameters are gathered for it: let the one just gathered go to the wire before the next
      if (this.pull && order.length > 1) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(sends);
    round.dealing = false;
    if (kind === "train") this.phase("broadcast", (performance.now() - tSend) / 1000);
    // the work off the critical path (Adam over the other rows, and ahead over the next step's): a train round's
    // once every task is with its worker (each sends Started on its Assign), so that it does not compete with
    // the tasks' transfer for the cores; an evaluation's at once. A gradient that arrives first runs it before
    // its fold (and the arithmetic finishes whatever it needs on demand: optim/step.ts).
    round.offPath = () => { this.o.afterSend?.(); if (kind === "train") this.readAhead(batches); };
    if (kind !== "train") this.runOffPath(round);
    else this.maybeOffPath(round);
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
      this.runOffPath(round);
      this.current = null;
    }
    this.last = round;
    if (kind === "train") this.phase("wait", (performance.now() - tWait) / 1000);
    return round;
  }

  /** The round's work off the critical path, once every task it dealt is with its worker (or done). */
  private maybeOffPath(r: Round): void {
    if (r.offPath && !r.dealing && r.tasks.every((t) => t.startedClock !== undefined || t.done)) this.runOffPath(r);
  }

  private runOffPath(r: Round): void {
    const f = r.offPath;
    r.offPath = undefined;
    f?.();
  }

  /** A worker has its task (Started): checked against the open tasks (anything else is dropped unlogged: it
   *  changes nothing). The time goes to the --timeline. */
  started(peer: string, m: Message): void {
    const body = readBody(m, Kind.Started, `worker ${workerName(peer)}`);
    const r = this.current;
    if (!r || m.header.runId !== this.o.runId || m.header.step !== r.step) return;
    const task = this.openTask(peer, body.task);
    if (!task || task.startedClock !== undefined) return;
    task.startedClock = wallClock();
    this.maybeOffPath(r);
  }

  /** Row pull, unsharded: Adam ahead over the rows the next step's batches read and this step's (`batches`)
   *  do not — off the path from this step's last gradient to the next step's tasks. A wrong guess (the next
   *  step takes other batches) costs only the work: any row no part touches may be updated ahead. */
  private readAhead(batches: number[]): void {
    const next = this.o.nextBatches?.();
    if (!this.pull || this.o.slices || !next?.length) return;
    this.o.arith.ahead(this.pull.rowsBeyond("train", batches, next));
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

  private sendTask(round: Round, peer: string, batches: number[]): Promise<void> {
    return this.transmit(round, this.newTask(round, peer, batches));
  }

  /** A task of these batches for `peer`, in the round (its deadline runs from when it is sent). */
  private newTask(round: Round, peer: string, batches: number[]): Task {
    const assigned = this.o.batchSamples ? batches.reduce((n, b) => n + this.o.batchSamples!(round.split, b, round.epoch), 0) : null;
    const task: Task = { id: this.nextTask++, peer, batches, done: false, lossSum: 0, correct: 0, count: 0, tokens: 0, skipped: false, refused: false, sentAt: 0, dueAt: Infinity, assigned };
    round.tasks.push(task);
    return task;
  }

  private async transmit(round: Round, task: Task): Promise<void> {
    const { peer, batches } = task;
    const now = Date.now(), due = now + this.deadlineMs(batches.length);
    task.sentAt = now; task.dueAt = due;
    this.o.peers.members.assign(peer, due);
    const body = { task: task.id, epoch: round.epoch, split: round.split, batches };
    const at = { step: round.step, version: round.version };
    const kind = round.kind === "train" ? Kind.Assign : Kind.Eval;
    let payload: Float32Array | undefined, rows: Uint32Array | undefined;
    if (this.pull) {
      // the version's dense values first, where they travel alone: they are on the wire while the rows are gathered
      const dense = this.pull.dense(peer, round.version, this.o.peers.hasParams);
      if (dense) void this.o.peers.send(peer, Kind.Dense, {}, dense, at);
      const pulled = this.pull.payload(round.split, batches);
      if (pulled.others.length) this.o.pullShards?.(task.id, peer, pulled.others); // the shards' pieces first: they start at once
      payload = task.lease = pulled.payload;
      rows = pulled.rows;
    } else if (!this.o.sharded && this.o.peers.hasParams.get(peer) !== round.version) {
      payload = round.params; // parameters inline only for a worker that has not received this version in Params chunks
    }
    task.queuedClock = wallClock(); // before the await: the worker may have it before this resumes
    await this.o.peers.send(peer, kind, body, payload, at, rows);
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
      log.info(`step ${round.step}: batches [${t.batches.join(", ")}] of ${workerName(id)} reassigned to ${workerName(target.id)}`);
      void this.sendTask(round, target.id, t.batches);
    }
  }

  /** The workers whose open tasks are past due at `now` (a deadline per task: a member's Join, heartbeat or
   *  any other message cannot move it). */
  overdue(now: number): { peer: string; lateMs: number; reason: string }[] {
    const late = new Map<string, number>();
    for (const t of this.current?.tasks ?? []) if (!t.done && now > t.dueAt) late.set(t.peer, Math.max(late.get(t.peer) ?? 0, now - t.dueAt));
    return [...late].map(([peer, lateMs]) => ({ peer, lateMs, reason: `missed its task deadline by ${(lateMs / 1000).toFixed(1)} s` }));
  }

  /** A worker became ready: batches waiting for one go to it. */
  adopt(peer: string): void {
    const r = this.current;
    if (!r || !r.orphans.length) return;
    if (r.orphanTimer) clearTimeout(r.orphanTimer);
    r.orphanTimer = undefined;
    const orphans = r.orphans.splice(0);
    log.info(`step ${r.step}: batches [${orphans.flat().join(", ")}] handed to ${workerName(peer)}`);
    for (const b of orphans) void this.sendTask(r, peer, b);
  }

  // ---- results --------------------------------------------------------------------------------------------

  gradient(peer: string, m: Message, now: number): void {
    const clock = wallClock();
    const r = this.current;
    const from = `worker ${workerName(peer)}`;
    const body = readBody(m, Kind.Gradient, from);
    const want = { runId: this.o.runId, step: r?.step ?? -1, paramVersion: r?.version ?? -1, layoutHash: this.o.layoutHash, size: this.o.arith.size, sparse: this.o.sparse };
    const bad = checkGradient(m, want, from, { finite: false, gradScale: body.gradScale }); // NaN/Inf: found at the reduce
    if (bad && bad.reason !== "nan") return this.o.peers.reject(peer, bad, m.header.step);
    const task = r && r.kind === "train" ? this.openTask(peer, body.task) : null;
    if (!task) return this.o.peers.reject(peer, new WireError("stale", `gradient from worker ${workerName(peer)} for task ${body.task} of step ${m.header.step} matches no open task`), m.header.step);
    this.o.peers.members.done(peer, now);
    task.done = true;
    this.runOffPath(r!); // before the fold (a Started lost or overtaken)
    this.pull?.release(task, 2 * this.o.peers.members.live().length + 2);
    const wrong = bad ?? this.wrongCount(task, body.count, from);
    if (wrong) {
      this.refuse(task, wrong);
    } else {
      this.gradientBytes += (m.half ?? m.payload).byteLength + (m.rows?.byteLength ?? 0);
      task.grads = { values: m.half ?? m.payload, scale: m.half ? 1 / (body.gradScale ?? 1) : 1, rows: m.rows };
      task.gradientClock = clock;
      task.count = task.assigned ?? body.count!;
      task.lossSum = body.lossSum ?? 0; task.correct = Math.min(body.correct ?? 0, task.count);
      task.tokens = body.tokens ?? 0;
      if (body.ids) task.ids = body.ids;
      this.took(task, now, body.seconds);
      this.foldArrived(r!);
    }
    this.dueAgain(peer);
    this.maybeFinish(r!);
  }

  /** The sample count a worker reports must be what it was assigned (or, not knowing that, at least one). */
  private wrongCount(task: Task, count: number | undefined, from: string): WireError | null {
    if (task.assigned === null ? count !== undefined && count > 0 : count === task.assigned) return null;
    return new WireError("malformed", `gradient from ${from} for task ${task.id} reports ${count ?? "no"} samples; it was assigned ${task.assigned ?? "at least 1"}: contribution skipped, its batches dealt again`);
  }

  /** Time a task took, as measured here; the worker's own figure (clamped to that) goes to telemetry only. */
  private took(task: Task, now: number, reported: number | undefined): void {
    const ms = now - task.sentAt;
    this.slowestPerBatchMs = Math.max(this.slowestPerBatchMs, ms / Math.max(1, task.batches.length));
    this.o.tel.phase("compute", Math.min(Math.max(0, reported ?? ms / 1000), ms / 1000), workerName(task.peer));
    this.refusedInARow.delete(task.peer);
  }

  /** Skip a task's gradient: counted and answered with a Reject; its batches go back to the sampler. A worker
   *  refused too often in a row is evicted (it can join again). */
  refuse(task: Task, why: WireError): void {
    task.skipped = task.refused = true;
    this.o.peers.reject(task.peer, why, this.current?.step ?? 0);
    const n = (this.refusedInARow.get(task.peer) ?? 0) + 1;
    this.refusedInARow.set(task.peer, n);
    if (n >= MAX_REFUSED_IN_A_ROW) {
      this.refusedInARow.delete(task.peer);
      this.o.peers.evict(task.peer, `sent ${n} unusable gradients in a row`, 0, "refused");
    }
  }

  evalResult(peer: string, m: Message, now: number): void {
    const body = readBody(m, Kind.EvalResult, `worker ${workerName(peer)}`);
    const task = this.current?.kind === "eval" ? this.openTask(peer, body.task) : null;
    if (!task) { log.debug(`late evaluation result from ${workerName(peer)} ignored`); return; }
    this.o.peers.members.done(peer, now);
    task.done = true;
    this.pull?.release(task, 2 * this.o.peers.members.live().length + 2);
    const wrong = this.wrongCount(task, body.count, `worker ${workerName(peer)}`);
    if (wrong) {
      // an evaluation is not worth re-dealing: its batches just do not count (the validation says how many did)
      task.skipped = true;
      this.o.peers.reject(peer, wrong);
    } else {
      task.count = task.assigned ?? body.count;
      task.lossSum = body.lossSum; task.correct = Math.min(body.correct, task.count);
      this.took(task, now, undefined);
    }
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

  /** Refuse the parts with a NaN/Inf value; true when any was (./blame.ts). */
  refuseNonFinite(r: Round): boolean {
    const bad = nonFiniteParts(r);
    for (const b of bad) this.refuse(b.task, b.why);
    return bad.length > 0;
  }

  /** The sum overflowed although every part is finite: refuse the parts of absurd size; true when any was (else
   *  nobody in particular is to blame). */
  refuseAbsurd(r: Round): boolean {
    const bad = absurdParts(r);
    for (const b of bad) this.refuse(b.task, b.why);
    return bad.length > 0;
  }

  /** Refuse every part still in the sum (the step is skipped, its batches dealt again). */
  refuseAll(r: Round, why: string): void {
    for (const t of inSum(r)) this.refuse(t, new WireError("nan", why));
  }

  private maybeFinish(round: Round): void {
    if (this.current !== round || round.dealing) return;
    if (round.orphans.length === 0 && round.tasks.every((t) => t.done)) round.resolve();
  }
}
