// The WebGPU gradient engine: the same contract as the CPU engine (src/engine/types.ts) and the
// same flat parameter layout (src/model/layout.ts), computed by the fused WGSL kernels of ./wgsl.
//
// One training step = two command buffers (forward; then backward, recorded while the GPU runs the forward):
//   gather X = emb[tokens]                               [T·B, E]        1 dispatch
//   A = X·W_ih + b (+ b_hh for LSTM)                     [T·B, GH]       1 tiled matmul
//   for t in 0..T−1: recurrent matmul + gates            [B, GH]         T dispatches
//   head: logits, dOut                                   [B]             1 dispatch
//   dW_fc, db_fc                                                         2 matmuls
//   for t in T−1..0: dA_{t+1}·W_hhᵀ + gate gradients     [B, GH]         T dispatches
//   dW_ih = Xᵀ·dA, dW_hh = Hᵀ·dA, db = Σ dA (split-K)   [E|H, GH]       big matmuls (+ reductions)
//   dX = dA·W_ihᵀ, scatter dX into the batch's rows      [U, E]          1 matmul + 1 dispatch
//   copy logits, gradients and the U embedding rows into one staging buffer, map it once.
// Only the batch's distinct embedding rows travel to the GPU (compact table) and back.
//
// Supported: 1 layer, unidirectional, LSTM or GRU, token input, bce or mse loss.
import type { CellKind, ModelConfig } from "../../config.js";
import { PAD_ID } from "../../config.js";
import { InputError, UnavailableError, UsageError } from "../../errors.js";
import { entry, paramLayout, type ParamLayout } from "../../model/layout.js";
import { batchDropoutMask, lossAndGrad } from "../head.js";
import type { Engine, EngineBatch, EngineOptions, EvalResult, LossKind, StepResult } from "../types.js";
import { createBatchBuffers, destroyBatchBuffers, largestBuffer, MAX_SPLITS, roundCapacity, SLOT, type BatchBuffers, type Shared } from "./buffers.js";
import { acquireDevice, type AcquireOptions, type GpuDevice } from "./device.js";
import { createPipelines } from "./pipelines.js";
import { DIMS_WORDS, STEP_SLOT_BYTES } from "./wgsl/common.js";
import { MATMUL_UNIFORM_WORDS } from "./wgsl/matmul.js";

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

const STORAGE = 128, COPY_DST = 8, COPY_SRC = 4, MAP_READ = 1, QUERY_RESOLVE = 512, MAP_READ_MODE = 1;
/** Compute passes of a training step, timed separately: forward (gather → head), BPTT, weight gradients. */
const PHASES = 3;

/** A matmul's operands: element (m, k) of A at off + m·rs + k·cs; same for B with (k, n). */
interface Operand { off: number; rs: number; cs: number }

export class GpuEngine implements Engine {
  readonly backend = "webgpu";
  readonly layout: ParamLayout;
  readonly adapterName: string;
  readonly software: boolean;
  private readonly s: Shared;
  private readonly base: number; //   first non-embedding parameter
  private readonly off: { wih: number; whh: number; bih: number; bhh: number; fcw: number; fcb: number };
  private readonly sets = new Map<number, BatchBuffers>();
  private readonly uni = new ArrayBuffer(14 * STEP_SLOT_BYTES);
  private readonly mark: Int32Array; // [V] compact row of each token id of the current batch, −1 else
  private queue: Promise<unknown> = Promise.resolve();
  private readonly lossKind: LossKind;
  private readonly cell: CellKind;
  private readonly maxBinding: number;
  /** Cumulative milliseconds since creation: host work before submit, waiting for the GPU and the copy back, unpacking. */
  readonly profile = { steps: 0, hostMs: 0, waitMs: 0, unpackMs: 0, gpuSteps: 0, gpuForwardMs: 0, gpuBackwardMs: 0, gpuGradsMs: 0 };
  private readonly ts?: { set: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer };

