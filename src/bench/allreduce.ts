// `bench allreduce` and `bench scaling`. Each prints its baseline from the same run and the ratio.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { emitJson, logger } from "../output.js";
import { UsageError, TrainingError } from "../errors.js";
import { DEFAULTS, type ModelConfig } from "../config.js";
import { paramLayout } from "../model/layout.js";
import { messageLimitFor } from "../protocol/wire.js";
import { RouterChannel } from "../transport/zmq.js";
import { Coordinator, BIN, TRAIN_DEFAULTS } from "../coordinator/index.js";
import { Adam } from "../optim/adam.js";
import { Arena } from "../optim/kernels.js";

const log = logger("bench");
const SYNTHETIC = fileURLToPath(new URL("./synthetic-worker.js", import.meta.url));
const WARMUP = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

interface Row {
  workers: number; bytes_per_round: number; raw_ms: number; round_ms: number; raw_gb_s: number; round_gb_s: number; ratio: number;
  reduce_ms: number; optimizer_ms: number;
  /** CPU time of this process (JS thread + ZeroMQ's I/O thread) per round: a load-independent view. */
  raw_cpu_ms: number; round_cpu_ms: number;
}

const cpuMs = (): number => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };

/** CPU ns per parameter of one Adam update over `size` values: the SIMD kernel and its JS twin. */
export function timeAdam(size: number, reps = 10): { simd_ns_per_element: number; js_ns_per_element: number } {
  const arena = new Arena(Arena.floatsFor(size, size, size, size, size, size));
  const p = arena.alloc(size), acc = arena.alloc(size);
  for (let i = 0; i < size; i++) { p[i] = Math.sin(i) * 0.1; acc[i] = Math.cos(i) * 1e-3; }
  const simd = new Adam(size, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, arena);
  const js = new Adam(size, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const pj = Float32Array.from(p), accj = Float32Array.from(acc);
  const time = (f: () => void): number => {
    for (let i = 0; i < 2; i++) f();
    const c0 = cpuMs();
    for (let i = 0; i < reps; i++) f();
    return ((cpuMs() - c0) * 1e6) / reps / size;
  };
  return {
    simd_ns_per_element: time(() => simd.apply(simd.begin(), p, p, acc, 0, size, 1 / 64, 1)),
    js_ns_per_element: time(() => js.apply(js.begin(), pj, pj, accj, 0, size, 1 / 64, 1)),
  };
}

async function timeRow(n: number, model: ModelConfig, rounds: number): Promise<Row> {
  const layout = paramLayout(model);
  const limit = messageLimitFor(layout.size);
  const raw = await RouterChannel.bind("tcp://127.0.0.1:*", { maxBytes: limit });
  const coord = new Coordinator({
    bind: "tcp://127.0.0.1:*", dataset: "(synthetic)", model, trainBatches: (rounds + WARMUP) * n, valBatches: 0, workers: n, batchesPerStep: n,
    epochs: 1, maxStepsPerEpoch: rounds + WARMUP, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 5, seed: 1, stepTimeoutS: 60,
    initialParams: new Float32Array(layout.size),
  });
  // a round is the time from one step's end to the next (parameters out, gradients in, reduce, clip, Adam):
  // with the parameters broadcast in chunks during Adam, a step's own duration would miss their transfer
  const stepAt: number[] = [], stepCpu: number[] = [];
  (coord as unknown as { o: { onEvent: (e: { type: string }) => void } }).o.onEvent = (e) => { if (e.type === "step") { stepAt.push(performance.now()); stepCpu.push(cpuMs()); } };
  const endpoint = await coord.listen();
  const kids: ChildProcess[] = [];
  for (let i = 0; i < n; i++) kids.push(spawn(process.execPath, [SYNTHETIC, raw.endpoint, endpoint, `s${i}`], { stdio: ["ignore", "ignore", "inherit"] }));
  try {
    // raw baseline: the parameters' bytes out to every worker, the same bytes back from each
    const it = raw.messages();
    const peers: string[] = [];
    while (peers.length < n) { const m = (await it.next()).value!; peers.push(m.peer); }
    const payload = Buffer.alloc(layout.size * 4, 2);
    const rawMs: number[] = [];
    let rawCpu = 0;
    for (let r = 0; r < rounds + WARMUP; r++) {
      if (r === WARMUP) rawCpu = cpuMs();
      const t0 = performance.now();
      await Promise.all(peers.map((p) => raw.send(p, [payload])));
      for (let k = 0; k < n; k++) await it.next();
      if (r >= WARMUP) rawMs.push(performance.now() - t0);
    }
    rawCpu = (cpuMs() - rawCpu) / rounds;
    await Promise.all(peers.map((p) => raw.send(p, [Buffer.from("bye")])));
    // the real round: Assign + parameters out, gradients in, reduce, clip, Adam
    const res = await coord.run();
    const roundMs = median(stepAt.slice(WARMUP - 1).slice(1).map((t, i) => t - stepAt[WARMUP - 1 + i]!));
    const bytes = 2 * n * layout.size * 4;
    const rm = median(rawMs);
    return {
      workers: n, bytes_per_round: bytes, raw_ms: rm, round_ms: roundMs,
      raw_gb_s: bytes / (rm / 1000) / 1e9, round_gb_s: bytes / (roundMs / 1000) / 1e9, ratio: rm / roundMs,
      reduce_ms: (res.phases.reduce / res.steps) * 1000, optimizer_ms: (res.phases.optimizer / res.steps) * 1000,
      raw_cpu_ms: rawCpu, round_cpu_ms: (stepCpu[stepCpu.length - 1]! - stepCpu[WARMUP - 1]!) / (stepCpu.length - WARMUP),
    };
  } finally {
    await coord.close("bench done");
    raw.close();
    await Promise.all(kids.map((k) => new Promise((r) => { if (k.exitCode !== null) r(null); else { k.once("exit", r); setTimeout(() => k.kill("SIGKILL"), 5000); } })));
  }
}

// ---- scale-out rows: fp16, embedding rows, coordinator shards, 2–16 workers -------------------------------------

interface Variant { name: string; gradDtype: "fp32" | "fp16"; embeddingGrads: "dense" | "rows"; shards: number }

function parseVariant(v: string): Variant {
  const m = /^(fp32|fp16)(-rows)?(?:-shards(\d+))?$/.exec(v);
  if (!m) throw new UsageError(`--variants: ${v} is not fp32|fp16[-rows][-shardsK] (e.g. fp16-rows, fp32-shards4)`);
  return { name: v, gradDtype: m[1] as "fp32" | "fp16", embeddingGrads: m[2] ? "rows" : "dense", shards: Number(m[3] ?? 1) };
}

interface ScaleRow {
  workers: number; variant: string; grad_dtype: string; embedding_grads: string; coordinator_shards: number;
  /** Gradient payload bytes of one step, all workers together; parameters sent back (all workers); the most
   *  gradient bytes one coordinator process receives. */
  gradient_bytes_per_step: number; parameter_bytes_per_step: number; max_process_gradient_bytes_per_step: number;
  round_ms: number;
  /** The fp32 dense round of the same worker count (same run) divided by this round: > 1 is faster. */
  speedup_vs_fp32_dense: number;
}

async function timeVariant(n: number, model: ModelConfig, rounds: number, v: Variant, touchedRows: number): Promise<Omit<ScaleRow, "speedup_vs_fp32_dense">> {
  const layout = paramLayout(model);
  const warm = 2;
  const coord = new Coordinator({
    bind: "tcp://127.0.0.1:*", dataset: "(synthetic)", model, trainBatches: (rounds + warm) * n, valBatches: 0, workers: n, batchesPerStep: n,
    epochs: 1, maxStepsPerEpoch: rounds + warm, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 5, seed: 1, stepTimeoutS: 120,
    initialParams: new Float32Array(layout.size), gradDtype: v.gradDtype, embeddingGrads: v.embeddingGrads, coordinatorShards: v.shards,
  });
  const stepAt: number[] = [];
  (coord as unknown as { o: { onEvent: (e: { type: string }) => void } }).o.onEvent = (e) => { if (e.type === "step") stepAt.push(performance.now()); };
  const endpoint = await coord.listen();
  const kids: ChildProcess[] = [];
  for (let i = 0; i < n; i++) kids.push(spawn(process.execPath, [SYNTHETIC, "-", endpoint, `s${i}`, String(touchedRows)], { stdio: ["ignore", "ignore", "inherit"] }));
  try {
    const res = await coord.run();
    const roundMs = median(stepAt.slice(warm).map((t, i) => t - stepAt[warm - 1 + i]!));
    const own = res.gradientBytes / res.steps; // what this (the busiest) coordinator process received per step
    const total = v.shards > 1 ? (n * layout.size * (v.gradDtype === "fp16" ? 2 : 4)) : own;
    return {
      workers: n, variant: v.name, grad_dtype: v.gradDtype, embedding_grads: v.embeddingGrads, coordinator_shards: v.shards,
      gradient_bytes_per_step: total, parameter_bytes_per_step: n * layout.size * 4, max_process_gradient_bytes_per_step: own, round_ms: roundMs,
    };
  } finally {
    await coord.close("bench done");
    await Promise.all(kids.map((k) => new Promise((r) => { if (k.exitCode !== null) r(null); else { k.once("exit", r); setTimeout(() => k.kill("SIGKILL"), 5000); } })));
  }
}

export async function benchAllreduce(o: Record<string, unknown>): Promise<number> {
  const counts = (o.workers as string[]).map(Number);
  if (counts.some((c) => !Number.isInteger(c) || c < 1)) throw new UsageError(`--workers must list positive integers, got ${String(o.workers)}`);
  const model: ModelConfig = { cell: "lstm", vocabSize: Number(o.vocabSize), embedDim: DEFAULTS.embedDim, hidden: Number(o.hidden), layers: 1, bidirectional: false };
  const rounds = Number(o.rounds);
  log.info(`model of ${paramLayout(model).size} parameters (${(paramLayout(model).size * 4 / 1e6).toFixed(1)} MB), ${rounds} rounds per row`);
  const rows: Row[] = [];
  for (const n of counts) {
    const r = await timeRow(n, model, rounds);
    rows.push(r);
    log.info(`${n} worker(s): round ${r.round_ms.toFixed(1)} ms (${r.round_gb_s.toFixed(2)} GB/s; reduce ${r.reduce_ms.toFixed(1)} ms, Adam ${r.optimizer_ms.toFixed(1)} ms; CPU ${r.round_cpu_ms.toFixed(1)} ms) vs raw ZeroMQ ${r.raw_ms.toFixed(1)} ms (${r.raw_gb_s.toFixed(2)} GB/s; CPU ${r.raw_cpu_ms.toFixed(1)} ms): ratio ${r.ratio.toFixed(2)}`);
  }
  const adam = timeAdam(paramLayout(model).size);
  log.info(`Adam over ${paramLayout(model).size} parameters (CPU time): SIMD kernel ${adam.simd_ns_per_element.toFixed(2)} ns/parameter, plain JS loop ${adam.js_ns_per_element.toFixed(2)} ns/parameter`);
  // scale-out rows: each variant next to the fp32 dense round of the same worker count, in the same run
  const scaleCounts = ((o.scaleWorkers as string[] | undefined) ?? []).map(Number).filter((c) => c > 0);
  const variants = ((o.variants as string[] | undefined) ?? []).map(parseVariant);
  const scale: ScaleRow[] = [];
  for (const n of scaleCounts) {
    const base = await timeVariant(n, model, Number(o.scaleRounds), parseVariant("fp32"), Number(o.touchedRows));
    scale.push({ ...base, speedup_vs_fp32_dense: 1 });
    for (const v of variants.filter((x) => x.name !== "fp32")) {
      const r = await timeVariant(n, model, Number(o.scaleRounds), v, Number(o.touchedRows));
      scale.push({ ...r, speedup_vs_fp32_dense: base.round_ms / r.round_ms });
    }
    for (const r of scale.filter((x) => x.workers === n)) {
      log.info(`${n} workers, ${r.variant.padEnd(16)}: ${(r.gradient_bytes_per_step / 1e6).toFixed(1)} MB of gradients per step (at most ${(r.max_process_gradient_bytes_per_step / 1e6).toFixed(1)} MB into one coordinator process), round ${r.round_ms.toFixed(1)} ms (${r.speedup_vs_fp32_dense.toFixed(2)}× fp32 dense)`);
    }
  }
  const at2 = rows.find((r) => r.workers === 2) ?? rows[0]!;
  const result = { bench: "allreduce", ratio: at2.ratio, parameters: paramLayout(model).size, adam, rows, scale_out: scale };
  if (o.json) emitJson(result);
  return 0;
}

function runTrain(args: string[]): Promise<Record<string, any>> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [BIN, "train", ...args, "--json"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout!.on("data", (d) => { out += String(d); });
    p.once("close", (code) => {
      if (code !== 0) return rej(new TrainingError(`train ${args.join(" ")} exited with ${code}`));
      try { res(JSON.parse(out.trim().split("\n").pop()!)); } catch (e) { rej(e); }
    });
  });
}

