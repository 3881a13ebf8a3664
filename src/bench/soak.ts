// `bench soak`: a long run of the real `train` launcher (1 coordinator + N worker processes on loopback, a small
// model, a tiny invented dataset, many epochs) that watches every process's resident memory and open file
// descriptors from /proc, then checks that memory stayed flat after warm-up and that every process and socket
// is gone after the exit. The baseline is each process's own RSS just after warm-up; the ratio is RSS at the end
// over that baseline (bound: growth < 5%).
import type { SoakCliOptions } from "./soak-command.js";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { emitJson, logger } from "../output.js";
import { TrainingError, UsageError } from "../errors.js";
import { Rng } from "../rng.js";
import { BIN } from "../coordinator/index.js";

const log = logger("soak");

export interface SoakOptions {
  steps: number;
  workers: number;
  hidden: number;
  embedDim: number;
  /** Ingested dataset; default: a tiny invented one made in a temporary directory. */
  dataset?: string;
  backend: string;
  /** Share of the steps treated as warm-up (not judged). */
  warmupFraction: number;
  /** /proc sampling period, ms. */
  sampleMs: number;
  /** Largest accepted RSS growth after warm-up (0.05 = 5%). */
  maxGrowth: number;
  /** Launcher wall-clock limit, seconds (then SIGTERM, and the run fails). */
  timeoutS: number;
  /** Write every sample to this CSV file. */
  trace?: string;
}

export interface ProcessFigures {
  name: string;
  pid: number;
  /** Median RSS (MiB) over the window just after warm-up, and over the last window of the run. */
  rss_start_mib: number;
  rss_end_mib: number;
  rss_peak_mib: number;
  /** rss_end / rss_start − 1. */
  growth: number;
  /** Least-squares slope of RSS after warm-up, MiB per 1,000 steps. */
  slope_mib_per_1k_steps: number;
  fds_start: number;
  fds_end: number;
  samples: number;
}

export interface SoakReport {
  steps: number;
  workers: number;
  model: string;
  seconds: number;
  steps_per_s: number;
  warmup_steps: number;
  processes: ProcessFigures[];
  /** Largest growth over all processes (end / baseline − 1), and that as a ratio (end / baseline). */
  max_growth: number;
  ratio: number;
  bound: number;
  /** Processes still alive after the launcher exited (pids), sockets still open on the coordinator's port. */
  leftover_pids: number[];
  leftover_sockets: number;
  /** Every pid watched (launcher included) and the coordinator's TCP port, for checks of one's own. */
  pids: Record<string, number>;
  coordinator_port: number;
  exit_code: number | null;
  ok: boolean;
  problems: string[];
}

const WORDS_POS = ["splendid", "moving", "wonderful", "clever", "charming", "gripping"];
const WORDS_NEG = ["dreary", "clumsy", "boring", "tedious", "muddled", "wooden"];
const FILLER = ["the", "film", "plot", "actor", "scene", "story", "it", "was", "and", "a", "of"];

/** A small invented aclImdb layout (never real reviews): `perLabel` reviews per label, 4–24 words each. */
function writeInventedLayout(dir: string, perLabel: number, seed: number): void {
  const rng = new Rng(seed);
  for (const label of ["pos", "neg"] as const) {
    const d = join(dir, "aclImdb", "train", label);
    mkdirSync(d, { recursive: true });
    const lean = label === "pos" ? WORDS_POS : WORDS_NEG;
    for (let i = 0; i < perLabel; i++) {
      const n = 4 + rng.int(21);
      const words: string[] = [];
      for (let k = 0; k < n; k++) words.push(rng.next() < 0.3 ? lean[rng.int(lean.length)]! : FILLER[rng.int(FILLER.length)]!);
      writeFileSync(join(d, `${i}_${label === "pos" ? 8 : 2}.txt`), words.join(" ") + ".");
    }
  }
}

/** VmRSS of `pid` in bytes, or null when it is gone. */
function rssBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function fdCount(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // a zombie still answers kill(0): it has exited, its parent has not reaped it yet
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** TCP sockets (any state but TIME_WAIT / CLOSE, which belong to the kernel) with `port` at either end: the
 *  coordinator's listening and accepted sockets, and the workers' connections to it. */
export function socketsOnPort(port: number): number {
  let n = 0;
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try { text = readFileSync(f, "utf8"); } catch { continue; }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const portOf = (addr: string) => parseInt(addr.split(":")[1] ?? "", 16);
      const state = cols[3]!; // 0A LISTEN, 01 ESTABLISHED, 06 TIME_WAIT, 07 CLOSE
      if ((portOf(cols[1]!) === port || portOf(cols[2]!) === port) && state !== "06" && state !== "07") n++;
    }
  }
  return n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