  static async create(opts: GpuEngineOptions): Promise<GpuEngine> {
    check(opts);
    const gpu = opts.gpu ?? await acquireDevice(opts.adapter);
    return new GpuEngine(opts, gpu);
  }

  private constructor(opts: GpuEngineOptions, readonly gpu: GpuDevice) {
    const m = opts.model;
    this.cell = m.cell;
    this.lossKind = opts.loss ?? "bce";
    this.layout = paramLayout(m);
    this.adapterName = gpu.name;
    this.software = gpu.software;
    const emb = entry(this.layout, "embedding.weight");
    this.base = emb.offset + emb.size;
    const rel = (n: string) => entry(this.layout, n).offset - this.base;
    this.off = { wih: rel("rnn.l0.w_ih"), whh: rel("rnn.l0.w_hh"), bih: rel("rnn.l0.b_ih"), bhh: rel("rnn.l0.b_hh"), fcw: rel("fc.weight"), fcb: rel("fc.bias") };
    if (emb.offset !== 0) throw new UsageError("the GPU engine expects embedding.weight first in the layout");
    const device = gpu.device;
    const G = m.cell === "gru" ? 3 : 4;
    const Np = this.layout.size - this.base;
    const mk = (label: string, floats: number) => device.createBuffer({ label, size: Math.ceil(floats * 4 / 16) * 16, usage: STORAGE | COPY_DST | COPY_SRC });
    const ones = mk("ones", 4);
    device.queue.writeBuffer(ones, 0, new Float32Array([1, 1, 1, 1]));
    this.s = {
      device, pipes: createPipelines(device, m.cell), P: mk("params", Np), G: mk("grads", Np), ones,
      lstm: m.cell === "lstm", In: m.embedDim, H: m.hidden, GH: G * m.hidden, V: m.vocabSize, Np,
    };
    this.mark = new Int32Array(m.vocabSize).fill(-1);
    this.maxBinding = opts.maxBindingBytes ?? Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    if (opts.timestamps && device.features.has("timestamp-query")) {
      this.ts = {
        set: device.createQuerySet({ type: "timestamp", count: 2 * PHASES }),
        resolve: device.createBuffer({ size: 16 * PHASES, usage: QUERY_RESOLVE | COPY_SRC }),
        read: device.createBuffer({ size: 16 * PHASES, usage: MAP_READ | COPY_DST }),
      };
    }
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
    return this.serial(() => this.run(params, batch, true) as Promise<StepResult>);
  }

  evaluate(params: Float32Array, batch: EngineBatch): Promise<EvalResult> {
    return this.serial(() => this.run(params, batch, false) as Promise<EvalResult>);
  }

