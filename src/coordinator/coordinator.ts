// The coordinator: owns the parameters and Adam, runs synchronous data-parallel SGD over ZeroMQ.
//
// One epoch: the sampler's seeded order of batch indices, taken a step at a time (one batch per ready worker,
// or --batches-per-step) → one step (./step.ts: a round of tasks, then mean → clip → Adam → broadcast) → the
// step reported and, every --checkpoint-every steps, checkpointed → at the end, validation (an eval round)
// and a checkpoint. Who is a member and every message in and out: ./peers.ts; tasks and results: ./rounds.ts.
import { TrainingError, AbortedError, errorMessage } from "../errors.js";
import { taskOf, type ModelTask } from "../config.js";

/** What a task's counts count (see StepResult in src/engine/types.ts). */
const UNITS: Record<ModelTask, string> = { classify: "reviews", lm: "predicted tokens", sgns: "skip-gram pairs" };
import { logger } from "../output.js";
import { NO_TELEMETRY, type Telemetry } from "../telemetry.js";
import { paramLayout, initParams, type ParamLayout } from "../model/layout.js";
import type { Adam, AdamState } from "../optim/adam.js";
import { StepArithmetic } from "../optim/step.js";
import { learningRate } from "../optim/schedule.js";
import { sparseBlockOf, type SparseBlock } from "../protocol/gradcodec.js";
import { messageLimitFor, newRunId, workerName } from "../protocol/wire.js";
import { sliceBounds, sliceView, type SliceView } from "../protocol/slices.js";
import { ShardLeader } from "./shard-leader.js";
import { releaseMessages } from "../heap.js";
import { Peers } from "./peers.js";
import { Rounds } from "./rounds.js";
import { refusedBatches } from "./round.js";
import { wallClock } from "../clock.js";
import { applyStep, type StepContext, type StepOutcome } from "./step.js";
import { EpochSampler, dealRoundRobin, splitEven } from "./sampler.js";
import type { CoordinatorOptions, CoordinatorResult, CheckpointState, EpochStats, EpochSummary } from "./types.js";

const log = logger("coordinator");

/** How often a training batch reads each embedding row (0 to 1), over the epoch's batches: sharded slices are
 *  balanced in the bytes a task moves with it (the most frequent words' rows travel in almost every task, the
 *  rarest almost never). Null without the batches' rows. */
function rowTraffic(block: SparseBlock, o: CoordinatorOptions): Float64Array | null {
  if (!o.batchRows || o.trainBatches === 0) return null;
  const w = new Float64Array(block.rows);
  for (let i = 0; i < o.trainBatches; i++) for (const r of o.batchRows("train", i)) w[r]! += 1;
  for (let r = 0; r < w.length; r++) w[r]! /= o.trainBatches;
  return w;
}

export class Coordinator {
  readonly runId = newRunId();
  readonly layout: ParamLayout;
  readonly adam: Adam;
  /** Parameters (two alternating buffers), Adam's moments and the step's sum in one WebAssembly arena. */
  private readonly arith: StepArithmetic;
  /** The embedding block (gradients may carry only its touched rows); null when sharded (dense slices). */
  private readonly sparse: SparseBlock | null;
  /** The slices of a sharded coordinator (one, the whole vector, otherwise) and their embedding rows. */
  private readonly bounds: SliceView[];
  /** Sharded: the whole vector until the shards take their slices (GloVe and resume write into it). */
  private readonly full: Float32Array | null;
  private shards: ShardLeader | null = null;
  private readonly tel: Telemetry;
  private readonly peers: Peers;
  private readonly rounds: Rounds;
  private readonly maxBytes: number;
  private step = 0;
  private version = 0;
  private epoch = 0;
  private cursor = 0;
  /** The step size this epoch's order is grouped for: the batches per step when it began (or as checkpointed). */
  private orderGroup = 1;
  private epochStats: EpochStats = { lossSum: 0, correct: 0, count: 0, steps: 0 };
  private readonly phases = { wait: 0, reduce: 0, optimizer: 0, broadcast: 0, step: 0 };
  /** Tasks carry the rows their batches read (and the dense parameters); no broadcast. */
  private readonly rowPull: boolean;
  /** Workers send the embedding's gradient as its touched rows (--embedding-grads rows, a model with an embedding). */
  private readonly gradRows: boolean;
  private restoredAdam: AdamState | null = null;
  /** The epoch's sampler, while an epoch runs. */
  private sampler: EpochSampler | null = null;

