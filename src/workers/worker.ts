// A worker: joins the coordinator over ZeroMQ, loads the dataset from the shared path and the gradient
// engine, then answers Assign with the gradient of the loss SUM over its batches and Eval with loss and
// accuracy. Heartbeats go out every second when the JS thread is free; a busy step is covered by the
// coordinator's per-step deadline.
import { hostname } from "node:os";
import type { ModelConfig } from "../config.js";
import { AuthError, ConnectionError, ProtocolError, TrainingError, AbortedError, errorMessage } from "../errors.js";
import { settledWithin } from "../wait.js";
import { logger } from "../output.js";
import { NO_TELEMETRY, type Telemetry } from "../telemetry.js";
import { Kind, encode, decode, kindName, DEFAULT_MAX_MESSAGE_BYTES, WireError, ParamAssembler, type Message } from "../protocol/wire.js";
import { encodeGradient, sparseBlockOf } from "../protocol/gradcodec.js";
import { DealerChannel, type CurveClientKeys } from "../transport/zmq.js";
import { openTrainingData, type TrainingData } from "../dataset/training.js";
import { createEngine, batchToEngine, dropoutSeed } from "../engine/index.js";
import type { Engine } from "../engine/types.js";
import type { BackendChoice } from "../tfjs.js";

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

export interface Welcome {
  runId: number;
  slot: number;
  model: ModelConfig;
  dataset: string;
  layoutHash: string;
  layoutSize: number;
  maxBytes: number;
  heartbeatMs: number;
  /** How to send gradients (absent from older coordinators: float32, dense). */
  grad?: { dtype: "fp32" | "fp16"; rows: boolean };
  /** Dropout on the classifier's input during training steps (absent or rate 0: none); masks from `seed`. */
  dropout?: { rate: number; seed: number };
  /** A sharded coordinator: it owns values [0, own); shard processes on its host (these ports) the others. */
  shards?: { own: number; others: { port: number; offset: number; length: number }[] };
}

export interface WorkerResult {
  steps: number; evals: number; samples: number;
  /** Why the coordinator stopped this worker (its Stop message's reason). */
  reason: string;
  /** The run it took part in last. */
  runId: number;
}

/** Fails the join when the transport's handshakes keep failing: refused key, wrong server key, CURVE on one side only. */
function checkHandshake(channel: DealerChannel, endpoint: string, curve: boolean): void {
  const t = channel.handshakeTrouble();
  if (!t) return;
  if (t.kind === "auth") throw new AuthError(`the coordinator at ${endpoint} refused this worker's CURVE key (${t.detail}): its public key is not admitted there (client.pub or clients/*.pub of the coordinator's --curve-keys)`);
  // a ZMTP protocol error (mechanism mismatch, undecryptable HELLO) is final — libzmq does not even reconnect;
  // a connection dropped mid-handshake may be a restarting coordinator: give it three tries
  if (t.kind === "other" && t.count < 3) return;
  throw new AuthError(curve
    ? `the CURVE handshake with ${endpoint} failed ${t.count} times (${t.detail}): server.pub in --curve-keys is not this coordinator's key, or the coordinator runs without CURVE`
    : `the handshake with ${endpoint} failed ${t.count} times (${t.detail}): the coordinator probably requires CURVE keys (start the worker with --curve-keys <dir>)`);
}

/** Join: send Join until a Welcome arrives, backing off 0.5 s → 8 s, saying where it is trying. */
export async function join(endpoint: string, name: string, opts: { timeoutS: number; signal?: AbortSignal; log: ReturnType<typeof logger>; curve?: CurveClientKeys }): Promise<{ channel: DealerChannel; welcome: Welcome }> {
  const channel = DealerChannel.connect(endpoint, name, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, sendTimeoutMs: 2000, curve: opts.curve });
  const deadline = Date.now() + opts.timeoutS * 1000;
  let wait = 500;
  let attempt = 0;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw new AbortedError();
      attempt++;
      const joinMsg = encode({ kind: Kind.Join, runId: 0, step: 0, paramVersion: 0, slot: 0, layoutHash: "" }, { name, pid: process.pid, host: hostname() });
      try { await channel.send(joinMsg); } catch { /* not connected yet: the receive below times out */ }
      const until = Date.now() + wait;
      while (Date.now() < until) {
        const frames = await channel.receive(Math.max(1, until - Date.now()));
        if (!frames) break;
        const m = decode(frames, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, from: `coordinator ${endpoint}` });
        if (m.header.kind === Kind.Welcome) return { channel, welcome: m.body as unknown as Welcome };
        if (m.header.kind === Kind.Reject) {
          const b = m.body as { reason?: string; message?: string };
          throw new ProtocolError(`coordinator at ${endpoint} refused ${name}: ${b.message ?? b.reason}`);
        }
      }
      checkHandshake(channel, endpoint, opts.curve !== undefined);
      if (Date.now() > deadline) throw new ConnectionError(`no coordinator answered at ${endpoint} within ${opts.timeoutS} s (${attempt} attempts)`);
      opts.log.info(`no answer from the coordinator at ${endpoint} yet (attempt ${attempt}); retrying in ${(Math.min(wait * 2, 8000) / 1000).toFixed(1)} s`);
      wait = Math.min(wait * 2, 8000);
    }
  } catch (err) {
    channel.close();
    throw err;
  }
}