  dispose(): void {
    for (const b of this.sets.values()) destroyBatchBuffers(b);
    this.sets.clear();
    this.s.P.destroy(); this.s.G.destroy(); this.s.ones.destroy();
    if (this.ts) { this.ts.set.destroy(); this.ts.resolve.destroy(); this.ts.read.destroy(); }
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.queue.then(f, f);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private validate(params: Float32Array, batch: EngineBatch): void {
    const { size: B, maxLen: T, lengths } = batch;
    if (params.length !== this.layout.size) throw new UsageError(`expected ${this.layout.size} parameters, got ${params.length}`);
    if (!(B >= 1 && T >= 1)) throw new UsageError(`batch must have size >= 1 and maxLen >= 1 (got ${B}, ${T})`);
    if (lengths.length !== B || batch.targets.length !== B) throw new UsageError(`batch lengths/targets must have ${B} entries`);
    for (let b = 0; b < B; b++) if (!(lengths[b] >= 1 && lengths[b] <= T)) throw new UsageError(`length ${lengths[b]} of row ${b} is outside 1..${T}`);
    if (batch.tokens?.length !== B * T) throw new UsageError(`batch.tokens must have B*T = ${B * T} entries`);
  }

  private async run(params: Float32Array, batch: EngineBatch, train: boolean): Promise<StepResult | EvalResult> {
    this.validate(params, batch);
    if (batch.size > 1 && largestBuffer(this.s, batch.size, roundCapacity(batch.maxLen)) > this.maxBinding) {
      // Too large for one binding: gradients are sums over reviews, so two halves add up exactly.
      const h = batch.size >> 1;
      const [a, b] = [sliceBatch(batch, 0, h), sliceBatch(batch, h, batch.size)];
      const ra = await this.run(params, a, train), rb = await this.run(params, b, train);
      return merge(ra, rb, train);
    }
    return this.runOne(params, batch, train);
  }

  private async buffers(B: number, T: number): Promise<BatchBuffers> {
    let set = this.sets.get(B);
    if (!set || set.Tcap < T) {
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
      set = made;
      this.sets.set(B, set);
    }
    return set;
  }

  private async runOne(params: Float32Array, batch: EngineBatch, train: boolean): Promise<StepResult | EvalResult> {
    const tStart = performance.now();
    const { size: B, maxLen: T, lengths, tokens } = batch;
    const { device, In: E, H, GH, V, Np } = this.s;
    const q = device.queue;
    const bb = await this.buffers(B, T);
    const rows = T * B;

    // Host: compact token table, time-major compact rows, CSR of positions per row (no <pad> gradient).
    const ctok = new Int32Array(rows).fill(-1); // [T·B]
    const uniq: number[] = [];
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < lengths[b]; t++) {
        const id = tokens![b * T + t];
        if (!(id >= 0 && id < V)) {
          for (const u of uniq) this.mark[u] = -1;
          throw new InputError(`token id ${id} at batch row ${b}, position ${t} is outside the vocabulary (V=${V})`);
        }
        let u = this.mark[id];
        if (u < 0) { u = uniq.length; this.mark[id] = u; uniq.push(id); }
        ctok[t * B + b] = u;
      }
    }
    const U = uniq.length;
    const embC = new Float32Array(U * E); //          [U, E]
    for (let u = 0; u < U; u++) embC.set(params.subarray(uniq[u] * E, uniq[u] * E + E), u * E);
    const padU = PAD_ID < V ? this.mark[PAD_ID] : -1;
    for (const id of uniq) this.mark[id] = -1;
    const start = new Uint32Array(U + 1); //           [U+1]
    const pos = new Uint32Array(rows); //              [n ≤ T·B]
    if (train) {
      for (let r = 0; r < rows; r++) { const u = ctok[r]; if (u >= 0 && u !== padU) start[u + 1]++; }
      for (let u = 0; u < U; u++) start[u + 1] += start[u];
      const fill = start.slice(0, U);
      for (let r = 0; r < rows; r++) { const u = ctok[r]; if (u >= 0 && u !== padU) pos[fill[u]++] = r; }
    }

