// `bench gpu-engine`: training steps (forward + backward to the full gradient, copied back to the host) of
// the WebGPU engine over real IMDB length buckets, batched the way the PyTorch anchor batches them (shuffle,
// pools of 100·B reviews sorted by length, chunks of B, batches shuffled), at each batch size; then, in the
// same run and on the same card, PyTorch's cuDNN LSTM (torch_imdb_anchor.py) for the ratio.
import { writeAtomic } from "../atomic.js";
import { join } from "node:path";
import type { CellKind, ModelConfig } from "../config.js";
import { UnavailableError } from "../errors.js";
import { initParams } from "../model/layout.js";
import { logger, progress } from "../output.js";
import { Rng } from "../rng.js";
import { batchRows, createEngine, toFullStep, toRowParams } from "../engine/index.js";
import { loadReviewSample, makeBatch, type EncodedReview } from "./sample.js";
import type { EngineBatch } from "../engine/types.js";
import { runAnchor, type AnchorResult } from "./gpu-anchor.js";
import { acquireDevice } from "../engine/gpu/device.js";
import { GpuEngine, type GpuProfile } from "../engine/gpu/engine.js";

const log = logger("bench-gpu");

export interface BenchGpuOptions {
  data: string;
  batchSizes: number[];
  cell: CellKind;
  hidden: number;
  embedDim: number;
  vocabSize: number;
  /** Reviews read from the archive (0 = all 25,000). */
  count: number;
  maxBatches: number;
  maxSeconds: number;
  adapter: "gpu" | "software" | "any";
  check: boolean;
  torch?: { python: string; script: string; test: string; epochs: number; timeoutS: number };
  out?: string;
  seed: number;
  /** GPU time per phase from timestamp queries (separate passes per phase). */
  gpuTimestamps?: boolean;
}

/** One object per batch size, as committed under bench/results/. */
export interface GpuBenchRow {
  bench: "gpu-engine";
  device: string;
  batch: number;
  samples_per_s: number;
  baseline_samples_per_s: number | null;
  ratio: number | null;
  tokens_per_s: number;
  batches: number;
  seconds: number;
  mean_padded_len: number;
  baseline: string;
  date: string;
  software_adapter: boolean;
  model: ModelConfig;
  /** Per step, ms: host work before submit (token tables, uploads, recording), waiting for the GPU and the copy back, unpacking. */
  host_ms: number;
  wait_ms: number;
  unpack_ms: number;
  /** Forward only (evaluate) over the same first batches, reviews/s. */
  forward_samples_per_s: number;
  /** GPU time per step, ms, from timestamp queries (null without the feature): forward, BPTT, weight gradients. */
  gpu_forward_ms: number | null;
  gpu_backward_ms: number | null;
  gpu_grads_ms: number | null;
  /** The rows form (stepRows given the dense part and the batch's rows) over the first 20 batches: reviews/s, unpack ms and bytes read back per step. */
  rows_samples_per_s: number;
  rows_unpack_ms: number;
  rows_readback_bytes: number;
}

export interface GpuBenchResult {
  rows: GpuBenchRow[];
  /** rows_bit_identical: stepRows given only the batch's rows gave the full step's gradient bit for bit. */
  check?: { max_rel_err: number; per_tensor: Record<string, number>; batch: number; length: number; rows_bit_identical: boolean };
  file?: string;
  torch?: Pick<AnchorResult, "gpu" | "epochs">;
}

/** Batches as torch_imdb_anchor.py makes them: shuffled pools of 100·B sorted by length, chunked, shuffled. */
export function anchorBatches(reviews: readonly EncodedReview[], B: number, rng: Rng): EngineBatch[] {
  const order = rng.shuffle(Int32Array.from(reviews, (_, i) => i));
  const out: EngineBatch[] = [];
  const pool = B * 100;
  for (let p = 0; p < order.length; p += pool) {
    const chunk = Array.from(order.subarray(p, p + pool)).sort((a, b) => reviews[a].ids.length - reviews[b].ids.length);
    for (let i = 0; i < chunk.length; i += B) out.push(makeBatch(chunk.slice(i, i + B).map((j) => reviews[j])));
  }
  return rng.shuffle(out);
}

/** "NVIDIA H200" → "nvidia-h200". */
export function cardSlug(name: string): string {
  return name.toLowerCase().replace(/\(.*?\)/g, "").replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "gpu";
}