  constructor(private readonly o: CoordinatorOptions) {
    this.layout = paramLayout(o.model);
    const initial = o.initialParams ?? initParams(o.model, o.seed, o.init);
    if (initial.length !== this.layout.size) throw new TrainingError(`initial parameters have ${initial.length} values; the layout needs ${this.layout.size}`);
    const k = Math.max(1, Math.floor(o.coordinatorShards ?? 1));
    // the embedding block travels as rows where the run asks for them (gradients, pull); sharded, each slice
    // holds whole rows and sums and sends only its own
    const block = sparseBlockOf(this.layout);
    const pullRows = (o.pull ?? "rows") === "rows", gradRows = (o.embeddingGrads ?? "rows") === "rows";
    this.gradRows = gradRows && block !== null;
    const rowsForm = block !== null && (gradRows || pullRows);
    this.bounds = sliceBounds(this.layout.size, k, rowsForm ? block : null, k > 1 && rowsForm && pullRows && gradRows ? rowTraffic(block!, o) : null).map((b) => sliceView(b, rowsForm ? block : null));
    this.sparse = k > 1 ? this.bounds[0]!.block : block;
    this.full = k > 1 ? Float32Array.from(initial) : null;
    const own = this.bounds[0]!.length;
    this.rowPull = pullRows && o.batchRows !== undefined && this.sparse !== null;
    this.arith = new StepArithmetic(own, { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay }, initial.subarray(0, own), this.sparse);
    this.adam = this.arith.adam;
    this.tel = o.telemetry ?? NO_TELEMETRY;
    this.maxBytes = messageLimitFor(this.layout.size);
    this.peers = new Peers({
      runId: this.runId, layout: this.layout, maxBytes: this.maxBytes, tel: this.tel, onEvent: o.onEvent,
      heartbeatTimeoutS: o.heartbeatTimeoutS ?? 10, joinTimeoutS: o.joinTimeoutS ?? 300,
      position: () => ({ step: this.step, version: this.version }),
      welcome: () => this.welcome(),
    });
    this.rounds = new Rounds({
      peers: this.peers, arith: this.arith, tel: this.tel, layoutHash: this.layout.hash, runId: this.runId, sparse: this.sparse,
      sharded: k > 1, workers: o.workers, batchesPerStep: o.batchesPerStep, stepTimeoutS: o.stepTimeoutS,
      joinTimeoutS: o.joinTimeoutS ?? 120, signal: o.signal, phases: this.phases, batchSamples: o.batchSamples,
      batchRows: this.rowPull ? o.batchRows : undefined, batchCost: o.batchCost,
      // the tasks are out: Adam's other rows, then the last step's gradient buffers freed while the workers compute
      afterSend: () => { this.arith.finish(); if (this.rowPull) void this.shards?.links.finish(this.shardHead()); releaseMessages(); },
      nextBatches: () => this.sampler?.peek(this.perStep()) ?? [],
      slices: k > 1 && this.rowPull ? { own: this.bounds[0]!, others: this.bounds.slice(1), rows: block!.rows } : undefined,
      pullShards: (task, peer, rows) => { rows.forEach((r, i) => void this.shards?.links.pull(this.shardHead(), i, task, peer, r)); },
    });
  }

  get endpoint(): string { return this.peers.endpoint; }

  /** Live members, and the entries held in all (departed ones are kept, bounded, for their slot). */
  get membership(): { live: number; known: number } {
    return { live: this.peers.members.connected().length, known: this.peers.members.size };
  }

  /** The deadline a task of `batches` batches gets now, ms (automatic: from the slowest task measured here). */
  deadlineFor(batches: number): number { return this.rounds.deadlineMs(batches); }

  /** The current parameters (a view that the next step overwrites: copy to keep). */
  get params(): Float32Array { return this.full ?? this.arith.params; }