    // Uniforms of this step.
    const u32 = new Uint32Array(this.uni);
    u32.fill(0);
    const o = this.off;
    const put = (slot: number, words: number[]) => u32.set(words, (slot * STEP_SLOT_BYTES) / 4);
    // dropout on the classifier's input (training only): the CPU engine's masks, keyed by sample id
    const mask = train ? batchDropoutMask(batch, H) : null;
    const dims = [B, T, H, E, o.wih, o.whh, o.bih, o.bhh, o.fcw, o.fcb, this.lossKind === "mse" ? 1 : 0, rows, mask ? 1 : 0];
    put(SLOT.dims, dims.concat(Array(DIMS_WORDS - dims.length).fill(0)));
    const lstm = this.s.lstm;
    const mm = (slot: number, M: number, N: number, K: number, a: Operand, b: Operand, cOff: number, ldc: number, split: boolean, flags = 0, bias1 = 0, bias2 = 0) => {
      let S = 1;
      if (split) {
        const tiles = Math.ceil(M / 64) * Math.ceil(N / 64);
        S = Math.max(1, Math.min(MAX_SPLITS, Math.ceil(256 / tiles), Math.ceil(K / 64)));
      }
      const kChunk = Math.ceil(Math.ceil(K / S) / 16) * 16;
      S = Math.ceil(K / kChunk);
      const w = S > 1
        ? [M, N, K, kChunk, a.off, a.rs, a.cs, b.off, b.rs, b.cs, 0, N, M * N, bias1, bias2, flags]
        : [M, N, K, kChunk, a.off, a.rs, a.cs, b.off, b.rs, b.cs, cOff, ldc, 0, bias1, bias2, flags];
      put(slot, w);
      return { grid: [Math.ceil(N / 64), Math.ceil(M / 64), S] as const, S, n: M * N, dOff: cOff };
    };
    const proj = mm(SLOT.proj, rows, GH, E, { off: 0, rs: E, cs: 1 }, { off: o.wih, rs: GH, cs: 1 }, 0, GH, false, lstm ? 3 : 1, o.bih, o.bhh);
    void MATMUL_UNIFORM_WORDS;
    const ops = train ? {
      fcW: mm(SLOT.fcW, 1, H, B, { off: B, rs: 0, cs: 1 }, { off: T * B * H, rs: H, cs: 1 }, o.fcw, H, false),
      fcB: mm(SLOT.fcB, 1, 1, B, { off: B, rs: 0, cs: 1 }, { off: 0, rs: 0, cs: 0 }, o.fcb, 1, false),
      dWih: mm(SLOT.dWih, E, GH, rows, { off: 0, rs: 1, cs: E }, { off: 0, rs: GH, cs: 1 }, o.wih, GH, true),
      dWhh: mm(SLOT.dWhh, H, GH, rows, { off: 0, rs: 1, cs: H }, { off: 0, rs: GH, cs: 1 }, o.whh, GH, true),
      dBih: mm(SLOT.dBih, 1, GH, rows, { off: 0, rs: 0, cs: 0 }, { off: 0, rs: GH, cs: 1 }, o.bih, GH, true),
      dBhh: mm(SLOT.dBhh, 1, GH, rows, { off: 0, rs: 0, cs: 0 }, { off: 0, rs: GH, cs: 1 }, o.bhh, GH, true),
      dX: mm(SLOT.dX, rows, E, GH, { off: 0, rs: GH, cs: 1 }, { off: o.wih, rs: 1, cs: GH }, 0, E, false),
    } : undefined;
    if (ops) {
      for (const [name, rs] of [["dWih", SLOT.rWih], ["dWhh", SLOT.rWhh], ["dBih", SLOT.rBih], ["dBhh", SLOT.rBhh]] as const) {
        const op = ops[name];
        put(rs, [op.n, op.S, op.n, op.dOff]);
      }
      put(SLOT.scatter, [U, E, 0, 0]);
    }

    // Uploads.
    q.writeBuffer(this.s.P, 0, params.buffer, params.byteOffset + this.base * 4, Np * 4);
    if (U > 0) q.writeBuffer(bb.embC, 0, embC);
    q.writeBuffer(bb.ctok, 0, ctok);
    q.writeBuffer(bb.lens, 0, lengths.buffer, lengths.byteOffset, B * 4);
    q.writeBuffer(bb.y, 0, batch.targets.buffer, batch.targets.byteOffset, B * 4);
    if (mask) q.writeBuffer(bb.head, 2 * B * 4, mask.buffer as ArrayBuffer, mask.byteOffset, mask.byteLength);
    if (train) { q.writeBuffer(bb.start, 0, start); q.writeBuffer(bb.pos, 0, pos); }
    q.writeBuffer(bb.uni, 0, this.uni);

