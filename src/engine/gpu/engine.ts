// The WebGPU gradient engine: the same contract as the CPU engine (src/engine/types.ts) and the same flat
// parameter layout (src/model/layout.ts), computed by the fused WGSL kernels of ./wgsl.
//
// Legend: B batch, T padded length, E embedding width, H hidden, GH = G·H gate columns, V vocabulary,
// U distinct tokens of a batch, N all parameters, Np = N − V·E the dense (non-embedding) parameters.
//
// A step, read top to bottom in runOne:
//   plan      (plan.ts)      host: compact token table [T·B], CSR of positions, uniforms; uploads P [Np], embC [U, E]
//                            (from a full vector [N] or RowParams: dense [Np] + the batch's rows)
//   forward   (forward.ts)   gather → projection → T recurrent steps → head; submitted on its own, so the GPU
//                            runs it while the backward pass is recorded
//   backward  (backward.ts)  head grads → T BPTT steps → weight grads into G [Np] → dX → dEmbC [U, E]
//   readback  (readback.ts)  logits, G and the touched rows of dEmbC copied into one staging buffer, mapped once
// Only the batch's distinct embedding rows travel to the GPU (compact table) and back: stepRows returns them
// as they come (RowStepResult); step spreads them into a full gradient [N].
//
// Supported: 1 layer, unidirectional, LSTM or GRU, token input, bce or mse loss.
import type { ModelConfig } from "../../config.js";
import { UnavailableError, UsageError } from "../../errors.js";
import { entry, paramLayout, type ParamLayout } from "../../model/layout.js";
import { lossAndGrad } from "../head.js";
import { checkRowParams, isRowParams, mergeRowSteps, toFullStep } from "../rows.js";
import type { Engine, EngineBatch, EngineOptions, EngineParams, EvalResult, RowStepResult, StepResult } from "../types.js";
import { recordBackward, recordWeightGrads } from "./backward.js";
import { createBatchBuffers, destroyBatchBuffers, largestBuffer, roundCapacity, type BatchBuffers, type Shared } from "./buffers.js";
import { acquireDevice, type AcquireOptions, type GpuDevice } from "./device.js";
import { recordForward } from "./forward.js";
import { halves, mergeEval } from "./halves.js";
import { planStep, Uniforms, uploadStep, type Offsets, type StepPlan } from "./plan.js";
import { readPhaseTimes, readStaging, recordReadback, unpackLogits, unpackRows, type StagingLayout } from "./readback.js";
import { PHASES, Recorder, type Timestamps } from "./recorder.js";
import { createPipelines } from "./pipelines.js";

export interface GpuEngineOptions extends EngineOptions {
  /** Adapter selection (kind, index); default: a hardware GPU, else the software adapter. */
  adapter?: AcquireOptions;
  /** An already acquired device (tests share one). */
  gpu?: GpuDevice;
  /** Largest buffer binding to use (default: the device's limit); larger batches run as halves. */
  maxBindingBytes?: number;
  /** Measure GPU time per phase with timestamp queries, where the device has them (benchmarks). */
  timestamps?: boolean;
}

/**
 * Cumulative since creation: milliseconds of host work before submit, of waiting for the GPU and the copy
 * back, of unpacking (for `step`, spreading the rows into the full gradient too); GPU time per phase;
 * bytes copied back to the host.
 */
export interface GpuProfile {
  steps: number; hostMs: number; waitMs: number; unpackMs: number;
  gpuSteps: number; gpuForwardMs: number; gpuBackwardMs: number; gpuGradsMs: number;
  readbackBytes: number;
}

const STORAGE = 128, COPY_DST = 8, COPY_SRC = 4, MAP_READ = 1, QUERY_RESOLVE = 512;

export class GpuEngine implements Engine {
  readonly backend = "webgpu";
  readonly layout: ParamLayout;
  readonly adapterName: string;
  readonly software: boolean;
  readonly profile: GpuProfile = { steps: 0, hostMs: 0, waitMs: 0, unpackMs: 0, gpuSteps: 0, gpuForwardMs: 0, gpuBackwardMs: 0, gpuGradsMs: 0, readbackBytes: 0 };
  private readonly s: Shared;
  private readonly base: number; //      first non-embedding parameter (= V·E)
  private readonly off: Offsets; //      dense tensors, relative to base
  private readonly mse: boolean;
  private readonly sets = new Map<number, BatchBuffers>(); // by batch size B
  private readonly uni = new Uniforms();
  private readonly mark: Int32Array; //  [V] −1 between steps (see compactTokens)
  private readonly maxBinding: number;
  private readonly ts?: Timestamps;
  private queue: Promise<unknown> = Promise.resolve();

  static async create(opts: GpuEngineOptions): Promise<GpuEngine> {
    check(opts);
    const gpu = opts.gpu ?? await acquireDevice(opts.adapter);
    return new GpuEngine(opts, gpu);
  }