  /** Bind and start answering joins (workers may connect before `run`). */
  async listen(): Promise<string> {
    const endpoint = await this.peers.bind(this.o.bind, this.o.curve, {
      ready: (peer) => { this.shards?.syncParams(this.peers, peer, this.arith, this.version, this.o.paramChunk); this.rounds.adopt(peer); },
      started: (peer, m) => this.rounds.started(peer, m),
      gradient: (peer, m, now) => this.rounds.gradient(peer, m, now),
      evalResult: (peer, m, now) => this.rounds.evalResult(peer, m, now),
      gone: (id, message) => this.rounds.reassign(id, message),
      overdue: (now) => this.rounds.overdue(now),
    });
    if (this.full && this.o.remoteShards) this.shards = ShardLeader.connect(this.bounds, this.rowPull, await this.o.remoteShards(this.bounds.length - 1), this.full, this.o.curve);
    else if (this.full) this.shards = await ShardLeader.start(this.bounds, this.rowPull, endpoint, this.full, this.o.curve);
    // a shard that goes away ends the run at once, not at the next question it cannot answer
    if (this.shards) this.shards.links.onLost = (err) => this.rounds.current?.reject(err);
    log.info(`listening on ${endpoint} (run ${this.runId}, ${this.layout.size} parameters, layout ${this.layout.hash}, message limit ${this.maxBytes} bytes)`);
    this.o.onEvent?.({ type: "listening", endpoint, runId: this.runId });
    return endpoint;
  }

  /** Restore optimizer state and position (resume). */
  restore(s: { adam: { m: Float32Array; v: Float32Array; t: number }; step: number; epoch: number; cursor: number; orderGroup?: number; paramVersion: number; epochStats?: EpochStats }): void {
    if (this.full) this.restoredAdam = s.adam; // sliced out when the shards start
    else this.adam.load(s.adam);
    this.step = s.step;
    this.version = s.paramVersion;
    this.epoch = s.epoch;
    this.cursor = s.cursor;
    this.orderGroup = s.orderGroup ?? 1; // checkpoints from before grouping: the plain shuffle
    if (s.cursor > 0 && s.epochStats) this.epochStats = { ...s.epochStats };
  }

  async run(): Promise<CoordinatorResult> {
    const o = this.o;
    const epochs: EpochSummary[] = [];
    try {
      await this.shards?.handOut(this.shardHead(), this.arith, this.peers, this.restoredAdam, o.paramChunk);
      await this.peers.waitFor(o.workers, (o.joinTimeoutS ?? 120) * 1000, o.signal);
      let samples = 0;
      for (let epoch = this.epoch; epoch < o.epochs; epoch++) {
        this.epoch = epoch;
        const summary = await this.runEpoch(epoch, (n) => { samples += n; });
        epochs.push(summary);
        this.cursor = 0;
        this.epochStats = { lossSum: 0, correct: 0, count: 0, steps: 0 };
        await this.checkpoint("epoch", epoch + 1);
      }
      const p = this.peers;
      return { runId: this.runId, params: (await this.gathered()).params, layout: this.layout, steps: this.step, epochs, rejected: { ...p.rejected }, evicted: [...p.evicted], phases: { ...this.phases }, samples, gradientBytes: this.rounds.gradientBytes, transportBytes: this.peers.bytes };
    } catch (err) {
      // the exit checkpoint: what was learned so far is kept
      try { await this.checkpoint("exit", this.epoch); } catch (e) { log.warn(`exit checkpoint failed: ${errorMessage(e)}`); }
      throw err;
    }
  }

  /** Batches per step: fixed by --batches-per-step, or elastic (0): one per ready worker at the start of each
   *  step, so a worker that joins takes part from the next step and one that leaves shrinks the step. */
  private perStep(now = true): number {
    return Math.max(0, this.o.batchesPerStep ?? 0) || Math.max(1, now ? this.peers.members.live().length : this.o.workers);
  }

