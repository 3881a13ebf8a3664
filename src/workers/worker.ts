// A worker: joins the coordinator over ZeroMQ (./join.ts), loads the dataset from the shared path and the
// gradient engine, then answers Assign with the gradient of the loss SUM over its batches and Eval with loss
// and accuracy. Heartbeats go out every second when the JS thread is free; a busy step is covered by the
// coordinator's per-step deadline.
import { hostname } from "node:os";
import { ProtocolError, TrainingError, AbortedError, errorMessage } from "../errors.js";
import { settledWithin } from "../wait.js";
import { logger, type Logger } from "../output.js";
import { NO_TELEMETRY, type Telemetry } from "../telemetry.js";
import { Kind, encode, decode, kindName, DEFAULT_MAX_MESSAGE_BYTES, WireError, type Message } from "../protocol/wire.js";
import { readBody, type Bodies, type AssignBody, type EvalBody, type GradientBody } from "../protocol/bodies.js";
import { ParamAssembler, TaskPieces } from "../protocol/params.js";
import { gradientPieces, sliceView, type SliceView } from "../protocol/slices.js";
import { encodeGradient, encodeRows, encodeHalf, halfScale, payloadValues, sparseBlockOf, type SparseBlock } from "../protocol/gradcodec.js";
import { DealerChannel, type CurveClientKeys } from "../transport/zmq/index.js";
import { join as joinPath } from "node:path";
import { taskOf } from "../config.js";
import type { Batch } from "../dataset/batch.js";
import { openTrainingData, trainingSplitFor, type TrainingData, type TrainingSplit } from "../dataset/training.js";
import { loadVocabCounts } from "../dataset/vocab.js";
import { createEngine, batchToEngine, dropoutSeed, samplingSeed, VALIDATION_SAMPLING_EPOCH, type Engine, type EngineBatch, type RowParams } from "../engine/index.js";
import { RowAccumulator } from "./rows.js";
import type { BackendChoice } from "../tfjs.js";
import { join, type Welcome } from "./join.js";

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
}

export interface WorkerResult {
  steps: number; evals: number; samples: number;
  /** Why the coordinator stopped this worker (its Stop message's reason). */
  reason: string;
  /** The Stop came at the end of the run (else the coordinator was interrupted and will resume). */
  final: boolean;
  /** The run it took part in last. */
  runId: number;
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
    total.steps += r.steps; total.evals += r.evals; total.samples += r.samples; total.reason = r.reason; total.final = r.final; total.runId = r.runId;
    if (!r.newRun) return total;
  }
}