  private constructor(opts: GpuEngineOptions, readonly gpu: GpuDevice) {
    const m = opts.model, device = gpu.device;
    this.mse = (opts.loss ?? "bce") === "mse";
    this.layout = paramLayout(m);
    this.adapterName = gpu.name;
    this.software = gpu.software;
    const emb = entry(this.layout, "embedding.weight");
    if (emb.offset !== 0) throw new UsageError("the GPU engine expects embedding.weight first in the layout");
    this.base = emb.offset + emb.size;
    const rel = (n: string) => entry(this.layout, n).offset - this.base;
    this.off = { wih: rel("rnn.l0.w_ih"), whh: rel("rnn.l0.w_hh"), bih: rel("rnn.l0.b_ih"), bhh: rel("rnn.l0.b_hh"), fcw: rel("fc.weight"), fcb: rel("fc.bias") };
    this.s = sharedBuffers(device, m, this.layout.size - this.base);
    this.mark = new Int32Array(m.vocabSize).fill(-1);
    this.maxBinding = opts.maxBindingBytes ?? Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    if (opts.timestamps && device.features.has("timestamp-query")) this.ts = timestampBuffers(device);
  }

  /** True when GPU phase times are measured (profile.gpu*). */
  get timed(): boolean {
    return this.ts !== undefined;
  }

  /** Bytes of GPU memory held by the batch buffers. */
  get bufferBytes(): number {
    let n = 0;
    for (const b of this.sets.values()) n += b.bytes;
    return n;
  }

  step(params: Float32Array, batch: EngineBatch): Promise<StepResult> {
    return this.serial(async () => {
      const r = await this.train(params, batch);
      const t0 = performance.now();
      const full = toFullStep(this.layout, r);
      this.profile.unpackMs += performance.now() - t0;
      return full;
    });
  }

  stepRows(params: EngineParams, batch: EngineBatch): Promise<RowStepResult> {
    return this.serial(() => this.train(params, batch));
  }

  evaluate(params: EngineParams, batch: EngineBatch): Promise<EvalResult> {
    return this.serial(() => this.infer(params, batch));
  }

  dispose(): void {
    for (const b of this.sets.values()) destroyBatchBuffers(b);
    this.sets.clear();
    this.s.P.destroy(); this.s.G.destroy(); this.s.ones.destroy();
    if (this.ts) { this.ts.set.destroy(); this.ts.resolve.destroy(); this.ts.read.destroy(); }
  }

  /** One step at a time: the batch buffers and uniforms are reused. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.queue.then(f, f);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async train(params: EngineParams, batch: EngineBatch): Promise<RowStepResult> {
    this.validate(params, batch);
    if (this.tooLarge(batch)) return mergeRowSteps(...await halves(batch, (h) => this.train(params, h)), this.s.In);
    const { logits, dense, rows, values } = await this.runOne(params, batch, true,
      (mapped, at, plan) => ({ logits: unpackLogits(mapped, plan), ...unpackRows(mapped, at, plan, this.s) }));
    const { lossSum, correct } = lossAndGrad(logits, batch.targets, this.mse ? "mse" : "bce");
    return { lossSum, correct, count: batch.size, dense, rows, values };
  }

  private async infer(params: EngineParams, batch: EngineBatch): Promise<EvalResult> {
    this.validate(params, batch);
    if (this.tooLarge(batch)) return mergeEval(...await halves(batch, (h) => this.infer(params, h)));
    const logits = await this.runOne(params, batch, false, (mapped, _at, plan) => unpackLogits(mapped, plan));
    const { lossSum, correct } = lossAndGrad(logits, batch.targets, this.mse ? "mse" : "bce");
    return { lossSum, correct, count: batch.size, outputs: logits };
  }

  private validate(params: EngineParams, batch: EngineBatch): void {
    const { size: B, maxLen: T, lengths } = batch;
    if (isRowParams(params)) checkRowParams(this.layout, params);
    else if (params.length !== this.layout.size) throw new UsageError(`expected ${this.layout.size} parameters, got ${params.length}`);
    if (!(B >= 1 && T >= 1)) throw new UsageError(`batch must have size >= 1 and maxLen >= 1 (got ${B}, ${T})`);
    if (lengths.length !== B || batch.targets.length !== B) throw new UsageError(`batch lengths/targets must have ${B} entries`);
    for (let b = 0; b < B; b++) if (!(lengths[b] >= 1 && lengths[b] <= T)) throw new UsageError(`length ${lengths[b]} of row ${b} is outside 1..${T}`);
    if (batch.tokens?.length !== B * T) throw new UsageError(`batch.tokens must have B*T = ${B * T} entries`);
  }

  /** Too large for one binding: gradients are sums over reviews, so two halves add up exactly. */
  private tooLarge(batch: EngineBatch): boolean {
    return batch.size > 1 && largestBuffer(this.s, batch.size, roundCapacity(batch.maxLen)) > this.maxBinding;
  }