/**
 * Run as a worker until the coordinator says Stop. When the coordinator at the same address restarts (killed
 * and started again, e.g. with --resume or --auto-resume), it answers with another run id: the worker then
 * joins the new run from scratch (new Welcome, parameters, shards) instead of waiting on the old one.
 */
export async function runWorker(o: WorkerOptions): Promise<WorkerResult> {
  const total: WorkerResult = { steps: 0, evals: 0, samples: 0, reason: "", runId: 0 };
  for (;;) {
    const r = await runOnce(o);
    total.steps += r.steps; total.evals += r.evals; total.samples += r.samples; total.reason = r.reason; total.runId = r.runId;
    if (!r.newRun) return total;
  }
}

async function runOnce(o: WorkerOptions): Promise<WorkerResult & { newRun?: number }> {
  const log = logger(`worker ${o.name}`);
  const tel = o.telemetry ?? NO_TELEMETRY;
  log.info(`joining the coordinator at ${o.coordinator}`);
  const { channel, welcome } = await join(o.coordinator, o.name, { timeoutS: o.connectTimeoutS ?? 120, signal: o.signal, log, curve: o.curve });
  const datasetDir = o.dataset ?? welcome.dataset;
  let engine: Engine | null = null;
  let data: TrainingData;
  try {
    data = await openTrainingData(datasetDir);
    engine = await createEngine({ model: welcome.model, backend: o.backend ?? "auto", dropout: welcome.dropout?.rate });
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
  log.info(`joined run ${welcome.runId} as slot ${welcome.slot}: backend ${engine.backend}, dataset ${datasetDir} (${data.count("train")} train / ${data.count("val")} val batches)${welcome.dropout?.rate ? `, dropout ${welcome.dropout.rate} on the classifier's input` : ""}`);
  const head = (kind: Kind, step: number, version: number) => ({ kind, runId: welcome.runId, step, paramVersion: version, slot: welcome.slot, layoutHash: welcome.layoutHash });
  await channel.send(encode(head(Kind.Ready, 0, 0), { backend: engine.backend }));
  let lastHeard = Date.now();
  const silentMs = (o.coordinatorTimeoutS ?? 60) * 1000;
  let stopReason = "";
  const beat = setInterval(() => {
    if (Date.now() - lastHeard > silentMs) {
      stopReason = `the coordinator at ${o.coordinator} has been silent for ${((Date.now() - lastHeard) / 1000).toFixed(0)} s`;
      log.error(stopReason);
      channel.close();
      return;
    }
    void channel.send(encode(head(Kind.Heartbeat, 0, 0))).catch(() => {});
  }, welcome.heartbeatMs);
  const onAbort = () => {
    // say goodbye first, so the coordinator hands our open batches to another worker at once
    stopReason = "interrupted";
    // (linger is 0: give ZeroMQ's I/O thread a moment to put the Leave on the wire before closing)
    const bye = channel.send(encode(head(Kind.Leave, 0, 0), { reason: "stopped by a signal" })).then(() => new Promise((r) => setTimeout(r, 100))).catch(() => {});
    void settledWithin(bye, 600).then(() => channel.close());
  };
  o.signal?.addEventListener("abort", onAbort, { once: true });
  const result: WorkerResult & { newRun?: number } = { steps: 0, evals: 0, samples: 0, reason: "", runId: welcome.runId };
  const assembler = new ParamAssembler(welcome.layoutSize); // parameters broadcast in Params chunks
  const wire = { f16: welcome.grad?.dtype === "fp16", block: welcome.grad?.rows ? sparseBlockOf(engine.layout) : null };
  // a sharded coordinator: connect to each shard (same host), which sends its slice of every new version
  const host = /^tcp:\/\/(.*):\d+$/.exec(o.coordinator)?.[1] ?? "127.0.0.1";
  const shards = (welcome.shards?.others ?? []).map((sh) => ({ ...sh, channel: DealerChannel.connect(`tcp://${host}:${sh.port}`, o.name, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, sendTimeoutMs: 2000 }) }));
  for (const sh of shards) {
    void sh.channel.send(encode(head(Kind.Join, 0, 0), { name: o.name, pid: process.pid })).catch(() => {});
    void (async () => {
      for await (const { frames } of sh.channel.messages()) {
        try {
          const pm = decode(frames, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, from: `coordinator shard ${sh.channel.endpoint}` });
          if (pm.header.kind === Kind.Params && pm.header.runId === welcome.runId) { assembler.put(pm); tel.bytes("received", pm.payload.byteLength, o.name); }
        } catch (err) {
          log.warn(`ignored a message from coordinator shard ${sh.channel.endpoint}: ${errorMessage(err)}`);
        }
      }
    })();
  }
  let rejoining = false;
  try {
    for await (const { frames } of channel.messages()) {
      lastHeard = Date.now();
      let m: Message;
      try {
        m = decode(frames, { maxBytes: welcome.maxBytes, from: `coordinator ${o.coordinator}` });
      } catch (err) {
        if (err instanceof WireError) { log.warn(`ignored a message: ${err.message}`); continue; }
        throw err;
      }
      if (m.header.runId !== welcome.runId) {
        const rb = m.body as { reason?: string; rejoin?: boolean };
        if (m.header.kind === Kind.Reject && (rb.rejoin || rb.reason === "unknown-worker")) {
          // another run answers at this address: the coordinator restarted (e.g. kill -9, then --resume)
          log.warn(`the coordinator at ${o.coordinator} restarted (run ${welcome.runId} → ${m.header.runId}): joining the new run`);
          result.reason = "coordinator restarted";
          result.newRun = m.header.runId;
          break;
        }
        log.warn(`ignored a ${kindName(m.header.kind)} of run ${m.header.runId}`);
        continue;
      }
      const h = m.header;
      if (o.signal?.aborted) break;
      if (h.kind === Kind.Welcome) { rejoining = false; continue; }
      if (h.kind === Kind.Heartbeat) continue;
      if (h.kind === Kind.Stop) { result.reason = String((m.body as { reason?: string }).reason ?? "stopped"); break; }
      if (h.kind === Kind.Reject) {
        const rb = m.body as { reason?: string; message?: string };
        log.warn(`coordinator rejected a message: ${rb.message}`);
        if ((rb.reason === "unknown-worker" || (rb as { rejoin?: boolean }).rejoin) && !rejoining) {
          // evicted (e.g. this process was frozen past its deadline, its gradient is stale): join again once,
          // everything is loaded; further rejections sent before the coordinator saw this Join are ignored
          rejoining = true;
          log.warn("no longer a member of the run: joining again");
          await channel.send(encode(head(Kind.Join, 0, 0), { name: o.name, pid: process.pid, host: hostname(), rejoin: true }));
          await channel.send(encode(head(Kind.Ready, 0, 0), { backend: engine.backend }));
        }
        continue;
      }
      const body = m.body as { task: number; epoch?: number; split: "train" | "val" | "test"; batches: number[] };
      if (h.kind === Kind.Params) {
        try { assembler.put(m); } catch (err) { if (err instanceof WireError) { log.warn(`ignored a Params chunk: ${err.message}`); continue; } throw err; }
        tel.bytes("received", m.payload.byteLength, o.name);
        continue;
      }
      if (m.payload.length && m.payload.length !== welcome.layoutSize) throw new ProtocolError(`${kindName(h.kind)} carries ${m.payload.length} parameters, expected ${welcome.layoutSize}`);
      // sharded: the shards' slices come on other sockets and may still be on their way
      const params = assembler.paramsFor(m) ?? (shards.length ? await assembler.waitFor(h.paramVersion, 60_000) : null);
      if (!params) {
        // Params chunks of this version went missing (a reconnect drops what was queued): leave, so that the
        // coordinator gives these batches to another worker, and join again (the next Assign carries the
        // parameters inline)
        log.warn(`${kindName(h.kind)} refers to parameter version ${h.paramVersion}, which this worker did not receive in full: leaving and joining again`);
        await channel.send(encode(head(Kind.Leave, h.step, h.paramVersion), { reason: `missing parameters of version ${h.paramVersion}` }));
        await channel.send(encode(head(Kind.Join, 0, 0), { name: o.name, pid: process.pid, host: hostname(), rejoin: true }));
        await channel.send(encode(head(Kind.Ready, 0, 0), { backend: engine.backend }));
        continue;
      }
      if (h.kind === Kind.Assign) {
        const t0 = performance.now();
        const acc = new Float32Array(welcome.layoutSize); // sum of the batches' loss-SUM gradients
        let lossSum = 0, correct = 0, count = 0, tokens = 0;
        const ids: number[] = []; // sample ids used, for the coordinator's exactly-once accounting
        const dropout = welcome.dropout && welcome.dropout.rate > 0 ? { rate: welcome.dropout.rate, seed: dropoutSeed(welcome.dropout.seed, body.epoch ?? 0) } : undefined;
        for (const idx of body.batches) {
          if (o.signal?.aborted) break;
          const b = data.batch("train", idx);
          const r = await engine.step(params, batchToEngine(b, dropout));
          if (r.gpuSeconds) tel.gpuTime(o.name, r.gpuSeconds);
          const g = r.grads;
          for (let i = 0; i < acc.length; i++) acc[i] += g[i]!;
          lossSum += r.lossSum; correct += r.correct; count += r.count;
          for (let i = 0; i < b.size; i++) { tokens += b.lengths[i]!; ids.push(b.ids[i]!); }
        }
        if (o.signal?.aborted) break; // never send the gradient of part of a task
        const seconds = (performance.now() - t0) / 1000;
        // on the wire as the coordinator asked: float32 or half floats, the embedding dense or as touched rows
        // sharded: each shard's slice to it first, then ours (with the totals) to the coordinator
        for (const sh of shards) {
          const gs = encodeGradient(acc.subarray(sh.offset, sh.offset + sh.length), { f16: wire.f16, block: null });
          await sh.channel.send(encode(head(Kind.Gradient, h.step, h.paramVersion), { task: body.task, gradScale: gs.scale }, gs.values));
        }
        const g = encodeGradient(shards.length ? acc.subarray(0, welcome.shards!.own) : acc, wire);
        await channel.send(encode(head(Kind.Gradient, h.step, h.paramVersion), { task: body.task, lossSum, correct, count, tokens, seconds, ids, gradScale: g.scale }, g.values, g.rows ?? undefined));
        result.steps++;
        result.samples += count;
        tel.workerStep(o.name, { samples: count, tokens, seconds, loss: count ? lossSum / count : 0, accuracy: count ? correct / count : 0 });
        tel.phase("compute", seconds, o.name);
        tel.bytes("sent", g.values.byteLength + (g.rows?.byteLength ?? 0), o.name);
        tel.bytes("received", m.payload.byteLength, o.name);
        if (o.onStep) o.onStep();
        log.debug(`step ${h.step}: ${body.batches.length} batch(es), ${count} samples, ${seconds.toFixed(2)} s`);
      } else if (h.kind === Kind.Eval) {
        let lossSum = 0, correct = 0, count = 0;
        for (const idx of body.batches) {
          if (o.signal?.aborted) break;
          const r = await engine.evaluate(params, batchToEngine(data.batch(body.split, idx)));
          lossSum += r.lossSum; correct += r.correct; count += r.count;
        }
        await channel.send(encode(head(Kind.EvalResult, h.step, h.paramVersion), { task: body.task, lossSum, correct, count }));
        result.evals++;
      } else {
        log.warn(`ignored an unexpected ${kindName(h.kind)} message`);
      }
      lastHeard = Date.now();
    }
  } finally {
    clearInterval(beat);
    o.signal?.removeEventListener("abort", onAbort);
    channel.close();
    for (const sh of shards) sh.channel.close();
    engine.dispose();
  }
  if (stopReason === "interrupted") throw new AbortedError("interrupted: left the run (Leave sent, so the coordinator gives any open batches to another worker)");
  if (stopReason) throw new TrainingError(stopReason);
  if (result.newRun) return result;
  log.info(`stopped by the coordinator (${result.reason}) after ${result.steps} step(s)`);
  return result;
}
