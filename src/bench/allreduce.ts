// `bench allreduce`: one reduce + clip + Adam + broadcast round next to raw ZeroMQ in the same run, and the
// scale-out variants (fp16, embedding rows, coordinator shards) next to the fp32 dense round.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { emitJson, logger } from "../output.js";
import { UsageError } from "../errors.js";
import { DEFAULTS, type ModelConfig } from "../config.js";
import { paramLayout } from "../model/layout.js";
import { payloadValues, sparseBlockOf } from "../protocol/gradcodec.js";
import { messageLimitFor } from "../protocol/wire.js";
import { RouterChannel } from "../transport/zmq/index.js";
import { Coordinator } from "../coordinator/index.js";
import type { AllreduceCliOptions } from "./command.js";
import { Adam } from "../optim/adam.js";
import { Arena } from "../optim/kernels.js";
import { childEnv } from "../children.js";

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
  // a round is the time from one step's end to the next (parameters out, gradients in, reduce, clip, Adam):
  // with the parameters broadcast in chunks during Adam, a step's own duration would miss their transfer
  const stepAt: number[] = [], stepCpu: number[] = [];
  const coord = new Coordinator({
    bind: "tcp://127.0.0.1:*", dataset: "(synthetic)", model, trainBatches: (rounds + WARMUP) * n, valBatches: 0, workers: n, batchesPerStep: n,
    epochs: 1, maxStepsPerEpoch: rounds + WARMUP, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 5, seed: 1, stepTimeoutS: 60,
    initialParams: new Float32Array(layout.size),
    onEvent: (e) => { if (e.type === "step") { stepAt.push(performance.now()); stepCpu.push(cpuMs()); } },
  });
  const endpoint = await coord.listen();
  const kids: ChildProcess[] = [];
  for (let i = 0; i < n; i++) kids.push(spawn(process.execPath, [SYNTHETIC, raw.endpoint, endpoint, `s${i}`], { stdio: ["ignore", "ignore", "inherit"], env: childEnv() }));
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
    await coord.close("bench done", true);
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
  const stepAt: number[] = [];
  const coord = new Coordinator({
    bind: "tcp://127.0.0.1:*", dataset: "(synthetic)", model, trainBatches: (rounds + warm) * n, valBatches: 0, workers: n, batchesPerStep: n,
    epochs: 1, maxStepsPerEpoch: rounds + warm, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 5, seed: 1, stepTimeoutS: 120,
    initialParams: new Float32Array(layout.size), gradDtype: v.gradDtype, embeddingGrads: v.embeddingGrads, coordinatorShards: v.shards,
    onEvent: (e) => { if (e.type === "step") stepAt.push(performance.now()); },
  });
  const endpoint = await coord.listen();
  const kids: ChildProcess[] = [];
  for (let i = 0; i < n; i++) kids.push(spawn(process.execPath, [SYNTHETIC, "-", endpoint, `s${i}`, String(touchedRows)], { stdio: ["ignore", "ignore", "inherit"], env: childEnv() }));
  try {
    const res = await coord.run();
    const roundMs = median(stepAt.slice(warm).map((t, i) => t - stepAt[warm - 1 + i]!));
    const own = res.gradientBytes / res.steps; // what the coordinator process (slice 0) received per step
    // sharded: every worker's whole gradient, over all the slices (rows form: the touched rows and their ids)
    const block = v.embeddingGrads === "rows" ? sparseBlockOf(layout) : null;
    const rows = block ? Math.min(block.rows, touchedRows) : null;
    const total = v.shards > 1 ? n * (payloadValues(layout.size, block, rows) * (v.gradDtype === "fp16" ? 2 : 4) + (rows ?? 0) * 4) : own;
    return {
      workers: n, variant: v.name, grad_dtype: v.gradDtype, embedding_grads: v.embeddingGrads, coordinator_shards: v.shards,
      gradient_bytes_per_step: total, parameter_bytes_per_step: n * layout.size * 4, max_process_gradient_bytes_per_step: own, round_ms: roundMs,
    };
  } finally {
    await coord.close("bench done", true);
    await Promise.all(kids.map((k) => new Promise((r) => { if (k.exitCode !== null) r(null); else { k.once("exit", r); setTimeout(() => k.kill("SIGKILL"), 5000); } })));
  }
}

export async function benchAllreduce(o: AllreduceCliOptions): Promise<number> {
  const counts = o.workers.map(Number);
  if (counts.some((c) => !Number.isInteger(c) || c < 1)) throw new UsageError(`--workers must list positive integers, got ${o.workers.join(",")}`);
  const model: ModelConfig = { cell: "lstm", vocabSize: o.vocabSize, embedDim: DEFAULTS.model.embedDim, hidden: o.hidden, layers: 1, bidirectional: false };
  const rounds = o.rounds;
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
  const scaleCounts = o.scaleWorkers.map(Number).filter((c) => c > 0);
  const variants = o.variants.map(parseVariant);
  const scale: ScaleRow[] = [];
  for (const n of scaleCounts) {
    const base = await timeVariant(n, model, o.scaleRounds, parseVariant("fp32"), o.touchedRows);
    scale.push({ ...base, speedup_vs_fp32_dense: 1 });
    for (const v of variants.filter((x) => x.name !== "fp32")) {
      const r = await timeVariant(n, model, o.scaleRounds, v, o.touchedRows);
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