export async function benchGpu(o: BenchGpuOptions): Promise<GpuBenchResult> {
  const gpu = await acquireDevice({ kind: o.adapter });
  if (gpu.software) log.warn(`software adapter ${gpu.name}: timings mean nothing here`);
  log.info(`adapter ${gpu.name}; reading and tokenizing ${o.data}`);
  const sample = await loadReviewSample(o.data, { vocabSize: o.vocabSize, count: o.count || undefined, seed: o.seed });
  const model: ModelConfig = { cell: o.cell, vocabSize: sample.vocab.length, embedDim: o.embedDim, hidden: o.hidden, layers: 1, bidirectional: false };
  const engine = await GpuEngine.create({ model, gpu, timestamps: o.gpuTimestamps });
  if (o.gpuTimestamps && !engine.timed) log.warn("this adapter has no timestamp-query feature: no GPU phase times");
  const params = initParams(model, o.seed);
  const date = new Date().toISOString().slice(0, 10);
  const result: GpuBenchResult = { rows: [] };

  if (o.check) result.check = await checkAgainstCpu(engine, model, params, sample.reviews);

  const timings: Timing[] = [];
  for (const B of o.batchSizes) timings.push(await timeBatchSize(engine, params, anchorBatches(sample.reviews, B, new Rng(o.seed)), B, o, model.vocabSize));
  engine.dispose();
  gpu.device.destroy();

  let anchor: AnchorResult | undefined;
  if (o.torch) {
    log.info(`PyTorch anchor: ${o.torch.python} ${o.torch.script} (same card, after the engine)`);
    anchor = await runAnchor({ ...o.torch, train: o.data, lastBatch: Math.max(...o.batchSizes) });
    result.torch = { gpu: anchor.gpu, epochs: anchor.epochs };
  }
  result.rows = timings.map((t) => resultRow(t, { device: gpu.name, software: gpu.software, date, model, anchor }));
  if (o.out) result.file = await writeRows(o.out, `${date}-${cardSlug(gpu.name)}-webgpu.json`, result.rows);
  return result;
}

/** What one batch size measured. */
interface Timing {
  B: number; samples: number; tokens: number; padded: number; secs: number; batches: number;
  /** Per step, ms: host, GPU wait + copy, unpack; GPU phases (null without timestamps). */
  prof: { host: number; wait: number; unpack: number; gpu: number[] | null };
  /** Forward only, reviews/s. */
  fwd: number;
  rows: RowsTiming;
}

/** Training steps in the rows form (stepRows given RowParams, as a worker pulling rows runs them). */
interface RowsTiming { samplesPerS: number; unpackMs: number; readbackBytes: number }

/** Warm-up, then full steps over the batches (an epoch or the limits), then forward only and rows-form steps over the first 20. */
async function timeBatchSize(engine: GpuEngine, params: Float32Array, batches: EngineBatch[], B: number, o: BenchGpuOptions, V: number): Promise<Timing> {
  const n = o.maxBatches > 0 ? Math.min(o.maxBatches, batches.length) : batches.length;
  // Warm-up: the longest bucket (buffers reach their final capacity) and the first batch (pipelines).
  const longest = batches.reduce((a, b) => (b.maxLen > a.maxLen ? b : a));
  await engine.step(params, longest);
  await engine.step(params, batches[0]);
  const bar = progress(`gpu-engine B=${B}`, n, "batches");
  let samples = 0, tokens = 0, padded = 0, done = 0;
  const p0 = { ...engine.profile };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const b = batches[i];
    await engine.step(params, b);
    samples += b.size; padded += b.size * b.maxLen;
    for (const l of b.lengths) tokens += l;
    done++;
    bar.tick();
    if ((performance.now() - t0) / 1000 > o.maxSeconds) break;
  }
  const secs = (performance.now() - t0) / 1000;
  bar.done();
  const prof = profileSince(p0, engine.profile);
  const first = batches.slice(0, Math.min(done, 20));
  const fwd = await timeForward(engine, params, first);
  const rows = await timeRows(engine, params, first, V);
  log.info(`B=${B}: ${done} batches in ${secs.toFixed(2)} s, ${(samples / secs).toFixed(0)} reviews/s, ${(tokens / secs).toFixed(0)} tokens/s; ` +
    `per step ${prof.host.toFixed(2)} ms host, ${prof.wait.toFixed(2)} ms GPU+copy, ${prof.unpack.toFixed(2)} ms unpack; ` +
    (prof.gpu ? `GPU ${prof.gpu.map((x) => x.toFixed(2)).join(" / ")} ms forward / BPTT / weight grads; ` : "") +
    `forward only ${fwd.toFixed(0)} reviews/s; rows form ${rows.samplesPerS.toFixed(0)} reviews/s, ${rows.unpackMs.toFixed(2)} ms unpack, ` +
    `${(rows.readbackBytes / 2 ** 20).toFixed(2)} MiB read back per step; GPU buffers ${(engine.bufferBytes / 2 ** 20).toFixed(0)} MiB`);
  return { B, samples, tokens, padded, secs, batches: done, prof, fwd, rows };
}

/** Per-step means of the engine's profile between two snapshots. */
function profileSince(p0: GpuProfile, p1: GpuProfile): Timing["prof"] {
  const k = p1.steps - p0.steps, kg = p1.gpuSteps - p0.gpuSteps;
  return {
    host: (p1.hostMs - p0.hostMs) / k, wait: (p1.waitMs - p0.waitMs) / k, unpack: (p1.unpackMs - p0.unpackMs) / k,
    gpu: kg > 0 ? [(p1.gpuForwardMs - p0.gpuForwardMs) / kg, (p1.gpuBackwardMs - p0.gpuBackwardMs) / kg, (p1.gpuGradsMs - p0.gpuGradsMs) / kg] : null,
  };
}