  /** The buffers of batch size B, (re)allocated when T exceeds their capacity. */
  private async buffers(B: number, T: number): Promise<BatchBuffers> {
    const set = this.sets.get(B);
    if (set && set.Tcap >= T) return set;
    if (set) { destroyBatchBuffers(set); this.sets.delete(B); }
    const device = this.s.device;
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
    const made = createBatchBuffers(this.s, B, roundCapacity(T));
    const [invalid, oom] = [await device.popErrorScope(), await device.popErrorScope()];
    if (invalid || oom) {
      destroyBatchBuffers(made);
      throw new UnavailableError(`cannot allocate GPU buffers for batch ${B} × ${roundCapacity(T)} steps (${(made.bytes / 2 ** 20).toFixed(0)} MiB): ${(oom ?? invalid)!.message}`);
    }
    this.sets.set(B, made);
    return made;
  }

  /** plan → upload → forward (submitted) → backward → readback; `unpack` reads the mapped staging buffer. */
  private async runOne<R>(params: EngineParams, batch: EngineBatch, train: boolean, unpack: (mapped: ArrayBuffer, at: StagingLayout, plan: StepPlan) => R): Promise<R> {
    const tStart = performance.now();
    const bb = await this.buffers(batch.size, batch.maxLen);
    const plan = planStep(this.uni, this.s, this.off, this.mse, params, batch, train, this.mark);
    uploadStep(this.s, bb, this.base, params, batch, plan, this.uni);
    const device = this.s.device;
    device.pushErrorScope("validation");
    const rec = new Recorder(device, this.ts);
    recordForward(rec, this.s, bb, plan);
    if (plan.grads) {
      rec.end();
      rec.flush();
      recordBackward(rec, this.s, bb, plan, plan.grads);
      recordWeightGrads(rec, this.s, bb, plan, plan.grads);
    }
    rec.end();
    const at = recordReadback(rec.enc, this.s, bb, plan, this.ts);
    rec.submit();
    const tSubmit = performance.now();
    let tMapped = tSubmit;
    const out = await readStaging(device, bb, plan, at.bytes, () => { tMapped = performance.now(); }, (mapped) => unpack(mapped, at, plan));
    const p = this.profile;
    p.steps++; p.hostMs += tSubmit - tStart; p.waitMs += tMapped - tSubmit; p.unpackMs += performance.now() - tMapped; p.readbackBytes += at.bytes;
    if (this.ts && train) {
      const [fwd, bptt, grads] = await readPhaseTimes(this.ts);
      p.gpuSteps++; p.gpuForwardMs += fwd; p.gpuBackwardMs += bptt; p.gpuGradsMs += grads;
    }
    return out;
  }
}

/** Buffers every batch size shares: dense parameters P, their gradient G, a constant 1.0 operand; the pipelines. */
function sharedBuffers(device: GPUDevice, m: ModelConfig, Np: number): Shared {
  const G = m.cell === "gru" ? 3 : 4;
  const mk = (label: string, floats: number) => device.createBuffer({ label, size: Math.ceil(floats * 4 / 16) * 16, usage: STORAGE | COPY_DST | COPY_SRC });
  const ones = mk("ones", 4);
  device.queue.writeBuffer(ones, 0, new Float32Array([1, 1, 1, 1]));
  return {
    device, pipes: createPipelines(device, m.cell), P: mk("params", Np), G: mk("grads", Np), ones,
    lstm: m.cell === "lstm", In: m.embedDim, H: m.hidden, GH: G * m.hidden, V: m.vocabSize, Np,
  };
}

function timestampBuffers(device: GPUDevice): Timestamps {
  return {
    set: device.createQuerySet({ type: "timestamp", count: 2 * PHASES }),
    resolve: device.createBuffer({ size: 16 * PHASES, usage: QUERY_RESOLVE | COPY_SRC }),
    read: device.createBuffer({ size: 16 * PHASES, usage: MAP_READ | COPY_DST }),
  };
}

function check(opts: EngineOptions): void {
  const m: ModelConfig = opts.model;
  if ((m.task ?? "classify") !== "classify") throw new UsageError(`the WebGPU engine trains the classifier only (task ${m.task} runs on the CPU engine)`);
  if ((opts.input ?? "tokens") !== "tokens") throw new UsageError("the WebGPU engine supports token input only (use the CPU engine for dense inputs)");
  if (m.layers !== 1 || m.bidirectional) throw new UsageError(`the WebGPU engine supports 1 unidirectional layer (got layers=${m.layers}, bidirectional=${m.bidirectional})`);
}

/** createEngine({backend: "webgpu"}) for the GPU engine (see src/engine/index.ts). */
export function createGpuEngine(opts: GpuEngineOptions): Promise<GpuEngine> {
  return GpuEngine.create(opts);
}
