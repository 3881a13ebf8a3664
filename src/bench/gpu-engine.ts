// `bench gpu-engine`: training steps (forward + backward to the full gradient, copied back to the host) of
// the WebGPU engine over real IMDB length buckets, batched the way the PyTorch anchor batches them (shuffle,
// pools of 100·B reviews sorted by length, chunks of B, batches shuffled), at each batch size; then, in the
// same run and on the same card, PyTorch's cuDNN LSTM (torch_imdb_anchor.py) for the ratio.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CellKind, ModelConfig } from "../config.js";
import { UnavailableError } from "../errors.js";
import { initParams } from "../model/layout.js";
import { logger, progress } from "../output.js";
import { Rng } from "../rng.js";
import { createEngine } from "../engine/index.js";
import { loadReviewSample, makeBatch, type EncodedReview } from "./sample.js";
import type { EngineBatch } from "../engine/types.js";
import { runAnchor, type AnchorResult } from "./gpu-anchor.js";
import { acquireDevice } from "../engine/gpu/device.js";
import { GpuEngine } from "../engine/gpu/engine.js";

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
}

export interface GpuBenchResult {
  rows: GpuBenchRow[];
  check?: { max_rel_err: number; per_tensor: Record<string, number>; batch: number; length: number };
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

  const timings: { B: number; samples: number; tokens: number; padded: number; secs: number; batches: number; prof: { host: number; wait: number; unpack: number; gpu: number[] | null }; fwd: number }[] = [];
  for (const B of o.batchSizes) {
    const batches = anchorBatches(sample.reviews, B, new Rng(o.seed));
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
    const p1 = engine.profile, k = p1.steps - p0.steps;
    const kg = p1.gpuSteps - p0.gpuSteps;
    const prof = {
      host: (p1.hostMs - p0.hostMs) / k, wait: (p1.waitMs - p0.waitMs) / k, unpack: (p1.unpackMs - p0.unpackMs) / k,
      gpu: kg > 0 ? [(p1.gpuForwardMs - p0.gpuForwardMs) / kg, (p1.gpuBackwardMs - p0.gpuBackwardMs) / kg, (p1.gpuGradsMs - p0.gpuGradsMs) / kg] : null,
    };
    // Forward only over (up to) the same first 20 batches.
    const fb = batches.slice(0, Math.min(done, 20));
    const f0 = performance.now();
    let fs = 0;
    for (const b of fb) { await engine.evaluate(params, b); fs += b.size; }
    const fwd = fs / ((performance.now() - f0) / 1000);
    log.info(`B=${B}: ${done} batches in ${secs.toFixed(2)} s, ${(samples / secs).toFixed(0)} reviews/s, ${(tokens / secs).toFixed(0)} tokens/s; ` +
      `per step ${prof.host.toFixed(2)} ms host, ${prof.wait.toFixed(2)} ms GPU+copy, ${prof.unpack.toFixed(2)} ms unpack; ` +
      (prof.gpu ? `GPU ${prof.gpu.map((x) => x.toFixed(2)).join(" / ")} ms forward / BPTT / weight grads; ` : "") +
      `forward only ${fwd.toFixed(0)} reviews/s; GPU buffers ${(engine.bufferBytes / 2 ** 20).toFixed(0)} MiB`);
    timings.push({ B, samples, tokens, padded, secs, batches: done, prof, fwd });
  }
  engine.dispose();
  gpu.device.destroy();

  let anchor: AnchorResult | undefined;
  if (o.torch) {
    log.info(`PyTorch anchor: ${o.torch.python} ${o.torch.script} (same card, after the engine)`);
    anchor = await runAnchor({ ...o.torch, train: o.data, lastBatch: Math.max(...o.batchSizes) });
    result.torch = { gpu: anchor.gpu, epochs: anchor.epochs };
  }
  for (const t of timings) {
    const sps = t.samples / t.secs;
    const base = anchor?.samplesPerS.get(t.B) ?? null;
    result.rows.push({
      bench: "gpu-engine", device: gpu.name, batch: t.B, samples_per_s: sps,
      baseline_samples_per_s: base, ratio: base ? sps / base : null,
      tokens_per_s: t.tokens / t.secs, batches: t.batches, seconds: t.secs, mean_padded_len: t.padded / t.samples,
      baseline: anchor ? `PyTorch nn.LSTM (cuDNN) torch_imdb_anchor.py${anchor.gpu ? " on " + anchor.gpu : ""}` : "none (--skip-baseline)",
      date, software_adapter: gpu.software, model,
      host_ms: t.prof.host, wait_ms: t.prof.wait, unpack_ms: t.prof.unpack, forward_samples_per_s: t.fwd,
      gpu_forward_ms: t.prof.gpu?.[0] ?? null, gpu_backward_ms: t.prof.gpu?.[1] ?? null, gpu_grads_ms: t.prof.gpu?.[2] ?? null,
    });
  }
  if (o.out) {
    await mkdir(o.out, { recursive: true });
    const file = join(o.out, `${date}-${cardSlug(gpu.name)}-webgpu.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(result.rows, null, 2) + "\n");
    await rename(tmp, file);
    result.file = file;
  }
  return result;
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
  log.info(`check vs CPU engine (B=${batch.size}, T=${batch.maxLen}): max relative error ${worst.toExponential(2)}`);
  return { max_rel_err: worst, per_tensor: per, batch: batch.size, length: batch.maxLen };
}
