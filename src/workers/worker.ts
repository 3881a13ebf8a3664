// A worker: joins the coordinator over ZeroMQ (./join.ts), loads the dataset from the shared path and the gradient
// engine, then answers Assign with Started (at once) and the gradient of the loss SUM over its batches, and Eval with
// loss and accuracy. Heartbeats go out every second when the JS thread is free (a busy step: the step's deadline).
import { hostname } from "node:os";
import { join as joinPath } from "node:path";
import { ProtocolError, TrainingError, AbortedError, errorMessage } from "../errors.js";
import { settledWithin } from "../wait.js";
import { logger, type Logger } from "../output.js";
import { NO_TELEMETRY, type Telemetry } from "../telemetry.js";
import { Kind, encode, decode, kindName, WireError, type Message } from "../protocol/wire.js";
import { readBody, type Bodies, type AssignBody, type EvalBody, type GradientBody } from "../protocol/bodies.js";
import { ParamAssembler } from "../protocol/params.js";
import { encodeRows, sparseBlockOf, type SparseBlock } from "../protocol/gradcodec.js";
import { toHalves } from "../optim/half-encoder.js";
import { DealerChannel, type CurveClientKeys } from "../transport/zmq/index.js";
import { taskOf } from "../config.js";
import type { Batch } from "../dataset/batch.js";
import { openTrainingData, trainingSplitFor, type TrainingData, type TrainingSplit } from "../dataset/training.js";
import { loadVocabCounts } from "../dataset/vocab.js";
import { createEngine, batchToEngine, dropoutSeed, samplingSeed, VALIDATION_SAMPLING_EPOCH, type Engine, type EngineBatch, type RowParams } from "../engine/index.js";
import { RowAccumulator } from "./rows.js";
import type { BackendChoice } from "../tfjs.js";
import { CoordinatorStopping, join, type Welcome } from "./join.js";
import { WorkerShards } from "./shards.js";
import { tuneHeapForMessages, releaseMessages } from "../heap.js";
export { join, type Welcome };
export interface WorkerOptions {
  /** tcp://host:port of the coordinator. */
  coordinator: string;
  name: string;
  /** Dataset directory here (default: the path the coordinator announces). */
  dataset?: string;
  backend?: BackendChoice;
  /** Give up joining after this many seconds. */
  connectTimeoutS?: number;
  /** Exit when the coordinator is silent this long (seconds). */
  coordinatorTimeoutS?: number;
  telemetry?: Telemetry;
  signal?: AbortSignal;
  /** Called after every step (e.g. to report engine memory). */
  onStep?: () => void;
  /** ZeroMQ CURVE keys (server public key, own pair). */
  curve?: CurveClientKeys;
  /** --insecure: a shard off this machine without CURVE keys is allowed (../security/policy.ts). */
  insecure?: boolean;
}

export interface WorkerResult {
  steps: number; evals: number; samples: number;
  /** Why the coordinator stopped this worker (its Stop message's reason). */
  reason: string;
  /** The Stop came at the end of the run (else the coordinator was interrupted and will resume). */
  final: boolean;
  /** The run it took part in last. */
  runId: number;
  /** It left the run because a coordinator shard went away (the coordinator stops such a run; it may resume). */
  shardLost?: boolean;
}

/**
 * Run as a worker until the coordinator says Stop. When the coordinator at the same address restarts (killed
 * and started again, e.g. with --resume or --auto-resume), it answers with another run id: the worker then
 * joins the new run from scratch (new Welcome, parameters, shards) instead of waiting on the old one.
 */
export async function runWorker(o: WorkerOptions): Promise<WorkerResult> {
  const total: WorkerResult = { steps: 0, evals: 0, samples: 0, reason: "", final: false, runId: 0 };
  for (;;) {
    const r = await runOnce(o);
    total.steps += r.steps; total.evals += r.evals; total.samples += r.samples; total.reason = r.reason; total.final = r.final; total.runId = r.runId; total.shardLost = r.shardLost;
    if (!r.newRun) return total;
  }
}