async function runOnce(o: WorkerOptions): Promise<WorkerResult & { newRun?: number }> {
  const log = logger(`worker ${o.name}`);
  log.info(`joining the coordinator at ${o.coordinator}`);
  const { channel, welcome, routingId } = await join(o.coordinator, o.name, { timeoutS: o.connectTimeoutS ?? 120, signal: o.signal, log, curve: o.curve });
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

/** A connection to one coordinator shard (a sharded coordinator): it sends its slice of every new version. */
interface ShardLink { port: number; offset: number; length: number; channel: DealerChannel }

/** One run of one worker: the message loop and what it does with each message. */
class Session {
  private readonly tel: Telemetry;
  private readonly assembler: ParamAssembler;
  /** How gradients go on the wire: half floats or float32; the embedding dense or as touched rows. */
  private readonly wire: { f16: boolean; block: SparseBlock | null };
  private readonly shards: ShardLink[];
  /** Sharded: every slice (the coordinator's first) with its embedding rows; the shards' pieces of row-pull tasks. */
  private readonly views: SliceView[];
  private readonly pieces: TaskPieces | null;
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
    const sh = welcome.shards;
    this.views = sh ? [{ offset: 0, length: sh.own }, ...sh.others].map((b) => sliceView({ offset: b.offset, length: b.length }, this.wire.block)) : [];
    this.pieces = sh && welcome.pull === "rows" ? new TaskPieces(this.views) : null;
    this.shards = this.connectShards();
  }

  private encode<K extends Kind>(kind: K, at: { step: number; version: number }, body?: Bodies[K], payload?: Float32Array | Uint16Array, rows?: Uint32Array) {
    const w = this.welcome;
    return encode({ kind, runId: w.runId, step: at.step, paramVersion: at.version, slot: w.slot, layoutHash: w.layoutHash }, body, payload, rows);
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
      if (this.o.signal?.aborted || !(await this.handle(frames))) break;
      this.lastHeard = Date.now();
    }
    if (this.stopReason === "interrupted") throw new AbortedError("interrupted: left the run (Leave sent, so the coordinator gives any open batches to another worker)");
    if (this.stopReason) throw new TrainingError(this.stopReason);
    if (!this.result.newRun) this.log.info(`stopped by the coordinator (${this.result.reason}) after ${this.result.steps} step(s)`);
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
    const params = this.assembler.paramsFor(m) ?? (this.shards.length ? await this.assembler.waitFor(h.paramVersion, 60_000) : null);
    if (params) return params;
    await this.missing(m);
    return null;
  }

  /** Params chunks or a shard's piece of this version went missing (a reconnect drops what was queued): leave,
   *  so that the coordinator gives these batches to another worker, and join again (the next Assign carries
   *  them inline, or its pieces come again). */
  private async missing(m: Message): Promise<void> {
    const h = m.header;
    this.log.warn(`${kindName(h.kind)} refers to parameter version ${h.paramVersion}, which this worker did not receive in full: leaving and joining again`);
    await this.send(Kind.Leave, { reason: `missing parameters of version ${h.paramVersion}` }, { step: h.step, version: h.paramVersion });
    await this.rejoin();
  }

  /** Assign: the gradient of the loss SUM over the task's batches, sent as the coordinator asked. */
  private async train(m: Message, body: AssignBody): Promise<void> {
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
    const sent = this.shards.length
      ? await this.sendPieces(at, totals, this.wire.block ? encodeRows(acc, this.wire.block) : { rows: null, values: acc })
      : await this.sendGradient(at, totals, encodeGradient(acc, this.wire));
    this.stepDone(m, count, tokens, seconds, lossSum, correct, sent);
  }

  private async sendGradient(at: { step: number; version: number }, totals: GradientBody, g: { values: Float32Array | Uint16Array; rows: Uint32Array | null; scale: number }): Promise<number> {
    await this.channel.send(this.encode(Kind.Gradient, at, { ...totals, gradScale: g.scale }, g.values, g.rows ?? undefined));
    return g.values.byteLength + (g.rows?.byteLength ?? 0);
  }

  /** Sharded: each shard's piece of the gradient to it first, then ours (with the totals) to the coordinator. */
  private async sendPieces(at: { step: number; version: number }, totals: GradientBody, g: { rows: Uint32Array | null; values: Float32Array }): Promise<number> {
    const pieces = gradientPieces(g, this.views, this.wire.block, this.wire.f16);
    let bytes = 0;
    for (const [i, sh] of this.shards.entries()) {
      const p = pieces[i + 1]!;
      await sh.channel.send(this.encode(Kind.Gradient, at, { task: totals.task, gradScale: p.scale }, p.values, p.rows ?? undefined));
      bytes += p.values.byteLength + (p.rows?.byteLength ?? 0);
    }
    return bytes + await this.sendGradient(at, totals, pieces[0]!);
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
    let sent: number;
    if (this.shards.length) sent = await this.sendPieces(at, totals, { rows, values: payload });
    else {
      const scale = this.wire.f16 ? halfScale(payload) : 1;
      sent = await this.sendGradient(at, totals, { values: this.wire.f16 ? encodeHalf(payload, scale) : payload, rows, scale });
    }
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
    const E = this.wire.block?.width ?? 0;
    let rows: Int32Array, values: Float32Array;
    if (this.pieces) {
      const want = payloadValues(this.views[0]!.length, this.views[0]!.block, m.rows!.length);
      if (m.payload.length !== want) throw new WireError("length", `${kindName(m.header.kind)} carries ${m.payload.length} values for ${m.rows!.length} rows of its slice, expected ${want}`);
      const pieces = await this.pieces.take(task, m.header.paramVersion, 60_000);
      if (!pieces) { await this.missing(m); return null; }
      ({ rows, values } = this.pieces.join(m, pieces));
    } else {
      rows = Int32Array.from(m.rows!);
      values = m.payload;
    }
    const want = payloadValues(this.welcome.layoutSize, this.wire.block, rows.length);
    if (!this.wire.block || values.length !== want) throw new WireError("length", `${kindName(m.header.kind)} carries ${values.length} values for ${rows.length} rows, expected ${want}`);
    const R = rows.length;
    return { rows, values: values.subarray(0, R * E), dense: values.subarray(R * E) };
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

  /** A sharded coordinator: connect to each shard (same host), which sends its slice of every new version. */
  private connectShards(): ShardLink[] {
    const host = /^tcp:\/\/(.*):\d+$/.exec(this.o.coordinator)?.[1] ?? "127.0.0.1";
    return (this.welcome.shards?.others ?? []).map((sh, i) => {
      const curve = this.o.curve && sh.serverKey ? { ...this.o.curve, serverKey: sh.serverKey } : undefined;
      const channel = DealerChannel.connect(`tcp://${host}:${sh.port}`, this.routingId, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, sendTimeoutMs: 2000, curve });
      void channel.send(this.encode(Kind.Join, { step: 0, version: 0 }, { name: this.o.name, pid: process.pid })).catch(() => {});
      void this.receiveShard(channel, i + 1);
      return { ...sh, channel };
    });
  }

  private async receiveShard(channel: DealerChannel, k: number): Promise<void> {
    const from = `coordinator shard ${channel.endpoint}`;
    for await (const { frames } of channel.messages()) {
      try {
        const pm = decode(frames, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, from });
        if (pm.header.kind !== Kind.Params || pm.header.runId !== this.welcome.runId) continue;
        if (!this.pieces?.put(k, pm, from)) this.assembler.put(pm, from);
        this.tel.bytes("received", pm.payload.byteLength + (pm.rows?.byteLength ?? 0), this.o.name);
      } catch (err) {
        this.log.warn(`ignored a message from ${from}: ${errorMessage(err)}`);
      }
    }
  }

  /** Stopped by a signal: say goodbye first, so the coordinator hands our open batches to another worker at once. */
  private leaveNow(): void {
    this.stopReason = "interrupted";
    // (linger is 0: give ZeroMQ's I/O thread a moment to put the Leave on the wire before closing)
    const bye = this.send(Kind.Leave, { reason: "stopped by a signal" }).then(() => new Promise((r) => setTimeout(r, 100))).catch(() => {});
    void settledWithin(bye, 600).then(() => this.channel.close());
  }

  close(): void {
    if (this.beat) clearInterval(this.beat);
    this.o.signal?.removeEventListener("abort", this.onAbort);
    this.channel.close();
    for (const sh of this.shards) sh.channel.close();
    this.engine.dispose();
  }
}
