// The coordinator: owns the parameters and Adam, runs synchronous data-parallel SGD over ZeroMQ.
//
// One step: take `batchesPerStep` batch indices from the epoch's sampler → deal them round-robin to the live
// workers (Assign + parameters) → collect one Gradient per task (gradient of the loss SUM over its batches)
// → sum in task order, divide by the samples → clip by global norm → Adam → bump the parameter version.
// The gradients are summed as they arrive; Adam runs one 1 MiB chunk at a time and each finished chunk goes
// out to every ready worker at once (Params), so the next Assign carries no parameters (allreduce.ts).
// A worker that misses its deadline is evicted and named; its batches go to another live worker once.
import { hostname } from "node:os";
import type { ModelConfig } from "../config.js";
import { TrainingError, AbortedError, ConnectionError, errorMessage } from "../errors.js";
import { settledWithin } from "../wait.js";
import { logger } from "../output.js";
import { NO_TELEMETRY, type Telemetry } from "../telemetry.js";
import { paramLayout, initParams, type InitOptions, type ParamLayout } from "../model/layout.js";
import { clipCoefficient, Adam, type AdamState } from "../optim/adam.js";
import { ShardLinks, sliceBounds } from "./shards.js";
import { StepArithmetic, PARAM_CHUNK, type GradPart } from "../optim/step.js";
import { sparseBlockOf, type SparseBlock } from "../protocol/gradcodec.js";
import { Kind, encode, decode, checkGradient, nonFiniteGradient, messageLimitFor, newRunId, WireError, kindName, type Message } from "../protocol/wire.js";
import { RouterChannel, type AuthFailure, type CurveServerKeys } from "../transport/zmq.js";
import { Membership, type EvictionCause } from "./membership.js";
import { EpochSampler, dealRoundRobin, splitEven } from "./sampler.js";
import { learningRate, type Schedule } from "../optim/schedule.js";

const log = logger("coordinator");

export interface CoordinatorOptions {
  /** ZeroMQ endpoint to bind, e.g. "tcp://0.0.0.0:5555" or "tcp://127.0.0.1:*". */
  bind: string;
  /** Dataset directory as the workers see it (shared path); sent in Welcome. */
  dataset: string;
  model: ModelConfig;
  /** Training batches per split, as counted by the coordinator. */
  trainBatches: number;
  valBatches: number;
  /** Validate on the first n val batches only (0 = all). */
  maxValBatches?: number;
  /** Workers to wait for before the first step. */
  workers: number;
  /** Batches per step (default: `workers`): the effective batch is this × the dataset's batch size. */
  batchesPerStep?: number;
  epochs: number;
  /** Stop each epoch after this many steps (0 = the whole epoch). */
  maxStepsPerEpoch?: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay?: number;
  clip: number;
  schedule?: Schedule;
  seed: number;
  /** Dropout rate on the classifier's input during training (workers draw the masks; default 0). */
  dropout?: number;
  /** How workers send gradients: float32 or IEEE half ("fp16"); the embedding dense or as touched rows. */
  gradDtype?: "fp32" | "fp16";
  embeddingGrads?: "dense" | "rows";
  /** Split the parameters over this many coordinator processes (this one and K − 1 shard children; shards.ts). */
  coordinatorShards?: number;
  /** Parameters per Params chunk of the broadcast (default PARAM_CHUNK, 1 MiB of float32; tests use less). */
  paramChunk?: number;
  /** Per-step deadline in seconds; 0 = automatic (max(30 s, 5 × the slowest step so far)). */
  stepTimeoutS?: number;
  heartbeatTimeoutS?: number;
  /** How long to wait for the expected workers to join, seconds. */
  joinTimeoutS?: number;
  /** Parameters to start from (tests, resume); default initParams(model, seed). */
  initialParams?: Float32Array;
  /** Initialisation options when no initialParams are given (e.g. the LSTM forget-gate bias). */
  init?: InitOptions;
  telemetry?: Telemetry;
  /** Progress events (the launcher draws them). */
  onEvent?: (e: CoordinatorEvent) => void;
  /** Called every `checkpointEvery` steps, at each epoch end and on exit with the state to checkpoint. */
  onCheckpoint?: (s: CheckpointState) => Promise<void> | void;
  /** Also checkpoint every n applied steps (0 = only at epoch ends and on exit). */
  checkpointEvery?: number;
  /** Called after each applied step with the samples whose gradients it summed (exactly-once accounting). */
  onApplied?: (a: AppliedStep) => void;
  signal?: AbortSignal;
  /** ZeroMQ CURVE: admit only workers holding one of these client keys (see src/security/keys.ts). */
  curve?: CurveServerKeys;
}

export type CoordinatorEvent =
  | { type: "listening"; endpoint: string; runId: number }
  | { type: "member"; event: "join" | "leave" | "evict"; worker: string; live: number; reason?: string }
  | { type: "step"; step: number; epoch: number; stepInEpoch: number; stepsInEpoch: number; loss: number; accuracy: number; samples: number; seconds: number; gradNorm: number }
  | { type: "epoch"; epoch: number; trainLoss: number; trainAccuracy: number; valLoss: number; valAccuracy: number; valCount: number; seconds: number }
  | { type: "rejected"; worker: string; reason: string; message: string };

export interface CheckpointState {
  reason: "step" | "epoch" | "exit";
  step: number;
  epoch: number;
  cursor: number;
  paramVersion: number;
  runId: number;
  layout: ParamLayout;
  params: Float32Array;
  adam: Adam;
  /** Running totals of the epoch in progress (zero at an epoch boundary). */
  epochStats: EpochStats;
}

export interface EpochStats { lossSum: number; correct: number; count: number; steps: number }

/** One applied step: which worker computed which batches (and sample ids, as the worker read them). */
export interface AppliedStep {
  step: number;
  /** 1-based epoch. */
  epoch: number;
  parts: { worker: string; batches: number[]; ids: number[] | null }[];
}