async function runOnce(o: WorkerOptions): Promise<WorkerResult & { newRun?: number }> {
  const log = logger(`worker ${o.name}`);
  log.info(`joining the coordinator at ${o.coordinator}`);
  const joined = await join(o.coordinator, o.name, { timeoutS: o.connectTimeoutS ?? 120, signal: o.signal, log, curve: o.curve }).catch((err: unknown) => {
    if (!(err instanceof CoordinatorStopping)) throw err;
    log.info(`the coordinator at ${o.coordinator} is stopping run ${err.runId} (${err.reason}): not joining it`);
    return { steps: 0, evals: 0, samples: 0, reason: err.reason, final: err.final, runId: err.runId };
  });
  if (!("channel" in joined)) return joined;
  const { channel, welcome, routingId } = joined;
  tuneHeapForMessages(welcome.layoutSize);
  const datasetDir = o.dataset ?? welcome.dataset;
  let engine: Engine, data: TrainingData;
  try {
    data = await openTrainingData(datasetDir);
    // the pretraining tasks draw candidates, negatives and subsampling from the vocabulary's token counts
    const counts = taskOf(welcome.model) === "classify" ? undefined : loadVocabCounts(joinPath(datasetDir, "vocab.json")).counts;
    engine = await createEngine({ model: welcome.model, backend: o.backend ?? "auto", dropout: welcome.dropout?.rate, counts });
  } catch (err) {
    await channel.send(encode({ kind: Kind.Leave, runId: welcome.runId, step: 0, paramVersion: 0, slot: welcome.slot, layoutHash: welcome.layoutHash }, { reason: `cannot start: ${errorMessage(err)}` })).catch(() => {});
    channel.close();
    throw err;
  }
  if (engine.layout.hash !== welcome.layoutHash || engine.layout.size !== welcome.layoutSize) {
    channel.close();
    engine.dispose();
    throw new ProtocolError(`parameter layout mismatch: the coordinator uses ${welcome.layoutHash} (${welcome.layoutSize} values), this worker's engine ${engine.layout.hash} (${engine.layout.size})`);
  }
  const task = taskOf(welcome.model);
  const split = trainingSplitFor(task);
  log.info(`joined run ${welcome.runId} as slot ${welcome.slot}: ${task === "classify" ? "" : `task ${task}, `}backend ${engine.backend}, dataset ${datasetDir} (${data.count(split)} ${split} / ${data.count("val")} val batches)${welcome.dropout?.rate ? `, dropout ${welcome.dropout.rate} on the classifier's input` : ""}`);
  const session = new Session(o, log, channel, routingId, welcome, engine, data);
  try {
    return await session.run();
  } finally {
    session.close();
  }
}

/** One run of one worker: the message loop and what it does with each message. */
class Session {
  private readonly tel: Telemetry;
  private readonly assembler: ParamAssembler;
  /** How gradients go on the wire: half floats or float32; the embedding dense or as touched rows. */
  private readonly wire: { f16: boolean; block: SparseBlock | null };
  /** A sharded coordinator's shards (none otherwise). */
  private readonly shards: WorkerShards;
  private readonly result: WorkerResult & { newRun?: number };
  private readonly from: string;
  /** Where an Assign's batch indices point (trainingSplitFor). */
  private readonly split: TrainingSplit;
  private lastHeard = Date.now();
  private stopReason = "";
  private rejoining = false;
  private beat: NodeJS.Timeout | null = null;
  private readonly onAbort = () => this.leaveNow();

  constructor(private readonly o: WorkerOptions, private readonly log: Logger, private readonly channel: DealerChannel, private readonly routingId: string, private readonly welcome: Welcome,
    private readonly engine: Engine, private readonly data: TrainingData) {
    this.tel = o.telemetry ?? NO_TELEMETRY;
    this.result = { steps: 0, evals: 0, samples: 0, reason: "", final: false, runId: welcome.runId };
    this.from = `coordinator ${o.coordinator}`;
    this.split = trainingSplitFor(taskOf(welcome.model));
    this.assembler = new ParamAssembler(welcome.layoutSize);
    const rows = welcome.grad?.rows || welcome.pull === "rows";
    this.wire = { f16: welcome.grad?.dtype === "fp16", block: rows ? sparseBlockOf(engine.layout) : null };
    this.shards = new WorkerShards({ coordinator: o.coordinator, routingId, curve: o.curve, insecure: o.insecure, name: o.name, log, tel: this.tel }, welcome, this.wire.block, this.assembler,
      this.encode(Kind.Join, { step: 0, version: 0 }, { name: o.name, pid: process.pid }), (endpoint, k) => this.shardGone(endpoint, k));
  }

  private encode<K extends Kind>(kind: K, at: { step: number; version: number }, body?: Bodies[K], payload?: Float32Array | Uint16Array, rows?: Uint32Array) {
    return encode({ kind, runId: this.welcome.runId, step: at.step, paramVersion: at.version, slot: this.welcome.slot, layoutHash: this.welcome.layoutHash }, body, payload, rows);
  }

  private send<K extends Kind>(kind: K, body?: Bodies[K], at = { step: 0, version: 0 }): Promise<void> {
    return this.channel.send(this.encode(kind, at, body));
  }

  async run(): Promise<WorkerResult & { newRun?: number }> {
    await this.send(Kind.Ready, { backend: this.engine.backend });
    const silentMs = (this.o.coordinatorTimeoutS ?? 60) * 1000;
    this.beat = setInterval(() => {
      if (Date.now() - this.lastHeard <= silentMs) { void this.send(Kind.Heartbeat, {}).catch(() => {}); return; }
      this.stopReason = `the coordinator at ${this.o.coordinator} has been silent for ${((Date.now() - this.lastHeard) / 1000).toFixed(0)} s`;
      this.log.error(this.stopReason);
      this.channel.close();
    }, this.welcome.heartbeatMs);
    this.o.signal?.addEventListener("abort", this.onAbort, { once: true });
    for await (const { frames } of this.channel.messages()) {
      this.lastHeard = Date.now();
      let more: boolean;
      try {
        more = await this.handle(frames);
      } catch (err) {
        if (this.result.shardLost) break; // leaving: the channel closed under the task
        throw err;
      }
      if (this.o.signal?.aborted || !more || this.result.shardLost) break;
      this.lastHeard = Date.now();
    }
    if (this.stopReason === "interrupted") throw new AbortedError("interrupted: left the run (Leave sent, so the coordinator gives any open batches to another worker)");
    if (this.stopReason) throw new TrainingError(this.stopReason);
    if (this.result.shardLost) this.log.info(`left run ${this.welcome.runId} (${this.result.reason}) after ${this.result.steps} step(s)`);
    else if (!this.result.newRun) this.log.info(`stopped by the coordinator (${this.result.reason}) after ${this.result.steps} step(s)`);
    return this.result;
  }

  /** One message from the coordinator; false when the session ends. */
  private async handle(frames: Buffer[]): Promise<boolean> {
    let m: Message;
    try {
      m = decode(frames, { maxBytes: this.welcome.maxBytes, from: this.from });
      if (m.header.runId !== this.welcome.runId) return this.otherRun(m);
      switch (m.header.kind) {
        case Kind.Welcome: this.rejoining = false; return true;
        case Kind.Heartbeat: return true;
        case Kind.Dense: this.shards.putDense(m, this.welcome.layoutSize); return true;
        case Kind.Stop: { const b = readBody(m, Kind.Stop, this.from); this.result.reason = b.reason; this.result.final = b.final === true; return false; }
        case Kind.Reject: await this.rejected(m); return true;
        case Kind.Params: this.assembler.put(m, this.from); this.tel.bytes("received", m.payload.byteLength, this.o.name); return true;
        case Kind.Assign: await this.train(m, readBody(m, Kind.Assign, this.from)); return true;
        case Kind.Eval: await this.evaluate(m, readBody(m, Kind.Eval, this.from)); return true;
        default: this.log.warn(`ignored an unexpected ${kindName(m.header.kind)} message`); return true;
      }
    } catch (err) {
      if (err instanceof WireError) { this.log.warn(`ignored a message: ${err.message}`); return true; }
      throw err;
    }
  }

  /** A message of another run: the coordinator at this address restarted (e.g. kill -9, then --resume). */
  private otherRun(m: Message): boolean {
    if (m.header.kind === Kind.Reject) {
      const rb = readBody(m, Kind.Reject, this.from);
      if (rb.rejoin || rb.reason === "unknown-worker") {
        this.log.warn(`the coordinator at ${this.o.coordinator} restarted (run ${this.welcome.runId} → ${m.header.runId}): joining the new run`);
        this.result.reason = "coordinator restarted";
        this.result.newRun = m.header.runId;
        return false;
      }
    }
    this.log.warn(`ignored a ${kindName(m.header.kind)} of run ${m.header.runId}`);
    return true;
  }

  private async rejected(m: Message): Promise<void> {
    const rb = readBody(m, Kind.Reject, this.from);
    this.log.warn(`coordinator rejected a message: ${rb.message}`);
    if ((rb.reason === "unknown-worker" || rb.rejoin) && !this.rejoining) {
      // evicted (e.g. this process was frozen past its deadline, its gradient is stale): join again once,
      // everything is loaded; further rejections sent before the coordinator saw this Join are ignored
      this.rejoining = true;
      this.log.warn("no longer a member of the run: joining again");
      await this.rejoin();
    }
  }

  private async rejoin(): Promise<void> {
    await this.send(Kind.Join, { name: this.o.name, pid: process.pid, host: hostname(), rejoin: true });
    await this.send(Kind.Ready, { backend: this.engine.backend });
  }

  /** The parameters an Assign or Eval runs on; null (after leaving and joining again) when chunks went missing. */
  private async paramsFor(m: Message): Promise<Float32Array | null> {
    const h = m.header;
    if (m.payload.length && m.payload.length !== this.welcome.layoutSize) throw new ProtocolError(`${kindName(h.kind)} carries ${m.payload.length} parameters, expected ${this.welcome.layoutSize}`);
    // sharded: the shards' slices come on other sockets and may still be on their way
    const params = this.assembler.paramsFor(m) ?? (this.shards.any ? await this.assembler.waitFor(h.paramVersion, 60_000) : null);
    if (params) return params;
    await this.missing(m);
    return null;
  }

  /** Params chunks or a shard's piece of this version went missing (a reconnect drops what was queued): leave, so
   *  that the coordinator gives these batches to another worker, and join again (the next Assign brings them). */
  private async missing(m: Message): Promise<void> {
    if (this.result.shardLost) return; // leaving this run already
    const h = m.header;
    this.log.warn(`${kindName(h.kind)} refers to parameter version ${h.paramVersion}, which this worker did not receive in full: leaving and joining again`);
    await this.send(Kind.Leave, { reason: `missing parameters of version ${h.paramVersion}` }, { step: h.step, version: h.paramVersion });
    await this.rejoin();
  }

  /** Assign: the gradient of the loss SUM over the task's batches, sent as the coordinator asked. */
  private async train(m: Message, body: AssignBody): Promise<void> {
    void this.send(Kind.Started, { task: body.task }, { step: m.header.step, version: m.header.paramVersion }).catch(() => {}); // it has the task
    setImmediate(releaseMessages); // the last task's messages freed while this one computes (../heap.ts)
    if (m.rows) return this.trainRows(m, body);
    const params = await this.paramsFor(m);
    if (!params) return;
    const t0 = performance.now();
    const acc = new Float32Array(this.welcome.layoutSize); // sum of the batches' loss-SUM gradients
    let lossSum = 0, correct = 0, count = 0, tokens = 0;
    const ids: number[] = []; // sample ids used, for the coordinator's exactly-once accounting
    for (const idx of body.batches) {
      if (this.o.signal?.aborted) return; // never send the gradient of part of a task
      const { b, eb } = this.trainingBatch(idx, body.epoch);
      const r = await this.engine.step(params, eb);
      if (r.gpuSeconds) this.tel.gpuTime(this.o.name, r.gpuSeconds);
      const g = r.grads;
      for (let i = 0; i < acc.length; i++) acc[i] += g[i]!;
      lossSum += r.lossSum; correct += r.correct; count += r.count;
      for (let i = 0; i < b.size; i++) { tokens += b.lengths[i]!; ids.push(b.ids[i]!); }
    }
    const seconds = (performance.now() - t0) / 1000;
    const at = { step: m.header.step, version: m.header.paramVersion };
    const totals = { task: body.task, lossSum, correct, count, tokens, seconds, ids };
    const sent = await this.sendGradient(at, totals, this.wire.block ? encodeRows(acc, this.wire.block) : { rows: null, values: acc });
    this.stepDone(m, count, tokens, seconds, lossSum, correct, sent);
  }

  /** A task's gradient (rows form, or the whole vector) as the run wants it, to the coordinator with the totals;
   *  sharded, each shard's piece to that shard first. Returns the bytes sent. */
  private async sendGradient(at: { step: number; version: number }, totals: GradientBody, g: { rows: Uint32Array | null; values: Float32Array }): Promise<number> {
    const f16 = this.wire.f16;
    let own: { values: Float32Array | Uint16Array; rows: Uint32Array | null; scale: number }, bytes = 0;
    if (this.shards.any) ({ own, bytes } = await this.shards.send(g, f16, totals.task, (p) => this.encode(Kind.Gradient, at, { task: totals.task, gradScale: p.scale }, p.values, p.rows ?? undefined)));
    else own = f16 ? { ...toHalves(g.values), rows: g.rows } : { values: g.values, rows: g.rows, scale: 1 };
    await this.channel.send(this.encode(Kind.Gradient, at, { ...totals, gradScale: own.scale }, own.values, own.rows ?? undefined));
    return bytes + own.values.byteLength + (own.rows?.byteLength ?? 0);
  }

  /** Row pull: the task carries the dense parameters and the embedding rows its batches read; the gradient
   *  goes back as the dense part and the rows the batches touched, summed over the batches in their order
   *  from zero exactly as a full vector would be (a row a batch does not touch adds nothing there). */
  private async trainRows(m: Message, body: AssignBody): Promise<void> {
    const params = await this.rowParams(m, body.task);
    if (!params) return;
    const t0 = performance.now();
    const E = this.wire.block!.width;
    const acc = new RowAccumulator(params.dense.length, E);
    let lossSum = 0, correct = 0, count = 0, tokens = 0;
    const ids: number[] = [];
    for (const idx of body.batches) {
      if (this.o.signal?.aborted) return; // never send the gradient of part of a task
      const { b, eb } = this.trainingBatch(idx, body.epoch);
      const r = await this.engine.stepRows(params, eb);
      if (r.gpuSeconds) this.tel.gpuTime(this.o.name, r.gpuSeconds);
      acc.add(r);
      lossSum += r.lossSum; correct += r.correct; count += r.count;
      for (let i = 0; i < b.size; i++) { tokens += b.lengths[i]!; ids.push(b.ids[i]!); }
    }
    const seconds = (performance.now() - t0) / 1000;
    const { rows, payload } = acc.payload();
    const at = { step: m.header.step, version: m.header.paramVersion };
    const totals = { task: body.task, lossSum, correct, count, tokens, seconds, ids };
    const sent = await this.sendGradient(at, totals, { rows, values: payload });
    this.stepDone(m, count, tokens, seconds, lossSum, correct, sent);
  }

  /** Training batch `idx` of an epoch as the engine takes it: the classifier's with the epoch's dropout masks,
   *  a pretraining task's with the epoch's sampling seed (its batches are train's, then unsup's). */
  private trainingBatch(idx: number, epoch: number): { b: Batch; eb: EngineBatch } {
    const w = this.welcome;
    const b = this.data.batch(this.split, idx);
    if (this.split === "pretrain") return { b, eb: batchToEngine(b, undefined, samplingSeed(w.seed ?? 0, epoch)) };
    const d = w.dropout;
    return { b, eb: batchToEngine(b, d && d.rate > 0 ? { rate: d.rate, seed: dropoutSeed(d.seed, epoch) } : undefined) };
  }

  /** A task's parameters in rows form: [rows of E][dense] as the coordinator laid them out (sharded: its piece
   *  and the shards', joined). Null (after leaving and joining again) when a shard's piece never came. */
  private async rowParams(m: Message, task: number): Promise<RowParams | null> {
    const got = await this.shards.rowParams(m, task, this.welcome.layoutSize);
    if (!got) await this.missing(m);
    return got;
  }

  private stepDone(m: Message, count: number, tokens: number, seconds: number, lossSum: number, correct: number, sentBytes: number): void {
    this.result.steps++;
    this.result.samples += count;
    this.tel.workerStep(this.o.name, { samples: count, tokens, seconds, loss: count ? lossSum / count : 0, accuracy: count ? correct / count : 0 });
    this.tel.phase("compute", seconds, this.o.name);
    this.tel.bytes("sent", sentBytes, this.o.name);
    this.tel.bytes("received", m.payload.byteLength + (m.rows?.byteLength ?? 0), this.o.name);
    this.o.onStep?.();
    this.log.debug(`step ${m.header.step}: ${count} samples, ${seconds.toFixed(2)} s`);
  }

  /** Eval: loss and accuracy over the task's batches of a split. */
  private async evaluate(m: Message, body: EvalBody): Promise<void> {
    const params = m.rows ? await this.rowParams(m, body.task) : await this.paramsFor(m);
    if (!params) return;
    let lossSum = 0, correct = 0, count = 0;
    for (const idx of body.batches) {
      if (this.o.signal?.aborted) return;
      // pretraining: the same draws in every validation pass, so that its losses compare across epochs
      const seed = this.split === "pretrain" ? samplingSeed(this.welcome.seed ?? 0, VALIDATION_SAMPLING_EPOCH) : undefined;
      const r = await this.engine.evaluate(params, batchToEngine(this.data.batch(body.split, idx), undefined, seed));
      lossSum += r.lossSum; correct += r.correct; count += r.count;
    }
    await this.channel.send(this.encode(Kind.EvalResult, { step: m.header.step, version: m.header.paramVersion }, { task: body.task, lossSum, correct, count }));
    this.result.evals++;
  }

  /** A shard's connection dropped: its slice's Adam state went with it, so the coordinator stops the run (it may
   *  resume it). Stop waiting for that shard's pieces, leave the run, and look for the coordinator's next one. */
  private shardGone(endpoint: string, k: number): void {
    if (this.result.shardLost || this.stopReason) return;
    this.log.warn(`lost the connection to coordinator shard ${endpoint}: leaving this run, then joining whichever the coordinator runs next`);
    this.result.shardLost = true;
    this.result.reason = `coordinator shard ${endpoint} went away`;
    this.shards.lost(k);
    this.leaveAndClose(`lost coordinator shard ${endpoint}`);
  }

  /** Stopped by a signal: say goodbye first, so the coordinator hands our open batches to another worker at once. */
  private leaveNow(): void {
    this.stopReason = "interrupted";
    this.leaveAndClose("stopped by a signal");
  }

  /** Leave, then close (linger is 0: ZeroMQ's I/O thread gets a moment to put the Leave on the wire). */
  private leaveAndClose(reason: string): void {
    const bye = this.send(Kind.Leave, { reason }).then(() => new Promise((r) => setTimeout(r, 100))).catch(() => {});
    void settledWithin(bye, 600).then(() => this.channel.close());
  }

  close(): void {
    if (this.beat) clearInterval(this.beat);
    this.o.signal?.removeEventListener("abort", this.onAbort);
    this.channel.close();
    this.shards.close();
    this.engine.dispose();
  }
}