  private async runEpoch(epoch: number, addSamples: (n: number) => void): Promise<EpochSummary> {
    const o = this.o, t0 = performance.now(), st = this.epochStats;
    const stepsPerEpoch = Math.min(o.maxStepsPerEpoch || Infinity, Math.ceil(o.trainBatches / this.perStep(false)));
    // a new epoch is cut into steps of the size it starts with (checkpointed); a resumed one keeps its order
    if (this.cursor === 0) this.orderGroup = o.batchCost ? this.perStep() : 1;
    const sampler = new EpochSampler(o.trainBatches, epoch, o.seed, o.batchCost ? { group: this.orderGroup, cost: o.batchCost } : undefined);
    this.sampler = sampler;
    if (this.cursor > 0) {
      // resume within the epoch: the same order, without the batches already used
      sampler.seek(this.cursor);
      if (!st.steps) st.steps = Math.ceil(this.cursor / this.perStep(false));
      log.info(`epoch ${epoch + 1}: resuming after ${this.cursor} of ${o.trainBatches} batches (step ${this.step})`);
    }
    const more = () => (!o.maxStepsPerEpoch || st.steps < o.maxStepsPerEpoch) && !sampler.exhausted();
    while (more()) {
      const batches = sampler.take(this.perStep());
      this.adam.o.lr = learningRate(o.lr, this.step, stepsPerEpoch * o.epochs, o.schedule);
      const r = await this.trainStep(batches, epoch);
      // batches whose gradients were refused go back, to be dealt again in a later step of this epoch
      const back = new Set(r.refused);
      sampler.markDone(batches.filter((b) => !back.has(b)));
      sampler.giveBack(r.refused);
      this.cursor = sampler.position();
      st.steps++;
      st.lossSum += r.lossSum; st.correct += r.correct; st.count += r.count;
      addSamples(r.count);
      this.reportApplied(epoch);
      const stepsInEpoch = o.maxStepsPerEpoch ? stepsPerEpoch : st.steps + Math.ceil((o.trainBatches - this.cursor) / this.perStep());
      o.onEvent?.({ type: "step", step: this.step, epoch, stepInEpoch: st.steps, stepsInEpoch, loss: r.count ? r.lossSum / r.count : NaN, accuracy: r.count ? r.correct / r.count : NaN, samples: r.count, seconds: r.seconds, gradNorm: r.norm });
      if ((o.checkpointEvery ?? 0) > 0 && this.step % o.checkpointEvery! === 0 && more()) await this.checkpoint("step", epoch);
    }
    const val = await this.evaluate("val", o.maxValBatches ? Math.min(o.maxValBatches, o.valBatches) : o.valBatches);
    const { lossSum, correct, count, steps } = st;
    const summary: EpochSummary = {
      epoch: epoch + 1, trainLoss: count ? lossSum / count : NaN, trainAccuracy: count ? correct / count : NaN,
      valLoss: val.loss, valAccuracy: val.accuracy, valCount: val.count, seconds: (performance.now() - t0) / 1000, steps,
    };
    this.tel.validation({ epoch: epoch + 1, loss: val.loss, accuracy: val.accuracy, task: taskOf(o.model) });
    log.info(`epoch ${epoch + 1}/${o.epochs}: train loss ${summary.trainLoss.toFixed(4)} acc ${(summary.trainAccuracy * 100).toFixed(2)}% · val loss ${val.loss.toFixed(4)} acc ${(val.accuracy * 100).toFixed(2)}% (${val.count} ${UNITS[taskOf(o.model)]}) · ${summary.seconds.toFixed(1)} s`);
    o.onEvent?.({ type: "epoch", ...summary });
    return summary;
  }

  private async trainStep(batches: number[], epoch: number): Promise<StepOutcome & { refused: number[] }> {
    const t0 = performance.now();
    await this.needWorkers();
    this.step++;
    let out: Omit<StepOutcome, "seconds">, refused: number[];
    try {
      const r = await this.rounds.run("train", "train", { step: this.step, version: this.version, epoch }, batches, dealRoundRobin);
      out = await applyStep(this.stepContext(), r, this.version + 1);
      refused = refusedBatches(r);
    } catch (err) {
      this.step--; // nothing was applied: checkpoints must not count this step
      throw err;
    }
    this.version++;
    if (this.shards && out.count === 0) for (const m of this.peers.members.live()) this.shards.syncParams(this.peers, m.id, this.arith, this.version, this.o.paramChunk); // same values, new version
    this.tel.paramVersion(this.version);
    const seconds = (performance.now() - t0) / 1000;
    this.phases.step += seconds;
    this.tel.step({ step: this.step, epoch: epoch + 1, loss: out.count ? out.lossSum / out.count : NaN, accuracy: out.count ? out.correct / out.count : NaN, samples: out.count, tokens: out.tokens, seconds, task: taskOf(this.o.model) });
    return { ...out, seconds, refused };
  }

  private stepContext(): StepContext {
    return {
      peers: this.peers, rounds: this.rounds, arith: this.arith, adam: this.adam, tel: this.tel, clip: this.o.clip, paramChunk: this.o.paramChunk, rowPull: this.rowPull,
      shards: this.shards?.links ?? null, shardHead: () => this.shardHead(), phases: this.phases,
    };
  }

