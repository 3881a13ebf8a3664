// `bench ingest`: the whole ingest against the Python baseline (bench/ingest-baseline.py: tarfile +
// lowercase + regex + Counter, one thread), both run here, one after the other, on the same input.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UnavailableError } from "../errors.js";
import { logger } from "../output.js";
import { runIngest, type IngestResult } from "../ingest/index.js";

export const BASELINE_SCRIPT = fileURLToPath(new URL("../../../bench/ingest-baseline.py", import.meta.url));

export interface BaselineResult { reviews: number; tokens: number; types: number; seconds: number; cpu_seconds: number }

export interface BenchResult {
  bench: "ingest";
  data: string;
  /** Best ingest time over the runs (s). */
  seconds: number;
  /** The first run's ingest time (s): this process's first ingest, its main thread's code not compiled yet —
   *  what a one-shot `imdb-train ingest` sees (every run starts fresh tokenizer threads). */
  first_seconds: number;
  /** baseline_seconds / first_seconds. */
  first_ratio: number;
  /** Best baseline time over the runs (s), as measured inside python (interpreter start excluded). */
  baseline_seconds: number;
  ratio: number;
  padding: number;
  reviews: number;
  reviews_per_second: number;
  baseline: BaselineResult;
  phases: IngestResult["phases"];
  /** CPU seconds (all threads) per phase of the best ingest run. */
  cpu_phases: IngestResult["cpuPhases"];
  /** Tokenizer tasks of the best run done by the pool's threads and by the main thread. */
  tokenize_tasks: IngestResult["tokenizeTasks"];
  /** CPU time (all threads) of the best ingest run, and of the baseline: less sensitive to a busy machine. */
  cpu_seconds: number;
  baseline_cpu_seconds: number;
  runs: number;
  threads: number;
}

const log = logger("bench");

export async function runBaseline(data: string): Promise<BaselineResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.env.PYTHON ?? "python3", [BASELINE_SCRIPT, data], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => { out += String(d); });
    child.stderr.on("data", (d) => { err += String(d); });
    child.once("error", (e) => reject(new UnavailableError(`cannot run python3 for the baseline: ${e.message}`, { cause: e })));
    child.once("close", (code) => {
      if (code !== 0) return reject(new UnavailableError(`baseline failed (exit ${code}): ${err.trim()}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()!) as BaselineResult);
      } catch (e) {
        reject(new UnavailableError(`baseline printed no result: ${out}`, { cause: e }));
      }
    });
  });
}

export async function benchIngest(opts: { data: string; runs: number; threads: number; batchSize?: number }): Promise<BenchResult> {
  const dir = await mkdtemp(join(tmpdir(), "imdb-bench-ingest-"));
  try {
    let best: IngestResult | undefined;
    let first: IngestResult | undefined;
    let bestCpu = 0;
    let baseline: BaselineResult | undefined;
    for (let r = 0; r < opts.runs; r++) {
      const b = await runBaseline(opts.data);
      log.info(`run ${r + 1}/${opts.runs}: baseline ${b.seconds.toFixed(3)} s (${b.cpu_seconds.toFixed(3)} s CPU; ${b.reviews} reviews, ${b.tokens} tokens)`);
      if (!baseline || b.seconds < baseline.seconds) baseline = b;
      const cpu0 = process.cpuUsage();
      const res = await runIngest({ data: opts.data, out: join(dir, `run${r}`), threads: opts.threads, batchSize: opts.batchSize });
      const cpu = process.cpuUsage(cpu0);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      log.info(`run ${r + 1}/${opts.runs}: ingest ${res.seconds.toFixed(3)} s (${cpuSeconds.toFixed(3)} s CPU), phases ${JSON.stringify(res.phases)}, CPU ${JSON.stringify(res.cpuPhases)}`);
      first ??= res;
      if (!best || res.seconds < best.seconds) { best = res; bestCpu = cpuSeconds; }
      await rm(join(dir, `run${r}`), { recursive: true, force: true });
    }
    const reviews = best!.train + best!.val + best!.test;
    return {
      bench: "ingest", data: opts.data,
      seconds: best!.seconds, baseline_seconds: baseline!.seconds, ratio: baseline!.seconds / best!.seconds,
      first_seconds: first!.seconds, first_ratio: baseline!.seconds / first!.seconds,
      padding: best!.padding, reviews, reviews_per_second: reviews / best!.seconds,
      baseline: baseline!, phases: best!.phases, cpu_phases: best!.cpuPhases, tokenize_tasks: best!.tokenizeTasks, cpu_seconds: bestCpu, baseline_cpu_seconds: baseline!.cpu_seconds,
      runs: opts.runs, threads: opts.threads,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