    // Record. The forward pass is submitted on its own, so that the GPU runs it while BPTT is recorded.
    device.pushErrorScope("validation");
    let enc = device.createCommandEncoder();
    enc.clearBuffer(bb.Hs, 0, Math.ceil(B * H * 4 / 4) * 4);
    enc.clearBuffer(bb.Cs, 0, Math.ceil(B * H * 4 / 4) * 4);
    if (train) enc.clearBuffer(bb.carry);
    const ts = this.ts;
    const phase = (i: number) => enc.beginComputePass(ts ? { timestampWrites: { querySet: ts.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } } : {});
    let pass = phase(0);
    const g = bb.groups, k = this.s.pipes;
    const run = (pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y = 1, z = 1) => {
      pass.setPipeline(pipe); pass.setBindGroup(0, group); pass.dispatchWorkgroups(x, y, z);
    };
    run(k.gather.pipeline, g.gather, ...grid1(Math.ceil(rows * E / 256)));
    run(k.matmul.pipeline, g.proj, ...proj.grid);
    const stepGrid = [Math.ceil(H / 16), Math.ceil(B / 16)] as const;
    pass.setPipeline(k.forward.pipeline);
    for (let t = 0; t < T; t++) {
      pass.setBindGroup(0, g.forward, [t * STEP_SLOT_BYTES]);
      pass.dispatchWorkgroups(...stepGrid);
    }
    run(k.head.pipeline, g.head, Math.ceil(B / 64));
    if (ops) {
      pass.end();
      q.submit([enc.finish()]);
      enc = device.createCommandEncoder();
      pass = phase(1);
      run(k.matmul.pipeline, g.fcW, ...ops.fcW.grid);
      run(k.matmul.pipeline, g.fcB, ...ops.fcB.grid);
      pass.setPipeline(k.backward.pipeline);
      for (let t = T - 1; t >= 0; t--) {
        pass.setBindGroup(0, g.backward, [t * STEP_SLOT_BYTES]);
        pass.dispatchWorkgroups(...stepGrid);
      }
      pass.end();
      pass = phase(2);
      for (const name of ["dWih", "dWhh", "dBih", "dBhh"] as const) {
        const op = ops[name];
        if (op.S > 1) {
          run(k.matmul.pipeline, g[name + "Split"], ...op.grid);
          run(k.reduce.pipeline, g[name + "Reduce"], ...grid1(Math.ceil(op.n / 256)));
        } else {
          run(k.matmul.pipeline, g[name], ...op.grid);
        }
      }
      run(k.matmul.pipeline, g.dX, ...ops.dX.grid);
      if (U > 0) run(k.scatter.pipeline, g.scatter, ...grid1(U));
    }
    pass.end();
    const gradOff = B * 4, embOff = (B + Np) * 4;
    enc.copyBufferToBuffer(bb.head, 0, bb.staging, 0, B * 4);
    if (train) {
      enc.copyBufferToBuffer(this.s.G, 0, bb.staging, gradOff, Np * 4);
      if (U > 0) enc.copyBufferToBuffer(bb.dEmbC, 0, bb.staging, embOff, U * E * 4);
    }
    if (ts && train) {
      enc.resolveQuerySet(ts.set, 0, 2 * PHASES, ts.resolve, 0);
      enc.copyBufferToBuffer(ts.resolve, 0, ts.read, 0, 16 * PHASES);
    }
    q.submit([enc.finish()]);
    const tSubmit = performance.now();