  async evaluate(split: "val" | "train", batchCount: number): Promise<{ loss: number; accuracy: number; count: number }> {
    if (batchCount === 0) return { loss: NaN, accuracy: NaN, count: 0 };
    await this.needWorkers();
    const all = Array.from({ length: batchCount }, (_, i) => i);
    const r = await this.rounds.run("eval", split, { step: this.step, version: this.version, epoch: this.epoch }, all, splitEven);
    let lossSum = 0, correct = 0, count = 0;
    for (const t of r.tasks) if (t.done && !t.skipped) { lossSum += t.lossSum; correct += t.correct; count += t.count; }
    return { loss: count ? lossSum / count : NaN, accuracy: count ? correct / count : NaN, count };
  }

  /** Stop on abort; with no ready worker, wait (elastic) for one to join. */
  private async needWorkers(): Promise<void> {
    if (this.o.signal?.aborted) throw new AbortedError();
    if (this.peers.members.live().length > 0) return;
    log.warn(`no ready workers: waiting up to ${this.o.joinTimeoutS ?? 120} s for one to join`);
    await this.peers.waitFor(1, (this.o.joinTimeoutS ?? 120) * 1000, this.o.signal);
  }

  /** Report the step just applied: who computed which batches (and the sample ids they read). */
  private reportApplied(epoch: number): void {
    const r = this.rounds.last;
    if (!r || r.kind !== "train") return;
    const inSum = r.tasks.filter((t) => t.done && !t.skipped && t.grads);
    const parts = inSum.map((t) => ({ worker: workerName(t.peer), batches: t.batches, ids: t.ids ?? null }));
    log.debug(`step ${this.step} applied (epoch ${epoch + 1}): ${parts.map((p) => `${p.worker} [${p.batches.join(", ")}]`).join(", ")}`);
    if (!this.o.onApplied) return;
    const timeline = { applied: wallClock(), tasks: inSum.map((t) => ({ task: t.id, worker: workerName(t.peer), queued: t.queuedClock ?? 0, started: t.startedClock ?? 0, gradient: t.gradientClock ?? 0 })) };
    this.o.onApplied({ step: this.step, epoch: epoch + 1, parts, timeline });
  }

  private async checkpoint(reason: CheckpointState["reason"], epoch: number): Promise<void> {
    if (!this.o.onCheckpoint) return;
    const g = await this.gathered();
    await this.o.onCheckpoint({ reason, step: this.step, epoch, cursor: this.cursor, orderGroup: this.orderGroup, paramVersion: this.version, runId: this.runId, layout: this.layout, params: g.params, adam: g.adam, epochStats: { ...this.epochStats } });
  }

  private shardHead() { return { runId: this.runId, layoutHash: this.layout.hash, version: this.version }; }

  /** The whole parameter vector and Adam state (sharded: gathered from the shards; row pull: Adam finished, and
   *  rows done ahead for a step not taken, as when the run stopped in a round, put back). */
  private async gathered(): Promise<{ params: Float32Array; adam: Adam }> {
    this.arith.finish();
    this.arith.discardAhead();
    return this.shards ? this.shards.gathered(this.shardHead(), this.arith, this.restoredAdam) : { params: this.params, adam: this.adam };
  }

  /** What a joining worker is told: the run, the model, the dataset's path, how to send gradients. */
  private welcome() {
    const o = this.o;
    return {
      runId: this.runId, model: o.model, dataset: o.dataset, layoutHash: this.layout.hash, layoutSize: this.layout.size, maxBytes: this.maxBytes, heartbeatMs: 1000,
      grad: { dtype: o.gradDtype ?? "fp32", rows: this.gradRows },
      pull: this.rowPull ? "rows" as const : "dense" as const,
      dropout: o.dropout ? { rate: o.dropout, seed: o.seed } : undefined,
      seed: o.seed,
      shards: this.shards ? { own: this.bounds[0]!.length, others: this.shards.links.endpoints.map((e, i) => ({ port: Number(/:(\d+)$/.exec(e)?.[1]), offset: this.bounds[i + 1]!.offset, length: this.bounds[i + 1]!.length, endpoint: this.shards!.links.remote ? e : undefined, serverKey: this.shards!.links.serverKeys[i] ?? undefined })) } : undefined,
    };
  }

  /** Tell every worker (and shard) to stop — `final` when the run is over, so that workers exit rather than wait
   *  for it to resume — and close the socket. */
  async close(reason = "run finished", final = false): Promise<void> {
    await this.shards?.links.close(this.shardHead());
    await this.peers.close(reason, final);
  }
}