export interface EpochSummary { epoch: number; trainLoss: number; trainAccuracy: number; valLoss: number; valAccuracy: number; valCount: number; seconds: number; steps: number }

export interface CoordinatorResult {
  runId: number;
  params: Float32Array;
  layout: ParamLayout;
  steps: number;
  epochs: EpochSummary[];
  rejected: Record<string, number>;
  evicted: string[];
  /** Seconds spent in each phase over the run (coordinator's share of the step). */
  phases: { wait: number; reduce: number; optimizer: number; broadcast: number; step: number };
  samples: number;
  /** Payload bytes of the gradients summed (float32 or half, dense or embedding rows, with the row ids). */
  gradientBytes: number;
}

interface GradBody { task: number; lossSum: number; correct: number; count: number; tokens?: number; seconds?: number; ids?: number[] }
interface EvalBody { task: number; lossSum: number; correct: number; count: number }

/** One piece of work handed to one worker within a round. */
interface Task {
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

interface Round {
  kind: "train" | "eval";
  step: number;
  version: number;
  split: "train" | "val";
  params: Float32Array;
  tasks: Task[];
  /** Train rounds: tasks [0, folded) are in the sum (folded in task order as their gradients arrive). */
  folded: number;
  /** Batches of lost tasks waiting for a worker (when none was ready to take them). */
  orphans: number[][];
  orphanTimer?: NodeJS.Timeout;
  dueMs: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Loss, accuracy and sample totals of the tasks whose gradients are in the sum. */
function tally(r: Round): { lossSum: number; correct: number; count: number; tokens: number } {
  let lossSum = 0, correct = 0, count = 0, tokens = 0;
  for (const t of r.tasks) {
    if (!t.done || t.skipped || !t.grads) continue;
    lossSum += t.lossSum; correct += t.correct; count += t.count; tokens += t.tokens;
  }
  return { lossSum, correct, count, tokens };
}

export class Coordinator {
  readonly runId = newRunId();
  readonly layout: ParamLayout;
  readonly adam: Adam;
  /** Parameters (two alternating buffers), Adam's moments and the step's sum in one WebAssembly arena. */
  private readonly arith: StepArithmetic;
  /** Worker → the parameter version it holds from Params chunks (its Assign/Eval then carry none). */
  private readonly hasParams = new Map<string, number>();
  /** The embedding block (gradients may carry only its touched rows). */
  private readonly sparse: SparseBlock | null;
  /** Sharded (--coordinator-shards K > 1): the shard processes, every slice's bounds (this one owns slice 0),
   *  the whole vector (before the run: what GloVe and resume fill; after: gathered from the shards). */
  private shards: ShardLinks | null = null;
  private shardsReady = false;
  private readonly bounds: { offset: number; length: number }[];
  private readonly full: Float32Array | null;
  private restoredAdam: AdamState | null = null;
  private gradientBytes = 0;
  private readonly tel: Telemetry;
  private readonly members: Membership;
  private channel!: RouterChannel;
  private readonly maxBytes: number;
  private step = 0;
  private version = 0;
  private round: Round | null = null;
  private nextTask = 1;
  private joinWaiter: (() => void) | null = null;
  private failure: Error | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastPing = 0;
  private slowestPerBatchMs = 0;
  private readonly rejected: Record<string, number> = {};
  private readonly evicted: string[] = [];
  private readonly phases = { wait: 0, reduce: 0, optimizer: 0, broadcast: 0, step: 0 };
  private epoch = 0;
  private cursor = 0;
  private epochStats: EpochStats = { lossSum: 0, correct: 0, count: 0, steps: 0 };
  private lastRound: Round | null = null;

  constructor(private readonly o: CoordinatorOptions) {
    this.layout = paramLayout(o.model);
    const initial = o.initialParams ?? initParams(o.model, o.seed, o.init);
    if (initial.length !== this.layout.size) throw new TrainingError(`initial parameters have ${initial.length} values; the layout needs ${this.layout.size}`);
    const k = Math.max(1, Math.floor(o.coordinatorShards ?? 1));
    if (k > 1 && o.curve) throw new TrainingError("--coordinator-shards with CURVE keys is not supported yet: the shard sockets would be unauthenticated");
    this.bounds = sliceBounds(this.layout.size, k);
    this.full = k > 1 ? Float32Array.from(initial) : null;
    this.sparse = k > 1 ? null : sparseBlockOf(this.layout); // sharded: dense slices only
    const own = this.bounds[0]!.length;
    this.arith = new StepArithmetic(own, { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay }, initial.subarray(0, own), this.sparse);
    this.adam = this.arith.adam;
    this.tel = o.telemetry ?? NO_TELEMETRY;
    this.members = new Membership((o.heartbeatTimeoutS ?? 10) * 1000, (o.joinTimeoutS ?? 300) * 1000);
    this.maxBytes = messageLimitFor(this.layout.size);
  }

  get endpoint(): string { return this.channel.endpoint; }

  /** The current parameters (a view that the next step overwrites: copy to keep). */
  get params(): Float32Array { return this.full ?? this.arith.params; }

  /** Bind and start answering joins (workers may connect before `run`). */
  async listen(): Promise<string> {
    this.channel = await RouterChannel.bind(this.o.bind, { maxBytes: this.maxBytes, curve: this.o.curve, onAuthFailure: (f) => this.authFailure(f) });
    if (this.o.curve) log.info(`CURVE on: admitting ${this.o.curve.clients.length} client key(s) (${this.o.curve.clients.map((c) => c.name).join(", ")})`);
    if (this.bounds.length > 1) {
      const host = /^tcp:\/\/(.*):\d+$/.exec(this.channel.endpoint)?.[1] ?? "127.0.0.1";
      this.shards = await ShardLinks.start(this.bounds.length, host, this.layout.size);
    }
    void this.receiveLoop();
    this.timer = setInterval(() => this.tick(), 200);
    log.info(`listening on ${this.channel.endpoint} (run ${this.runId}, ${this.layout.size} parameters, layout ${this.layout.hash}, message limit ${this.maxBytes} bytes)`);
    this.o.onEvent?.({ type: "listening", endpoint: this.channel.endpoint, runId: this.runId });
    return this.channel.endpoint;
  }