/** Forward only (evaluate), reviews/s. */
async function timeForward(engine: GpuEngine, params: Float32Array, batches: EngineBatch[]): Promise<number> {
  const f0 = performance.now();
  let n = 0;
  for (const b of batches) { await engine.evaluate(params, b); n += b.size; }
  return n / ((performance.now() - f0) / 1000);
}

/** stepRows given the dense part and each batch's rows; building those (the sender's work) is not timed. */
async function timeRows(engine: GpuEngine, params: Float32Array, batches: EngineBatch[], V: number): Promise<RowsTiming> {
  const p0 = { ...engine.profile };
  let ms = 0, n = 0;
  for (const b of batches) {
    const given = toRowParams(engine.layout, params, batchRows(b, V));
    const t0 = performance.now();
    await engine.stepRows(given, b);
    ms += performance.now() - t0;
    n += b.size;
  }
  const p1 = engine.profile, k = Math.max(1, p1.steps - p0.steps);
  return { samplesPerS: n / (ms / 1000), unpackMs: (p1.unpackMs - p0.unpackMs) / k, readbackBytes: (p1.readbackBytes - p0.readbackBytes) / k };
}

function resultRow(t: Timing, c: { device: string; software: boolean; date: string; model: ModelConfig; anchor?: AnchorResult }): GpuBenchRow {
  const sps = t.samples / t.secs;
  const base = c.anchor?.samplesPerS.get(t.B) ?? null;
  return {
    bench: "gpu-engine", device: c.device, batch: t.B, samples_per_s: sps,
    baseline_samples_per_s: base, ratio: base ? sps / base : null,
    tokens_per_s: t.tokens / t.secs, batches: t.batches, seconds: t.secs, mean_padded_len: t.padded / t.samples,
    baseline: c.anchor ? `PyTorch nn.LSTM (cuDNN) torch_imdb_anchor.py${c.anchor.gpu ? " on " + c.anchor.gpu : ""}` : "none (--skip-baseline)",
    date: c.date, software_adapter: c.software, model: c.model,
    host_ms: t.prof.host, wait_ms: t.prof.wait, unpack_ms: t.prof.unpack, forward_samples_per_s: t.fwd,
    gpu_forward_ms: t.prof.gpu?.[0] ?? null, gpu_backward_ms: t.prof.gpu?.[1] ?? null, gpu_grads_ms: t.prof.gpu?.[2] ?? null,
    rows_samples_per_s: t.rows.samplesPerS, rows_unpack_ms: t.rows.unpackMs, rows_readback_bytes: t.rows.readbackBytes,
  };
}

/** Writes the rows as one JSON file in `dir` (through a temporary file), returns its path. */
async function writeRows(dir: string, name: string, rows: GpuBenchRow[]): Promise<string> {
  const file = join(dir, name);
  writeAtomic(file, [Buffer.from(JSON.stringify(rows, null, 2) + "\n")]);
  return file;
}

/** Gradients of one real batch (16 reviews near the 25th length percentile) against the CPU engine. */
async function checkAgainstCpu(engine: GpuEngine, model: ModelConfig, params: Float32Array, reviews: readonly EncodedReview[]): Promise<NonNullable<GpuBenchResult["check"]>> {
  const sorted = [...reviews].sort((a, b) => a.ids.length - b.ids.length);
  const at = Math.floor(sorted.length * 0.25);
  const batch = makeBatch(sorted.slice(at, at + Math.min(16, sorted.length - at)));
  let cpu;
  try {
    cpu = await createEngine({ model, backend: "wasm" });
  } catch (err) {
    throw new UnavailableError("the CPU engine (wasm) for --check could not start", { cause: err });
  }
  const want = await cpu.step(params, batch);
  const got = await engine.step(params, batch);
  const per: Record<string, number> = {};
  let worst = Math.abs(got.lossSum - want.lossSum) / Math.max(1e-12, Math.abs(want.lossSum));
  for (const e of engine.layout.entries) {
    let d = 0, m = 0;
    for (let i = e.offset; i < e.offset + e.size; i++) { d = Math.max(d, Math.abs(got.grads[i] - want.grads[i])); m = Math.max(m, Math.abs(want.grads[i])); }
    per[e.name] = m === 0 ? d : d / m;
    worst = Math.max(worst, per[e.name]);
  }
  const rows = toFullStep(engine.layout, await engine.stepRows(toRowParams(engine.layout, params, batchRows(batch, model.vocabSize)), batch));
  const same = sameBits(rows.grads, got.grads) && String(rows.embeddingRows) === String(got.embeddingRows);
  log.info(`check vs CPU engine (B=${batch.size}, T=${batch.maxLen}): max relative error ${worst.toExponential(2)}; rows form ${same ? "bit-identical" : "DIFFERS"}`);
  return { max_rel_err: worst, per_tensor: per, batch: batch.size, length: batch.maxLen, rows_bit_identical: same };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.every((v, i) => v === y[i]);
}