    const readBytes = train ? embOff + U * E * 4 : B * 4;
    const [invalid] = await Promise.all([device.popErrorScope(), bb.staging.mapAsync(MAP_READ_MODE, 0, Math.ceil(readBytes / 8) * 8)]);
    if (invalid) {
      bb.staging.unmap();
      throw new UnavailableError(`WebGPU rejected the step (batch ${B} × ${T}): ${invalid.message}`);
    }
    const tMapped = performance.now();
    const mapped = bb.staging.getMappedRange(0, Math.ceil(readBytes / 8) * 8);
    const logits = new Float32Array(mapped, 0, B).slice();
    let grads: Float32Array | undefined;
    let embeddingRows: Int32Array | undefined;
    if (train) {
      grads = new Float32Array(this.layout.size);
      grads.set(new Float32Array(mapped, gradOff, Np), this.base);
      const dEmb = new Float32Array(mapped, embOff, U * E);
      const touched: number[] = [];
      for (let u = 0; u < U; u++) {
        if (u === padU) continue;
        touched.push(uniq[u]);
        grads.set(dEmb.subarray(u * E, u * E + E), uniq[u] * E);
      }
      embeddingRows = Int32Array.from(touched).sort();
    }
    bb.staging.unmap();
    const p = this.profile;
    p.steps++; p.hostMs += tSubmit - tStart; p.waitMs += tMapped - tSubmit; p.unpackMs += performance.now() - tMapped;
    if (ts && train) {
      await ts.read.mapAsync(MAP_READ_MODE, 0, 16 * PHASES);
      const ns = new BigUint64Array(ts.read.getMappedRange(0, 16 * PHASES));
      const ms = (i: number) => Number(ns[2 * i + 1] - ns[2 * i]) / 1e6;
      p.gpuSteps++; p.gpuForwardMs += ms(0); p.gpuBackwardMs += ms(1); p.gpuGradsMs += ms(2);
      ts.read.unmap();
    }
    const { lossSum, correct } = lossAndGrad(logits, batch.targets, this.lossKind);
    if (!train) return { lossSum, correct, count: B, outputs: logits };
    return { lossSum, correct, count: B, grads: grads!, embeddingRows, touched: { "embedding.weight": embeddingRows! } };
  }
}

/** A 1-D count of workgroups as a 2-D grid within the 65,535 per-dimension limit (kernels flatten it). */
function grid1(n: number): [number, number] {
  const x = Math.min(Math.max(n, 1), 65535);
  return [x, Math.ceil(Math.max(n, 1) / x)];
}

function check(opts: EngineOptions): void {
  const m: ModelConfig = opts.model;
  if ((m.task ?? "classify") !== "classify") throw new UsageError(`the WebGPU engine trains the classifier only (task ${m.task} runs on the CPU engine)`);
  if ((opts.input ?? "tokens") !== "tokens") throw new UsageError("the WebGPU engine supports token input only (use the CPU engine for dense inputs)");
  if (m.layers !== 1 || m.bidirectional) throw new UsageError(`the WebGPU engine supports 1 unidirectional layer (got layers=${m.layers}, bidirectional=${m.bidirectional})`);
}

/** Reviews [from, to) of a batch, re-padded to their own longest length. */
function sliceBatch(b: EngineBatch, from: number, to: number): EngineBatch {
  const n = to - from;
  const lengths = b.lengths.slice(from, to);
  const T = Math.max(...lengths);
  const tokens = new Int32Array(n * T).fill(PAD_ID);
  for (let i = 0; i < n; i++) tokens.set(b.tokens!.subarray((from + i) * b.maxLen, (from + i) * b.maxLen + lengths[i]), i * T);
  return { size: n, maxLen: T, lengths, tokens, targets: b.targets.slice(from, to), ids: b.ids?.slice(from, to), dropout: b.dropout };
}

function merge(a: StepResult | EvalResult, b: StepResult | EvalResult, train: boolean): StepResult | EvalResult {
  const base = { lossSum: a.lossSum + b.lossSum, correct: a.correct + b.correct, count: a.count + b.count };
  if (!train) {
    const x = a as EvalResult, y = b as EvalResult;
    const outputs = new Float32Array(x.outputs.length + y.outputs.length);
    outputs.set(x.outputs); outputs.set(y.outputs, x.outputs.length);
    return { ...base, outputs };
  }
  const x = a as StepResult, y = b as StepResult;
  for (let i = 0; i < x.grads.length; i++) x.grads[i] += y.grads[i];
  const rows = Int32Array.from(new Set([...(x.embeddingRows ?? []), ...(y.embeddingRows ?? [])])).sort();
  return { ...base, grads: x.grads, embeddingRows: rows, touched: { "embedding.weight": rows } };
}

/** createEngine({backend: "webgpu"}) for the GPU engine (see src/engine/index.ts). */
export function createGpuEngine(opts: GpuEngineOptions): Promise<GpuEngine> {
  return GpuEngine.create(opts);
}