  private readonly authRefusals = new Map<string, number>();
  /** A refused connection attempt (unadmitted CURVE key, wrong server key, no CURVE): counted as
   *  rejected{reason="auth"} and logged — the first three of each kind, then one line in 100 (peers retry).
   *  A peer that hung up mid-handshake is logged the same way but not counted: it may have just stopped. */
  private authFailure(f: AuthFailure): void {
    const n = (this.authRefusals.get(f.reason) ?? 0) + 1;
    this.authRefusals.set(f.reason, n);
    const what = f.reason === "closed"
      ? `a connection on ${f.address} failed: ${f.detail}`
      : `refused a connection ${f.reason === "client-key" ? "from" : "on"} ${f.address}: ${f.detail}`;
    if (n <= 3 || n % 100 === 0) log.warn(`${what} (${n} of this kind so far)`);
    if (f.reason === "closed") return;
    this.rejected.auth = (this.rejected.auth ?? 0) + 1;
    this.tel.rejected("auth");
    this.o.onEvent?.({ type: "rejected", worker: f.address, reason: "auth", message: what });
  }

  /** Restore optimizer state and position (resume). */
  restore(s: { adam: { m: Float32Array; v: Float32Array; t: number }; step: number; epoch: number; cursor: number; paramVersion: number; epochStats?: EpochStats }): void {
    if (this.full) this.restoredAdam = s.adam; // sharded: sliced out when the shards start
    else this.adam.load(s.adam);
    this.step = s.step;
    this.version = s.paramVersion;
    this.epoch = s.epoch;
    this.cursor = s.cursor;
    if (s.cursor > 0 && s.epochStats) this.epochStats = { ...s.epochStats };
  }

  async run(): Promise<CoordinatorResult> {
    const o = this.o;
    const epochs: EpochSummary[] = [];
    // Batches per step: fixed by --batches-per-step, or elastic (0): one per ready worker at the start of each
    // step, so a worker that joins takes part from the next step and one that leaves shrinks the step.
    const fixed = Math.max(0, o.batchesPerStep ?? 0);
    const perStepNow = () => fixed || Math.max(1, this.members.live().length);
    const perStep = fixed || Math.max(1, o.workers); // for the schedule's and the progress bar's step count
    const stepsPerEpochFull = Math.ceil(o.trainBatches / perStep);
    const stepsPerEpoch = o.maxStepsPerEpoch ? Math.min(o.maxStepsPerEpoch, stepsPerEpochFull) : stepsPerEpochFull;
    const totalSteps = stepsPerEpoch * o.epochs;
    const every = Math.max(0, o.checkpointEvery ?? 0);
    let samples = 0;
    try {
      await this.startShards();
      await this.waitForWorkers(o.workers, (o.joinTimeoutS ?? 120) * 1000);
      for (let epoch = this.epoch; epoch < o.epochs; epoch++) {
        this.epoch = epoch;
        const t0 = performance.now();
        const sampler = new EpochSampler(o.trainBatches, epoch, o.seed);
        const st = this.epochStats;
        if (this.cursor > 0) {
          // resume within the epoch: the same order, without the batches already used
          sampler.seek(this.cursor);
          if (!st.steps) st.steps = Math.ceil(this.cursor / perStep);
          log.info(`epoch ${epoch + 1}: resuming after ${this.cursor} of ${o.trainBatches} batches (step ${this.step})`);
        }
        while ((!o.maxStepsPerEpoch || st.steps < o.maxStepsPerEpoch) && !sampler.exhausted()) {
          this.checkAbort();
          const batches = sampler.take(perStepNow());
          this.adam.o.lr = learningRate(o.lr, this.step, totalSteps, o.schedule);
          const r = await this.trainStep(batches);
          sampler.markDone(batches);
          this.cursor = sampler.position();
          st.steps++;
          st.lossSum += r.lossSum; st.correct += r.correct; st.count += r.count; samples += r.count;
          this.applied(epoch);
          const left = o.trainBatches - this.cursor;
          const stepsInEpoch = o.maxStepsPerEpoch ? stepsPerEpoch : st.steps + Math.ceil(left / perStepNow());
          this.o.onEvent?.({ type: "step", step: this.step, epoch, stepInEpoch: st.steps, stepsInEpoch, loss: r.count ? r.lossSum / r.count : NaN, accuracy: r.count ? r.correct / r.count : NaN, samples: r.count, seconds: r.seconds, gradNorm: r.norm });
          const more = (!o.maxStepsPerEpoch || st.steps < o.maxStepsPerEpoch) && !sampler.exhausted();
          if (every > 0 && this.step % every === 0 && more) await this.checkpoint("step", epoch);
        }
        const { lossSum, correct, count, steps } = st;
        const val = await this.evaluate("val", o.maxValBatches ? Math.min(o.maxValBatches, o.valBatches) : o.valBatches);
        const seconds = (performance.now() - t0) / 1000;
        const summary: EpochSummary = {
          epoch: epoch + 1, trainLoss: count ? lossSum / count : NaN, trainAccuracy: count ? correct / count : NaN,
          valLoss: val.loss, valAccuracy: val.accuracy, valCount: val.count, seconds, steps,
        };
        epochs.push(summary);
        this.tel.validation({ epoch: epoch + 1, loss: val.loss, accuracy: val.accuracy });
        log.info(`epoch ${epoch + 1}/${o.epochs}: train loss ${summary.trainLoss.toFixed(4)} acc ${(summary.trainAccuracy * 100).toFixed(2)}% · val loss ${val.loss.toFixed(4)} acc ${(val.accuracy * 100).toFixed(2)}% (${val.count} reviews) · ${seconds.toFixed(1)} s`);
        this.o.onEvent?.({ type: "epoch", ...summary });
        this.cursor = 0;
        this.epochStats = { lossSum: 0, correct: 0, count: 0, steps: 0 };
        await this.checkpoint("epoch", epoch + 1);
      }
      return { runId: this.runId, params: (await this.gathered()).params, layout: this.layout, steps: this.step, epochs, rejected: { ...this.rejected }, evicted: [...this.evicted], phases: { ...this.phases }, samples, gradientBytes: this.gradientBytes };
    } catch (err) {
      // the exit checkpoint: what was learned so far is kept
      try { await this.checkpoint("exit", this.epoch); } catch (e) { log.warn(`exit checkpoint failed: ${errorMessage(e)}`); }
      throw err;
    }
  }