export async function benchScaling(o: Record<string, unknown>): Promise<number> {
  let tmp: string | null = null;
  let dataset = o.dataset ? resolve(String(o.dataset)) : "";
  try {
    if (!dataset) {
      if (!existsSync(String(o.data))) throw new UsageError(`no --dataset and the archive ${String(o.data)} is missing`);
      tmp = mkdtempSync(join(tmpdir(), "imdb-bench-scaling-"));
      dataset = join(tmp, "ds");
      const { runIngest } = await import("../ingest/index.js");
      log.info(`ingesting ${String(o.data)} into ${dataset}`);
      // batches as `train` makes them by default (32 reviews, the last --max-len tokens kept)
      await runIngest({ data: String(o.data), out: dataset, maxLen: Number(o.maxLen), batchSize: TRAIN_DEFAULTS.batchSize, keep: "last" });
    }
    const steps = Number(o.steps);
    const rows: { workers: number; samples_per_s: number; overhead: number; step_s: number }[] = [];
    for (const n of [1, 2]) {
      const out = mkdtempSync(join(tmpdir(), `imdb-bench-scaling-${n}w-`));
      try {
        // both runs take 2 batches per step, so they process the very same samples (1 worker does both batches)
        const r = await runTrain(["--dataset", dataset, "--out", out, "--workers", String(n), "--batches-per-step", "2", "--epochs", "1", "--max-steps", String(steps), "--max-val-batches", "1", "--backend", "wasm"]);
        rows.push({ workers: n, samples_per_s: r.samples_per_s, overhead: r.overhead, step_s: r.phases.step / r.steps });
        log.info(`${n} worker(s): ${r.samples_per_s.toFixed(1)} samples/s, ${(r.phases.step / r.steps).toFixed(2)} s/step, coordinator share ${(r.overhead * 100).toFixed(1)}%`);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    }
    const two = rows[1]!, one = rows[0]!;
    const result = { bench: "scaling", overhead: two.overhead, speedup: two.samples_per_s / one.samples_per_s, baseline_samples_per_s: one.samples_per_s, samples_per_s: two.samples_per_s, steps, rows };
    if (o.json) emitJson(result);
    return 0;
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}