interface Sample { step: number; t: number; rss: number; fds: number }

const MIB = 1024 * 1024;

/** Figures of one process from its samples: baseline window right after warm-up, end window at the end (samples
 *  taken once the last step is done — final checkpoint, model export, shutdown — are not judged). */
export function figures(name: string, pid: number, samples: Sample[], warmup: number, steps: number): ProcessFigures {
  const after = samples.filter((s) => s.step >= warmup && s.step < steps);
  const win = Math.max(1, Math.round(steps * 0.2));
  const startW = after.filter((s) => s.step < warmup + win);
  const endW = after.filter((s) => s.step >= steps - win);
  const rs = median(startW.map((s) => s.rss));
  const re = median(endW.map((s) => s.rss));
  let slope = NaN;
  if (after.length >= 2) {
    const mx = after.reduce((a, s) => a + s.step, 0) / after.length;
    const my = after.reduce((a, s) => a + s.rss, 0) / after.length;
    let sxy = 0, sxx = 0;
    for (const s of after) { sxy += (s.step - mx) * (s.rss - my); sxx += (s.step - mx) ** 2; }
    slope = sxx > 0 ? (sxy / sxx) * 1000 / MIB : NaN;
  }
  return {
    name, pid,
    rss_start_mib: rs / MIB, rss_end_mib: re / MIB, rss_peak_mib: Math.max(...after.map((s) => s.rss)) / MIB,
    growth: re / rs - 1, slope_mib_per_1k_steps: slope,
    fds_start: median(startW.map((s) => s.fds)), fds_end: median(endW.map((s) => s.fds)), samples: samples.length,
  };
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  if (o.steps < 20) throw new UsageError(`--steps must be ≥ 20 (warm-up and two windows), got ${o.steps}`);
  if (!(o.warmupFraction >= 0 && o.warmupFraction <= 0.6)) throw new UsageError(`--warmup must be within 0..0.6 (two windows of 20% follow it), got ${o.warmupFraction}`);
  const tmp = mkdtempSync(join(tmpdir(), "imdb-soak-"));
  try {
    let dataset = o.dataset ? resolve(o.dataset) : "";
    if (!dataset) {
      const { runIngest } = await import("../ingest/index.js");
      writeInventedLayout(join(tmp, "data"), 200, 17);
      dataset = join(tmp, "ds");
      await runIngest({ data: join(tmp, "data"), out: dataset, batchSize: 8, vocabSize: 200, valFraction: 0.1, seed: 3, maxLen: 32 });
    }
    const manifest = JSON.parse(readFileSync(join(dataset, "manifest.json"), "utf8")) as { splits?: { train?: { batches?: number } }; batches?: { train?: number } };
    const trainBatches = Number(manifest.splits?.train?.batches ?? manifest.batches?.train ?? 0);
    const perEpoch = Math.max(1, Math.floor((trainBatches || 4 * o.workers) / o.workers));
    // the launcher logs every 10th step: epochs of a multiple of 10 steps make the last logged step the last step
    const maxSteps = perEpoch >= 10 ? 10 * Math.floor(perEpoch / 10) : perEpoch;
    const epochs = Math.ceil(o.steps / maxSteps);
    const steps = epochs * maxSteps;
    const judged = Math.floor(steps / 10) * 10;
    const warmup = Math.max(10, Math.round(steps * o.warmupFraction));
    const args = [
      "train", "--dataset", dataset, "--out", join(tmp, "out"), "--workers", String(o.workers), "--backend", o.backend,
      "--hidden", String(o.hidden), "--embed-dim", String(o.embedDim), "--epochs", String(epochs), "--max-steps", String(maxSteps),
      "--max-val-batches", "1", "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--seed", "7",
    ];
    log.info(`${steps} steps (${epochs} epochs × ${maxSteps}), ${o.workers} workers, H=${o.hidden} E=${o.embedDim}; warm-up ${warmup} steps`);
    const t0 = performance.now();
    const launcher = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    const pids = new Map<string, number>([["launcher", launcher.pid!]]);
    const samples = new Map<string, Sample[]>();
    let step = 0;
    let port = 0;
    const tail: string[] = [];
    createInterface({ input: launcher.stderr! }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      let m = /\[train\] coordinator pid (\d+)/.exec(line);
      if (m) pids.set("coordinator", Number(m[1]));
      m = /\[train\] worker (w\d+) pid (\d+)/.exec(line);
      if (m) pids.set(m[1]!, Number(m[2]));
      m = /\[train\] step (\d+)\/\d+/.exec(line);
      if (m) step = Number(m[1]);
      m = /listening on tcp:\/\/[\d.]+:(\d+)/.exec(line);
      if (m) port = Number(m[1]);
    });
    const exited = new Promise<number | null>((res) => launcher.once("exit", (code) => res(code)));
    let done = false;
    void exited.then(() => { done = true; });
    const kill = setTimeout(() => { log.warn(`time limit of ${o.timeoutS} s reached: stopping the run`); launcher.kill("SIGTERM"); }, o.timeoutS * 1000);
    while (!done) {
      for (const [name, pid] of pids) {
        const rss = rssBytes(pid), fds = fdCount(pid);
        if (rss === null || fds === null) continue;
        let list = samples.get(name);
        if (!list) samples.set(name, (list = []));
        list.push({ step, t: (performance.now() - t0) / 1000, rss, fds });
      }
      await new Promise((r) => setTimeout(r, o.sampleMs));
    }
    clearTimeout(kill);
    const code = await exited;
    const seconds = (performance.now() - t0) / 1000;
    // give orphans (if any) a moment, then look for what outlived the run
    await new Promise((r) => setTimeout(r, 300));
    const leftover = [...pids.values()].filter((p) => alive(p));
    const sockets = port ? socketsOnPort(port) : 0;
    if (o.trace) {
      const rows = ["process,pid,seconds,step,rss_bytes,fds"];
      for (const [name, list] of samples) for (const s of list) rows.push(`${name},${pids.get(name)},${s.t.toFixed(3)},${s.step},${s.rss},${s.fds}`);
      writeFileSync(o.trace, rows.join("\n") + "\n");
      log.info(`samples written to ${o.trace}`);
    }
    const processes = [...samples.entries()].filter(([name]) => name !== "launcher").map(([name, s]) => figures(name, pids.get(name)!, s, warmup, judged));
    const maxGrowth = Math.max(...processes.map((p) => p.growth));
    const problems: string[] = [];
    if (code !== 0) problems.push(`train exited with status ${code}:\n${tail.join("\n")}`);
    if (processes.length !== o.workers + 1) problems.push(`watched ${processes.length} processes, expected ${o.workers + 1}`);
    for (const p of processes) {
      if (Number.isNaN(p.growth)) { if (code === 0) problems.push(`${p.name}: no samples in the judged windows (a run too short or too fast for --sample-ms)`); continue; }
      if (!(p.growth < o.maxGrowth)) problems.push(`${p.name}: RSS grew ${(p.growth * 100).toFixed(1)}% after warm-up (${p.rss_start_mib.toFixed(1)} → ${p.rss_end_mib.toFixed(1)} MiB)`);
      if (p.fds_end > p.fds_start) problems.push(`${p.name}: open file descriptors grew ${p.fds_start} → ${p.fds_end}`);
    }
    if (leftover.length) problems.push(`processes still alive after the exit: ${leftover.join(", ")}`);
    if (sockets) problems.push(`${sockets} socket(s) still open on the coordinator's port ${port}`);
    for (const pid of leftover) { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } }
    return {
      steps, workers: o.workers, model: `lstm H=${o.hidden} E=${o.embedDim}`, seconds, steps_per_s: steps / seconds, warmup_steps: warmup,
      processes, max_growth: maxGrowth, ratio: 1 + maxGrowth, bound: o.maxGrowth, leftover_pids: leftover, leftover_sockets: sockets, pids: Object.fromEntries(pids), coordinator_port: port, exit_code: code,
      ok: problems.length === 0, problems,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export async function benchSoak(o: SoakCliOptions): Promise<number> {
  const r = await runSoak({
    steps: o.steps, workers: o.workers, hidden: o.hidden, embedDim: o.embedDim,
    dataset: o.dataset, backend: o.backend, warmupFraction: o.warmup,
    sampleMs: o.sampleMs, maxGrowth: o.maxGrowth, timeoutS: o.timeout,
    trace: o.trace ? resolve(o.trace) : undefined,
  });
  for (const p of r.processes) {
    log.info(`${p.name.padEnd(11)} RSS ${p.rss_start_mib.toFixed(1)} → ${p.rss_end_mib.toFixed(1)} MiB (${(p.growth * 100).toFixed(2)}%, peak ${p.rss_peak_mib.toFixed(1)}, slope ${p.slope_mib_per_1k_steps.toFixed(2)} MiB/1k steps), fds ${p.fds_start} → ${p.fds_end}`);
  }
  log.info(`${r.steps} steps in ${r.seconds.toFixed(1)} s (${r.steps_per_s.toFixed(1)} steps/s); largest RSS growth ${(r.max_growth * 100).toFixed(2)}% (bound ${(r.bound * 100).toFixed(0)}%); leftover processes ${r.leftover_pids.length}, sockets ${r.leftover_sockets}`);
  for (const p of r.problems) log.error(p);
  if (o.json) emitJson(r);
  if (!r.ok) throw new TrainingError(`soak failed: ${r.problems[0]}`);
  return 0;
}