  private async checkpoint(reason: CheckpointState["reason"], epoch: number): Promise<void> {
    if (!this.o.onCheckpoint) return;
    const g = await this.gathered();
    await this.o.onCheckpoint({ reason, step: this.step, epoch, cursor: this.cursor, paramVersion: this.version, runId: this.runId, layout: this.layout, params: g.params, adam: g.adam, epochStats: { ...this.epochStats } });
  }

  // ---- shards ----------------------------------------------------------------------------------------------

  private get shardHead() { return { runId: this.runId, layoutHash: this.layout.hash, version: this.version }; }

  /** Hand each shard its slice of the parameters (and of a resumed Adam state); keep slice 0 here. */
  private async startShards(): Promise<void> {
    if (!this.shards || this.shardsReady) return;
    const n = this.layout.size, own = this.bounds[0]!.length, full = this.full!;
    const st = this.restoredAdam ?? { m: new Float32Array(n), v: new Float32Array(n), t: 0 };
    this.arith.params.set(full.subarray(0, own));
    this.adam.load({ m: st.m.subarray(0, own), v: st.v.subarray(0, own), t: st.t });
    await this.shards.init(this.shardHead, this.adam.o, { params: full, m: st.m, v: st.v, t: st.t }, this.o.paramChunk);
    this.shardsReady = true;
    for (const m of this.members.live()) this.syncParams(m.id);
  }

  /** The whole parameter vector and Adam state (sharded: slice 0 here, the rest fetched from the shards). */
  private async gathered(): Promise<{ params: Float32Array; adam: Adam }> {
    if (!this.shards) return { params: this.params, adam: this.adam };
    if (!this.shardsReady) { // stopped before the shards had their slices: the whole state is still here
      const adam = new Adam(this.layout.size, { ...this.adam.o });
      if (this.restoredAdam) adam.load(this.restoredAdam);
      return { params: this.full!, adam };
    }
    const n = this.layout.size, s = this.adam.state();
    const m = new Float32Array(n), v = new Float32Array(n), full = this.full!;
    full.set(this.arith.params, 0); m.set(s.m, 0); v.set(s.v, 0);
    await this.shards.fetch(this.shardHead, { params: full, m, v });
    const adam = new Adam(n, { ...this.adam.o });
    adam.load({ m, v, t: s.t });
    return { params: full, adam };
  }

  /** Sharded: this coordinator's slice of the current parameters to one worker (it just became ready). */
  private syncParams(peer: string): void {
    if (!this.shardsReady) return;
    const p = this.arith.params, chunk = Math.max(4, this.o.paramChunk ?? PARAM_CHUNK);
    for (let s = 0; s < p.length; s += chunk) void this.sendParams(peer, this.version, p, s, Math.min(p.length, s + chunk));
  }

  /** Every shard's part of the squared norm for the tasks in the sum, and the tasks any shard found bad. */
  private async remoteSumsq(r: Round, count: number): Promise<{ sumsq: number; bad: number[] } | null> {
    if (!this.shards || count === 0) return null;
    const tasks = r.tasks.filter((x) => x.done && !x.skipped && x.grads).map((x) => x.id);
    const res = await this.shards.reduce(this.shardHead, { step: r.step, tasks, count });
    return { sumsq: res.sumsq.reduce((a, b) => a + b, 0), bad: res.bad };
  }

  /** Report the step just applied: who computed which batches (and the sample ids they read). */
  private applied(epoch: number): void {
    const r = this.lastRound;
    if (!r || r.kind !== "train") return;
    const parts = r.tasks.filter((t) => t.done && !t.skipped && t.grads).map((t) => ({ worker: t.peer, batches: t.batches, ids: t.ids ?? null }));
    log.debug(`step ${this.step} applied (epoch ${epoch + 1}): ${parts.map((p) => `${p.worker} [${p.batches.join(", ")}]`).join(", ")}`);
    this.o.onApplied?.({ step: this.step, epoch: epoch + 1, parts });
  }

  /** Tell every worker to stop, close the socket. */
  async close(reason = "run finished"): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.channel) return;
    await this.shards?.close(this.shardHead);
    const stops = this.members.connected().map((m) =>
      this.channel.send(m.id, encode({ kind: Kind.Stop, runId: this.runId, step: this.step, paramVersion: this.version, slot: m.slot, layoutHash: this.layout.hash }, { reason })).catch(() => {}));
    await settledWithin(Promise.all(stops), 1000);
    await new Promise((r) => setTimeout(r, 50)); // let ZeroMQ flush the stops (linger is 0)
    this.channel.close();
  }

  // ---- rounds -------------------------------------------------------------------------------------------

  private async trainStep(batches: number[]): Promise<{ lossSum: number; correct: number; count: number; seconds: number; norm: number }> {
    const t0 = performance.now();
    this.step++;
    let r: Round;
    try {
      r = await this.runRound("train", "train", batches, dealRoundRobin);
    } catch (err) {
      this.step--; // nothing was applied: checkpoints must not count this step
      throw err;
    }
    const tWait = performance.now();
    // reduce: the gradients were summed in task order as they arrived (onGradient), rounding to float32 after
    // each add exactly as a worker's Float32Array accumulator does (2 workers × b == 1 worker × 2b bit for
    // bit). The mean's norm comes from one pass over the sum; a NaN/Inf makes it non-finite, and only then
    // are the parts searched for the culprit (skipped, counted) and the sum rebuilt without it.
    // Sharded: every shard sums the same tasks in the same order; the norm is the root of all slices' parts.
    this.foldArrived(r);
    let t = tally(r), sumsq = 0;
    for (;;) {
      t = tally(r);
      const remote = this.remoteSumsq(r, t.count);
      sumsq = t.count > 0 ? this.arith.sumsq(1 / t.count) : 0;
      let again = !Number.isFinite(sumsq) && this.skipNonFinite(r);
      const rs = await remote;
      if (rs) {
        sumsq += rs.sumsq;
        for (const id of rs.bad) {
          const task = r.tasks.find((x) => x.id === id);
          if (!task || task.skipped) continue;
          task.skipped = again = true;
          this.reject(task.peer, new WireError("nan", `gradient from worker ${task.peer} (task ${id}) has a non-finite value in a coordinator shard's slice, or the slice never arrived: contribution skipped`), r.step);
        }
      }
      if (!again) break;
      this.arith.reset();
      r.folded = 0;
      this.foldArrived(r);
    }
    const { lossSum, correct, count, tokens } = t;
    let norm = 0;
    if (count > 0) {
      const tReduce = performance.now();
      norm = Math.sqrt(sumsq);
      const coef = clipCoefficient(norm, this.o.clip);
      this.tel.gradNorm(norm, coef !== 1);
      // Adam one chunk at a time into the other parameter buffer; each finished chunk goes to every ready
      // worker while the next one is computed (ZeroMQ sends from its own thread, without copying)
      const version = this.version + 1;
      if (this.shards) await this.shards.apply(this.shardHead, { step: r.step, version, scale: 1 / count, coef, lr: this.adam.o.lr });
      const peers = new Set(this.members.live().map((m) => m.id));
      let sendMs = 0;
      for (const c of this.arith.update(1 / count, coef, this.o.paramChunk)) {
        if (!peers.size) continue;
        const ts = performance.now();
        await Promise.all([...peers].map(async (p) => { if (!(await this.sendParams(p, version, c.params, c.start, c.end))) peers.delete(p); }));
        sendMs += performance.now() - ts;
      }
      for (const p of peers) this.hasParams.set(p, version);
      const tOpt = performance.now();
      this.phases.reduce += (tReduce - tWait) / 1000;
      this.phases.optimizer += (tOpt - tReduce - sendMs) / 1000;
      this.phases.broadcast += sendMs / 1000;
      this.tel.phase("reduce", (tReduce - tWait) / 1000);
      this.tel.phase("optimizer", (tOpt - tReduce - sendMs) / 1000);
      this.tel.phase("broadcast", sendMs / 1000);
    } else {
      log.warn(`step ${this.step}: no usable gradient (all contributions skipped); parameters unchanged`);
      if (this.shards) await this.shards.apply(this.shardHead, { step: r.step, version: this.version + 1, scale: 0, coef: 1, lr: 0, skip: true });
    }
    this.version++;
    if (this.shards && count === 0) for (const m of this.members.live()) this.syncParams(m.id); // same values, new version
    this.tel.paramVersion(this.version);
    const seconds = (performance.now() - t0) / 1000;
    this.phases.step += seconds;
    this.tel.step({ step: this.step, epoch: this.epoch + 1, loss: count ? lossSum / count : NaN, accuracy: count ? correct / count : NaN, samples: count, tokens, seconds });
    return { lossSum, correct, count, seconds, norm };
  }

  async evaluate(split: "val" | "train", batchCount: number): Promise<{ loss: number; accuracy: number; count: number }> {
    if (batchCount === 0) return { loss: NaN, accuracy: NaN, count: 0 };
    const all = Array.from({ length: batchCount }, (_, i) => i);
    const r = await this.runRound("eval", split, all, splitEven);
    let lossSum = 0, correct = 0, count = 0;
    for (const t of r.tasks) if (t.done && !t.skipped) { lossSum += t.lossSum; correct += t.correct; count += t.count; }
    return { loss: count ? lossSum / count : NaN, accuracy: count ? correct / count : NaN, count };
  }

  /** Deadline of a task of `batches` batches: --step-timeout per step's worth of batches, or automatic
   *  (max(120 s, 5 × the slowest seconds per batch seen so far × batches)). */
  private deadlineMs(batches: number): number {
    const s = this.o.stepTimeoutS ?? 0;
    const perWorker = Math.max(1, Math.ceil((this.o.batchesPerStep ?? this.o.workers) / Math.max(1, this.o.workers)));
    if (s > 0) return s * 1000 * Math.max(1, batches / perWorker);
    return Math.max(120_000, 5 * this.slowestPerBatchMs * batches);
  }

  /** Hand out `batches`, wait for every task (reassigning those of evicted workers), return the round. */
  private async runRound(kind: "train" | "eval", split: "train" | "val", batches: number[], deal: (b: number[], n: number) => number[][]): Promise<Round> {
    this.checkAbort();
    if (this.members.live().length === 0) {
      log.warn(`no ready workers: waiting up to ${this.o.joinTimeoutS ?? 120} s for one to join`);
      await this.waitForWorkers(1, (this.o.joinTimeoutS ?? 120) * 1000);
    }
    const live = this.members.live();
    // The current parameter buffer goes out as it is (zero-copy): Adam writes the other one (allreduce.ts
    // explains why that is safe).
    const params = this.arith.params;
    if (kind === "train") this.arith.reset();
    const round: Round = {
      kind, step: this.step, version: this.version, split, params, tasks: [], folded: 0, orphans: [], dueMs: 0,
      resolve: () => {}, reject: () => {},
    };
    const done = new Promise<void>((resolve, reject) => { round.resolve = resolve; round.reject = reject; });
    this.round = round;
    const parts = deal(batches, live.length);
    const tSend = performance.now();
    const sends: Promise<void>[] = [];
    parts.forEach((part, i) => { if (part.length) sends.push(this.sendTask(round, live[i]!.id, part)); });
    await Promise.all(sends);
    if (kind === "train") {
      const s = (performance.now() - tSend) / 1000;
      this.phases.broadcast += s;
      this.tel.phase("broadcast", s);
    }
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
      this.round = null;
    }
    this.lastRound = round;
    if (kind === "train") {
      const s = (performance.now() - tWait) / 1000;
      this.phases.wait += s;
      this.tel.phase("wait", s);
    }
    return round;
  }

  private async sendTask(round: Round, peer: string, batches: number[]): Promise<void> {
    const m = this.members.get(peer)!;
    const task: Task = { id: this.nextTask++, peer, batches, done: false, lossSum: 0, correct: 0, count: 0, tokens: 0, skipped: false };
    round.tasks.push(task);
    this.members.assign(peer, Date.now() + this.deadlineMs(batches.length));
    const kind = round.kind === "train" ? Kind.Assign : Kind.Eval;
    const frames = encode({ kind, runId: this.runId, step: round.step, paramVersion: round.version, slot: m.slot, layoutHash: this.layout.hash },
      { task: task.id, epoch: this.epoch, split: round.split, batches }, this.shards || this.hasParams.get(peer) === round.version ? undefined : round.params);
    try {
      await this.channel.send(peer, frames);
      this.tel.bytes("sent", frames[0].length + frames[1].length + frames[2].length, peer);
    } catch (err) {
      this.evictMember(peer, err instanceof ConnectionError && /is not connected/.test(err.message) ? "lost its connection" : `cannot be reached: ${errorMessage(err)}`);
    }
  }

  /** One Params chunk to one worker; false (and the worker evicted) when it cannot be reached. */
  private async sendParams(peer: string, version: number, params: Float32Array, start: number, end: number): Promise<boolean> {
    const m = this.members.get(peer);
    if (!m || m.state !== "live") return false;
    const frames = encode({ kind: Kind.Params, runId: this.runId, step: this.step, paramVersion: version, slot: m.slot, layoutHash: this.layout.hash },
      { offset: start }, params.subarray(start, end));
    try {
      await this.channel.send(peer, frames);
      this.tel.bytes("sent", frames[0].length + frames[1].length + frames[2].length, peer);
      return true;
    } catch (err) {
      this.evictMember(peer, err instanceof ConnectionError && /is not connected/.test(err.message) ? "lost its connection" : `cannot be reached: ${errorMessage(err)}`);
      return false;
    }
  }

  /** Fold the gradients of the finished tasks from `r.folded` on, in task order, up to the first open task. */
  private foldArrived(r: Round): void {
    while (r.folded < r.tasks.length && r.tasks[r.folded]!.done) {
      const t = r.tasks[r.folded++]!;
      if (!t.skipped && t.grads) this.arith.add(t.grads);
    }
  }

  /** Mark the parts with a NaN/Inf value skipped, counted and answered with a Reject; true when any was. */
  private skipNonFinite(r: Round): boolean {
    let found = false;
    for (const t of r.tasks) {
      if (!t.done || t.skipped || !t.grads) continue;
      const bad = nonFiniteGradient(t.grads.values, `worker ${t.peer}`);
      if (!bad) continue;
      t.skipped = true;
      found = true;
      this.reject(t.peer, bad, r.step);
    }
    return found;
  }

  private maybeFinish(round: Round): void {
    if (this.round !== round) return;
    if (round.orphans.length === 0 && round.tasks.every((t) => t.done)) round.resolve();
  }

  // ---- membership -----------------------------------------------------------------------------------------

  private async waitForWorkers(n: number, timeoutMs: number): Promise<void> {
    if (this.members.live().length >= n) return;
    log.info(`waiting for ${n} worker(s) to join ${this.channel.endpoint} and load`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.joinWaiter = null;
        reject(new TrainingError(`only ${this.members.live().length} of ${n} worker(s) joined and loaded within ${(timeoutMs / 1000).toFixed(0)} s (endpoint ${this.channel.endpoint})`));
      }, timeoutMs);
      this.joinWaiter = () => {
        if (this.members.live().length >= n) { clearTimeout(timer); this.joinWaiter = null; resolve(); }
      };
      const onAbort = () => { clearTimeout(timer); reject(new AbortedError()); };
      this.o.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private evictMember(id: string, reason: string, lateMs = 0, cause: EvictionCause = "connection"): void {
    const m = this.members.get(id);
    if (!m || m.state !== "live") return;
    this.members.evict(id, reason);
    // how late: past its deadline, or for a dropped connection how long it had been silent
    this.tel.evicted(id, cause, (cause === "connection" ? Math.max(0, Date.now() - m.lastSeen) : Math.max(0, lateMs)) / 1000);
    this.onGone(id, "evict", `worker ${id}${m.pid ? ` (pid ${m.pid}${m.host ? ` on ${m.host}` : ""})` : ""} ${reason}: evicted`, lateMs);
  }

  private onGone(id: string, event: "evict" | "leave", message: string, lateMs = 0): void {
    this.hasParams.delete(id);
    const live = this.members.live().length;
    log.warn(`${message}; ${live} worker(s) left`);
    if (event === "evict") { this.evicted.push(id); this.tel.heartbeatMissed(id); if (lateMs > 0) this.tel.straggler(id, lateMs / 1000); }
    this.tel.membership(event, id);
    this.tel.liveWorkers(live);
    this.o.onEvent?.({ type: "member", event, worker: id, live, reason: message });
    const round = this.round;
    if (!round) return;
    const lost = round.tasks.filter((t) => t.peer === id && !t.done);
    if (!lost.length) return;
    const others = this.members.live();
    if (!others.length) {
      // nobody to hand the batches to: wait for a worker to join (elastic), fail after the join timeout
      for (const t of lost) { t.done = true; t.skipped = true; round.orphans.push(t.batches); }
      const waitS = this.o.joinTimeoutS ?? 120;
      log.warn(`step ${round.step}: no ready workers; waiting up to ${waitS} s for one to join`);
      round.orphanTimer ??= setTimeout(() => round.reject(new TrainingError(`no live workers left after ${message}, and none joined within ${waitS} s`)), waitS * 1000);
      return;
    }
    for (const t of lost) {
      t.done = true;
      t.skipped = true;
      // give its batches to the least-loaded live worker, once
      const load = (p: string) => round.tasks.filter((x) => x.peer === p && !x.done).length;
      const target = others.slice().sort((a, b) => load(a.id) - load(b.id))[0]!;
      log.info(`step ${round.step}: batches [${t.batches.join(", ")}] of ${id} reassigned to ${target.id}`);
      void this.sendTask(round, target.id, t.batches);
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const e of this.members.expire(now)) {
      this.members.get(e.member.id)!.state = "live"; // evictMember does the bookkeeping
      this.evictMember(e.member.id, e.reason, e.lateMs, e.cause);
    }
    if (now - this.lastPing >= 1000) {
      this.lastPing = now;
      for (const m of this.members.connected()) {
        // ROUTER_MANDATORY: a send to a peer whose connection is gone fails at once (EHOSTUNREACH), which
        // names the dead worker long before its step deadline (its process died, its TCP connection closed).
        void this.channel.send(m.id, encode({ kind: Kind.Heartbeat, runId: this.runId, step: this.step, paramVersion: this.version, slot: m.slot, layoutHash: this.layout.hash }))
          .catch((err) => {
            if (err instanceof ConnectionError && /is not connected/.test(err.message)) this.evictMember(m.id, "lost its connection");
          });
      }
    }
  }

  private checkAbort(): void {
    if (this.failure) throw this.failure;
    if (this.o.signal?.aborted) throw new AbortedError();
  }

  // ---- messages -------------------------------------------------------------------------------------------

  private async receiveLoop(): Promise<void> {
    for await (const { peer, frames } of this.channel.messages()) {
      try {
        this.handle(peer, frames);
      } catch (err) {
        log.error(`while handling a message from ${peer}: ${errorMessage(err)}`);
      }
    }
  }

  private reject(peer: string, err: WireError, step = 0, extra: Record<string, unknown> = {}): void {
    this.rejected[err.reason] = (this.rejected[err.reason] ?? 0) + 1;
    this.tel.rejected(err.reason, this.members.get(peer) ? peer : undefined);
    log.warn(`rejected (${err.reason}): ${err.message}`);
    this.o.onEvent?.({ type: "rejected", worker: peer, reason: err.reason, message: err.message });
    const slot = this.members.get(peer)?.slot ?? 0;
    void this.channel.send(peer, encode({ kind: Kind.Reject, runId: this.runId, step, paramVersion: this.version, slot, layoutHash: this.layout.hash }, { reason: err.reason, message: err.message, ...extra })).catch(() => {});
  }

  private handle(peer: string, frames: Buffer[]): void {
    let m: Message;
    try {
      m = decode(frames, { maxBytes: this.maxBytes, from: peer });
    } catch (err) {
      if (err instanceof WireError) { this.reject(peer, err); return; }
      throw err;
    }
    this.tel.bytes("received", frames.reduce((n, f) => n + f.length, 0), this.members.get(peer) ? peer : undefined);
    const now = Date.now();
    if (m.header.kind === Kind.Join) { this.onJoin(peer, m, now); return; }
    if (!this.members.isLive(peer)) {
      const gone = this.members.get(peer);
      if (gone && m.header.kind === Kind.Gradient) {
        // a worker evicted while it computed (frozen, too slow): its batches went to another worker
        this.reject(peer, new WireError("stale", `gradient of step ${m.header.step} from worker ${peer} is stale: it was ${gone.state} (${gone.reason ?? "?"}) and its batches were given to another worker; join again`), m.header.step, { rejoin: true });
      } else {
        this.reject(peer, new WireError("unknown-worker", `${kindName(m.header.kind)} from ${peer}, which is not a live member of run ${this.runId}${gone ? ` (${gone.state}: ${gone.reason ?? "?"})` : ""}: join first`), 0, { rejoin: true });
      }
      return;
    }
    this.members.seen(peer, now);
    switch (m.header.kind) {
      case Kind.Heartbeat: return;
      case Kind.Ready: {
        this.members.markReady(peer, now);
        this.syncParams(peer); // sharded: our slice first (the shards send theirs when the worker connects)
        const live = this.members.live().length;
        log.info(`worker ${peer} ready (backend ${String((m.body as { backend?: string }).backend ?? "?")}); ${live} ready`);
        this.tel.liveWorkers(live);
        this.joinWaiter?.();
        const r = this.round;
        if (r && r.orphans.length) {
          if (r.orphanTimer) clearTimeout(r.orphanTimer);
          r.orphanTimer = undefined;
          const orphans = r.orphans.splice(0);
          log.info(`step ${r.step}: batches [${orphans.flat().join(", ")}] handed to ${peer}`);
          for (const b of orphans) void this.sendTask(r, peer, b);
        }
        return;
      }
      case Kind.Gradient: return this.onGradient(peer, m, now);
      case Kind.EvalResult: return this.onEvalResult(peer, m as unknown as Message<EvalBody>, now);
      case Kind.Leave: {
        const reason = String((m.body as { reason?: string }).reason ?? "left");
        this.members.leave(peer, reason);
        this.onGone(peer, "leave", `worker ${peer} left (${reason})`);
        return;
      }
      default:
        this.reject(peer, new WireError("version", `unexpected ${kindName(m.header.kind)} message from worker ${peer}`));
    }
  }

  private onJoin(peer: string, m: Message, now: number): void {
    const b = m.body as { name?: string; pid?: number; host?: string; backend?: string; rejoin?: boolean };
    if (m.header.layoutHash && m.header.layoutHash !== this.layout.hash) {
      this.reject(peer, new WireError("layout", `worker ${peer} joined with parameter layout ${m.header.layoutHash}, this run uses ${this.layout.hash}`));
      return;
    }
    // the same process asking again before our Welcome reached it (its retry after 0.5 s, while this loop was
    // busy): welcome it again, but it is one join — no second event, and its state stays as it is
    const old = this.members.get(peer);
    const repeat = old !== undefined && old.state === "live" && !old.ready && old.pid === b.pid && !b.rejoin;
    const member = repeat ? old : this.members.join(peer, now, { pid: b.pid, host: b.host });
    if (!repeat) {
      this.hasParams.delete(peer); // a (re)joined worker gets the parameters inline until the next broadcast
      const live = this.members.live().length;
      log.info(`worker ${peer} joined (slot ${member.slot}${b.pid ? `, pid ${b.pid}` : ""}${b.host ? ` on ${b.host}` : ""}); loading`);
      this.tel.membership("join", peer);
      this.o.onEvent?.({ type: "member", event: "join", worker: peer, live });
    } else {
      this.members.seen(peer, now);
    }
    const welcome = {
      runId: this.runId, slot: member.slot, model: this.o.model, dataset: this.o.dataset, layoutHash: this.layout.hash,
      layoutSize: this.layout.size, maxBytes: this.maxBytes, heartbeatMs: 1000, coordinator: hostname(),
      grad: { dtype: this.o.gradDtype ?? "fp32", rows: this.o.embeddingGrads === "rows" && this.sparse !== null },
      dropout: this.o.dropout ? { rate: this.o.dropout, seed: this.o.seed } : undefined,
      shards: this.shards ? { own: this.bounds[0]!.length, others: this.shards.endpoints.map((e, i) => ({ port: Number(/:(\d+)$/.exec(e)?.[1]), ...this.bounds[i + 1]! })) } : undefined,
    };
    void this.channel.send(peer, encode({ kind: Kind.Welcome, runId: this.runId, step: this.step, paramVersion: this.version, slot: member.slot, layoutHash: this.layout.hash }, welcome))
      .catch((err) => log.warn(`cannot welcome ${peer}: ${errorMessage(err)}`));
  }

  private findTask(peer: string, taskId: number, kind: Round["kind"]): Task | null {
    const r = this.round;
    if (!r || r.kind !== kind) return null;
    return r.tasks.find((t) => t.id === taskId && t.peer === peer && !t.done) ?? null;
  }

  private onGradient(peer: string, m: Message, now: number): void {
    const r = this.round;
    const want = { runId: this.runId, step: r?.step ?? -1, paramVersion: r?.version ?? -1, layoutHash: this.layout.hash, size: this.arith.size, sparse: this.sparse };
    const bad = checkGradient(m, want, `worker ${peer}`, { finite: false }); // NaN/Inf: found at the reduce
    const body = m.body as unknown as GradBody;
    if (bad && bad.reason !== "nan") { this.reject(peer, bad, m.header.step); return; }
    const task = r && r.kind === "train" ? this.findTask(peer, Number(body.task), "train") : null;
    if (!task) {
      this.reject(peer, new WireError("stale", `gradient from worker ${peer} for task ${body.task} of step ${m.header.step} matches no open task`), m.header.step);
      return;
    }
    this.members.done(peer, now);
    task.done = true;
    if (bad) {
      // NaN/Inf: skip this contribution for the step, count it, keep the worker
      task.skipped = true;
      this.reject(peer, bad, m.header.step);
    } else {
      this.gradientBytes += (m.half ?? m.payload).byteLength + (m.rows?.byteLength ?? 0);
      task.grads = { values: m.half ?? m.payload, scale: m.half ? 1 / Number((body as { gradScale?: number }).gradScale ?? 1) : 1, rows: m.rows };
      task.lossSum = Number(body.lossSum); task.correct = Number(body.correct); task.count = Number(body.count);
      task.tokens = Number(body.tokens ?? 0);
      if (Array.isArray(body.ids)) task.ids = body.ids.map(Number);
      if (typeof body.seconds === "number") {
        this.tel.phase("compute", body.seconds, peer);
        this.slowestPerBatchMs = Math.max(this.slowestPerBatchMs, (body.seconds * 1000) / Math.max(1, task.batches.length));
      }
      this.foldArrived(r!);
    }
    this.reassignIdle(peer);
    this.maybeFinish(r!);
  }

  private onEvalResult(peer: string, m: Message<EvalBody>, now: number): void {
    const task = this.findTask(peer, Number(m.body.task), "eval");
    if (!task) { log.debug(`late evaluation result from ${peer} ignored`); return; }
    this.members.done(peer, now);
    task.done = true;
    task.lossSum = Number(m.body.lossSum); task.correct = Number(m.body.correct); task.count = Number(m.body.count);
    this.reassignIdle(peer);
    this.maybeFinish(this.round!);
  }

  /** After a task finished, the worker is due again only if it has other open tasks. */
  private reassignIdle(peer: string): void {
    const open = this.round?.tasks.filter((t) => t.peer === peer && !t.done) ?? [];
    if (open.length) this.members.assign(peer, Date.now() + this.deadlineMs(open.reduce((n, t) => n + t.batches.length, 0)));
  }
}
