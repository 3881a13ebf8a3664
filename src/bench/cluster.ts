// `bench cluster`: N synthetic GPU workers (./cluster-worker.ts: compute is a wait of padded tokens at the
// engine's speed, on the real batches of an ingested dataset, with gradients of the real size and sparsity)
// against a real `coordinator` process, for each variant of the step round — today's dense fp32 round as the
// baseline of the same run, the default (rows pull and push), fp16, coordinator shards. With --link-gbps each
// process gets its own network namespace and a G Gb/s link (./netns.ts), so the coordinator's one link shows
// what it would on a cluster.
//
// Efficiency = samples/s ÷ (N × one worker's compute-only samples/s). A worker's step splits into its compute
// (the wait), its own handling (the parameters taken in, the gradient encoded: fp16 on the CPU, as a real
// worker does), the coordinator's reduce and clip + Adam (its own timers), and the wire (what is left: pull,
// push, the messages' handling and waiting for slower peers); the model predicts the step as compute + the
// worker's handling + reduce + Adam + the coordinator link's bytes per step ÷ G, and its efficiency as
// compute ÷ that. The wire's floor (./cluster-floor.ts) is measured, not modelled: the same hosts exchange the
// round's bytes over bare ZeroMQ around the same compute, which bounds what any round of those bytes can reach.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { emitJson, logger } from "../output.js";
import { TrainingError, UnavailableError, UsageError } from "../errors.js";
import { BIN } from "../coordinator/index.js";
import { runIngest } from "../ingest/index.js";
import { archiveOrDownload } from "./data.js";
import { openTrainingData } from "../dataset/training.js";
import { shapedNetwork, type ShapedNetwork } from "./netns.js";
import type { ClusterCliOptions } from "./command.js";
import { childEnv } from "../children.js";
import { settledWithin } from "../wait.js";

const log = logger("bench");
const WORKER = fileURLToPath(new URL("./cluster-worker.js", import.meta.url));
const FLOOR = fileURLToPath(new URL("./cluster-floor.js", import.meta.url));

/** A variant of the step round: the coordinator flags that make it. */
const VARIANTS: Record<string, string[]> = {
  dense: ["--pull", "dense", "--embedding-grads", "dense", "--grad-dtype", "fp32"], // the baseline: the whole vector both ways
  rows: ["--pull", "rows", "--grad-dtype", "fp32"], //                                  the default
  "rows-fp16": ["--pull", "rows", "--grad-dtype", "fp16"],
  "dense-shards2": ["--pull", "dense", "--embedding-grads", "dense", "--coordinator-shards", "2"],
  "rows-shards2": ["--pull", "rows", "--grad-dtype", "fp32", "--coordinator-shards", "2"],
  // a shard on every worker's host (its network namespace with --link-gbps), found through a nats-server
  "rows-remote": ["--pull", "rows", "--grad-dtype", "fp32", "--remote-shards"],
};
/** The variants whose bytes go over several links (the wire's floor is not measured for them). */
const SHARDED = new Set(["dense-shards2", "rows-shards2", "rows-remote"]);

/** A nats-server for the remote shards' announcements, on host 0 (any free port, JetStream for the KV). */
async function startNats(spawnOn: (i: number, argv: string[]) => ChildProcess, host: string, dir: string): Promise<{ url: string; p: ChildProcess }> {
  const p = spawnOn(0, ["nats-server", "-a", host, "-p", "-1", "-js", "-sd", dir]);
  const missing = new Promise<never>((_, rej) => p.once("error", (e) => rej(new UnavailableError(`the rows-remote variant needs nats-server (Debian package nats-server): ${e.message}`))));
  const m = await Promise.race([waitForLine(p, /Listening for client connections on [^\s]*:(\d+)/, "nats-server").match, missing]);
  return { url: `nats://${host}:${m[1]}`, p };
}

interface Report { samples_per_s: number; steps: number; samples: number; phases: { wait: number; reduce: number; optimizer: number; broadcast: number; step: number }; transport_bytes: { sent: number; received: number } }
/** A task as its worker saw it (wall-clock ms): the Assign's arrival and the gradient's send. */
interface TaskTime { worker: number; task: number; samples: number; computeMs: number; recvAt: number; sendAt: number }
/** A task as the coordinator saw it (its --timeline): handed to ZeroMQ, gradient taken in (wall-clock ms). */
interface TaskEnds { queued: number; gradient: number }

export interface ClusterRow {
  workers: number; variant: string; samples_per_s: number; efficiency: number; predicted_efficiency: number | null;
  compute_samples_per_s: number;
  /** Per step: a task's compute (mean), the worker's own handling of it beyond that (mean: parameters taken in,
   *  gradient encoded), the coordinator's reduce, clip + Adam and task sends, and the rest. */
  step_ms: number; compute_ms: number; worker_ms: number; reduce_ms: number; adam_ms: number; send_ms: number; wait_ms: number; wire_ms: number;
  /** Mean per task: the gradient from the worker's send to the coordinator taking it in, and the task from the
   *  coordinator handing it to ZeroMQ to its arrival at the worker (both processes' clocks: one machine). */
  push_ms: number; pull_ms: number;
  /** Mean per step, on the coordinator's clock alone: from the step's last gradient taken in to the next step's
   *  first task handed to ZeroMQ (the folds left, norm, clip, Adam on the dense weights, the first task's rows). */
  turnaround_ms: number;
  /** Bytes per step on the coordinator's link (both directions), and per worker. */
  bytes_per_step: number; bytes_per_step_per_worker: number; pull_bytes_per_step: number; push_bytes_per_step: number;
  /** The wire's floor: the bare ZeroMQ exchange of a task's pull and push bytes with each of the N workers, around
   *  the same compute (./cluster-floor.ts) — its round beyond the compute, ms, and the efficiency it leaves
   *  (compute ÷ round). Null for the sharded variants (their bytes take several links). */
  floor_ms: number | null; floor_efficiency: number | null;
}

/** Calls `each` with every line of `stream`; resolves when the stream has ended. */
function lines(stream: NodeJS.ReadableStream, each: (line: string) => void): Promise<void> {
  const rl = createInterface({ input: stream }).on("line", each);
  return new Promise((r) => rl.once("close", () => r()));
}

/** The first line of `p`'s stderr that matches `re`; rejects, with the end of that stderr, when `p` (named `what`)
 *  exits before printing one. `stderr()`: all of it so far (the lines keep being read). */
function waitForLine(p: ChildProcess, re: RegExp, what: string): { match: Promise<RegExpExecArray>; stderr: () => string } {
  let text = "";
  const match = new Promise<RegExpExecArray>((res, rej) => {
    void lines(p.stderr!, (l) => { text += l + "\n"; const m = re.exec(l); if (m) res(m); });
    void exited(p).then((c) => rej(new TrainingError(`${what} exited (${c}) before it printed ${re}:\n${text.slice(-2000)}`)));
  });
  return { match, stderr: () => text };
}

function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((r) => (p.exitCode !== null ? r(p.exitCode) : p.once("exit", (code) => r(code))));
}

/** Where the processes of a run go: host 0 (the coordinator's) and host i (worker i - 1), each its own network
 *  namespace with --link-gbps, else this host's loopback; `port`: the one host 0 binds in a namespace. */
function hostsOf(net: ShapedNetwork | null, port: number) {
  const host = net ? net.address(0) : "127.0.0.1";
  const bind = net ? `tcp://${host}:${port}` : "tcp://127.0.0.1:*";
  const spawnCmd = (i: number, argv: string[]) => {
    const all = [...(net ? net.exec(i) : []), ...argv];
    return spawn(all[0]!, all.slice(1), { stdio: ["ignore", "pipe", "pipe"], env: childEnv() });
  };
  const spawnOn = (i: number, args: string[]) => spawnCmd(i, [process.execPath, ...args]);
  return { host, bind, spawnCmd, spawnOn };
}

/** The bare ZeroMQ exchange of a step's bytes at `n` workers on the same hosts (./cluster-floor.ts): a round's
 *  mean ms (compute included). */
async function runFloor(o: { n: number; pullBytes: number; pushBytes: number; computeMs: number; steps: number; warmup: number; net: ShapedNetwork | null }): Promise<number> {
  const { spawnOn, bind } = hostsOf(o.net, 5556);
  const bytes = [String(Math.round(o.pullBytes)), String(Math.round(o.pushBytes))];
  const procs = [spawnOn(0, [FLOOR, "router", bind, String(o.n), ...bytes, String(o.steps), String(o.warmup)])];
  const router = procs[0]!;
  let out = "";
  router.stdout!.on("data", (d) => { out += String(d); });
  try {
    const listening = waitForLine(router, /listening on (tcp:\/\/[\d.]+:\d+)/, "the floor's router");
    const endpoint = (await listening.match)[1]!;
    for (let i = 0; i < o.n; i++) {
      const d = spawnOn(i + 1, [FLOOR, "dealer", endpoint, `f${i}`, String(o.computeMs), ...bytes]);
      d.stdout!.resume(); d.stderr!.resume();
      procs.push(d);
    }
    const code = await exited(router);
    if (code !== 0) throw new TrainingError(`the floor's router exited with ${code}:\n${listening.stderr().slice(-2000)}`);
    const ms = (JSON.parse(out.trim().split("\n").pop()!) as { ms: number[] }).ms;
    return ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length);
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => exited(p)));
  }
}

/** One run: a coordinator and `n` workers of one variant, `steps` steps of one batch per worker. */
async function runOne(o: { dataset: string; n: number; variant: string; steps: number; warmup: number; tokensPerS: number; net: ShapedNetwork | null; tmp: string }): Promise<{ report: Report; tasks: TaskTime[]; ends: Timeline }> {
  const { n, net } = o;
  const { host, bind, spawnCmd, spawnOn } = hostsOf(net, 5555);
  const flags = VARIANTS[o.variant]!;
  const procs: ChildProcess[] = [];
  const extra: string[] = [];
  if (flags.includes("--remote-shards")) {
    // one shard beside each worker (on its host), found through NATS: the coordinator keeps slice 0
    const nats = await startNats(spawnCmd, host, join(o.tmp, `nats-${o.variant}-${n}`));
    procs.push(nats.p);
    const shards = Array.from({ length: n }, (_, i) => spawnOn(i + 1, [BIN, "coordinator-shard", "--nats", nats.url, "--bind", `tcp://${net ? net.address(i + 1) : "127.0.0.1"}:*`, "--insecure"]));
    procs.push(...shards);
    await Promise.all(shards.map((s) => waitForLine(s, /shard announced at/, "a coordinator shard").match));
    extra.push("--coordinator-shards", String(n + 1), "--nats", nats.url);
  }
  const timelineFile = join(o.tmp, `${o.variant}-${n}.timeline`);
  const coordArgs = [BIN, "coordinator", "--dataset", o.dataset, "--bind", bind, "--workers", String(n), "--batches-per-step", String(n),
    "--epochs", "1", "--max-steps", String(o.steps + o.warmup), "--max-val-batches", "1", "--out", join(o.tmp, `${o.variant}-${n}`), "--insecure", "--json",
    "--join-timeout", "300", "--timeline", timelineFile, ...flags, ...extra];
  const coord = spawnOn(0, coordArgs);
  procs.push(coord);
  let out = "";
  coord.stdout!.on("data", (d) => { out += String(d); });
  const listening = waitForLine(coord, /listening on (tcp:\/\/[\d.]+:\d+)/, "the coordinator");
  const endpoint = (await listening.match)[1]!;
  const err = listening.stderr;
  const tasks: TaskTime[] = [];
  const reported: Promise<void>[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const w = spawnOn(i + 1, [WORKER, endpoint, `w${i}`, String(o.tokensPerS)]);
      procs.push(w);
      // a worker writes its tasks' timings when the coordinator stops it
      reported.push(lines(w.stdout!, (l) => { try { tasks.push({ ...(JSON.parse(l) as TaskTime), worker: i }); } catch { /* not ours */ } }));
      w.stderr!.resume();
    }
    const code = await exited(coord);
    if (code !== 0) throw new TrainingError(`coordinator exited with ${code}:\n${err().slice(-2000)}`);
    if (!(await settledWithin(Promise.all(reported), 30_000))) throw new TrainingError("a synthetic worker did not report its timings within 30 s of the coordinator's end");
    return { report: JSON.parse(out.trim().split("\n").pop()!) as Report, tasks, ends: readTimeline(timelineFile) };
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => exited(p)));
  }
}

/** The coordinator's --timeline: each task's two ends, by task id; and per applied step (in order) its first
 *  task's hand-off and its last gradient. */
type Timeline = Map<number, TaskEnds> & { steps: { first: number; last: number }[] };
function readTimeline(path: string): Timeline {
  const ends: Timeline = Object.assign(new Map<number, TaskEnds>(), { steps: [] });
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line) continue;
    const tasks = (JSON.parse(line) as { tasks: ({ task: number } & TaskEnds)[] }).tasks;
    for (const t of tasks) ends.set(t.task, { queued: t.queued, gradient: t.gradient });
    if (tasks.length) ends.steps.push({ first: Math.min(...tasks.map((t) => t.queued)), last: Math.max(...tasks.map((t) => t.gradient)) });
  }
  return ends;
}

/**
 * The steady state, as the workers saw it (after `warmup` steps each): a step's period is the time between a
 * worker's consecutive tasks; within it the worker was busy from receiving a task to sending its gradient
 * (its compute and its own handling: parameters taken in, gradient encoded); the rest is the round trip —
 * push, the coordinator's reduce and clip + Adam (its own timers, averaged over the run) and pull. Push and pull
 * are timed per task from both ends: the workers' lines and the coordinator's timeline.
 */
function rowOf(n: number, variant: string, r: Report, tasks: TaskTime[], ends: Timeline, gbps: number | null, warmup: number): ClusterRow {
  const periods: number[] = [], busy: number[] = [], compute: number[] = [], pushes: number[] = [], pulls: number[] = [];
  let samples = 0;
  for (let w = 0; w < n; w++) {
    const mine = tasks.filter((t) => t.worker === w).sort((a, b) => a.recvAt - b.recvAt).slice(warmup);
    for (let k = 1; k < mine.length; k++) {
      periods.push(mine[k]!.recvAt - mine[k - 1]!.recvAt);
      busy.push(mine[k - 1]!.sendAt - mine[k - 1]!.recvAt); // the push is timed from sendAt
      compute.push(mine[k - 1]!.computeMs);
      samples += mine[k - 1]!.samples;
    }
    for (const t of mine) {
      const e = ends.get(t.task);
      if (!e || !e.queued || !e.gradient) continue; // not in an applied step's sum
      pulls.push(t.recvAt - e.queued);
      pushes.push(e.gradient - t.sendAt);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const applied = ends.steps.slice(warmup), turns: number[] = [];
  for (let k = 1; k < applied.length; k++) if (applied[k]!.first > 0 && applied[k - 1]!.last > 0) turns.push(applied[k]!.first - applied[k - 1]!.last);
  const period = mean(periods), computeMs = mean(compute), busyMs = mean(busy);
  const samplesPerS = (samples / Math.max(1, periods.length)) * n / (period / 1000);
  const computeRate = (samples / Math.max(1, compute.length)) / (computeMs / 1000);
  const steps = Math.max(1, r.steps), per = (x: number) => (x * 1000) / steps;
  const reduce = per(r.phases.reduce), adam = per(r.phases.optimizer);
  const pull = r.transport_bytes.sent / steps, push = r.transport_bytes.received / steps;
  // the model counts the coordinator's link; with shards on the workers' hosts the busiest link is another one
  const workerMs = Math.max(0, busyMs - computeMs);
  const predicted = gbps && !VARIANTS[variant]!.includes("--remote-shards") ? computeMs / (computeMs + workerMs + reduce + adam + ((pull + push) * 8) / (gbps * 1e9) * 1000) : null;
  return {
    workers: n, variant, samples_per_s: samplesPerS, efficiency: samplesPerS / (n * computeRate), predicted_efficiency: predicted,
    compute_samples_per_s: computeRate, step_ms: period, compute_ms: computeMs, worker_ms: workerMs, reduce_ms: reduce, adam_ms: adam, send_ms: per(r.phases.broadcast),
    wait_ms: per(r.phases.wait), wire_ms: Math.max(0, period - busyMs - reduce - adam), push_ms: mean(pushes), pull_ms: mean(pulls), turnaround_ms: mean(turns),
    bytes_per_step: pull + push, bytes_per_step_per_worker: (pull + push) / n, pull_bytes_per_step: pull, push_bytes_per_step: push,
    floor_ms: null, floor_efficiency: null,
  };
}

export async function benchCluster(o: ClusterCliOptions): Promise<number> {
  const counts = o.workers.map(Number);
  if (counts.some((c) => !Number.isInteger(c) || c < 1 || c > 64)) throw new UsageError(`--workers must list integers in [1, 64], got ${o.workers.join(",")}`);
  const variants = o.variants;
  for (const v of variants) if (!VARIANTS[v]) throw new UsageError(`--variants: ${v} is not one of ${Object.keys(VARIANTS).join(", ")}`);
  if (!variants.includes("dense")) variants.unshift("dense"); // the baseline runs in every bench
  const tmp = mkdtempSync(join(tmpdir(), "imdb-bench-cluster-"));
  let net: ShapedNetwork | null = null;
  try {
    let dataset = o.dataset ? resolve(o.dataset) : "";
    if (!dataset) {
      const data = await archiveOrDownload(o.data);
      dataset = join(tmp, "ds");
      log.info(`ingesting ${data} into ${dataset} (batches of ${o.batchSize}, whole reviews: the GPU engine's figure)`);
      await runIngest({ data, out: dataset, batchSize: o.batchSize, maxLen: 0 });
    }
    const have = (await openTrainingData(dataset)).count("train"), need = (o.steps + o.warmup) * Math.max(...counts);
    if (have < need) throw new UsageError(`${dataset} has ${have} training batches; ${Math.max(...counts)} workers × (${o.steps} steps + ${o.warmup} warm-up) need ${need} in one epoch (fewer --steps or --warmup, or a larger dataset)`);
    if (o.linkGbps) net = shapedNetwork(Math.max(...counts) + 1, o.linkGbps);
    const rows: ClusterRow[] = [];
    for (const n of counts) {
      for (const v of variants) {
        const { report, tasks, ends } = await runOne({ dataset, n, variant: v, steps: o.steps, warmup: o.warmup, tokensPerS: o.tokensPerS, net, tmp });
        const row = rowOf(n, v, report, tasks, ends, o.linkGbps ?? null, o.warmup);
        if (!SHARDED.has(v)) {
          const round = await runFloor({ n, pullBytes: row.pull_bytes_per_step / n, pushBytes: row.push_bytes_per_step / n, computeMs: row.compute_ms, steps: o.steps, warmup: o.warmup, net });
          row.floor_ms = round - row.compute_ms;
          row.floor_efficiency = row.compute_ms / round;
        }
        rows.push(row);
        const floor = row.floor_efficiency !== null ? `; the bare exchange of these bytes: efficiency ${row.floor_efficiency.toFixed(2)} (+${row.floor_ms!.toFixed(1)} ms)` : "";
        log.info(`${n} worker(s) ${v.padEnd(13)} ${row.samples_per_s.toFixed(0).padStart(6)} samples/s, efficiency ${row.efficiency.toFixed(2)}${row.predicted_efficiency !== null ? ` (model ${row.predicted_efficiency.toFixed(2)})` : ""}; step ${row.step_ms.toFixed(1)} ms: compute ${row.compute_ms.toFixed(1)}, worker ${row.worker_ms.toFixed(1)}, reduce ${row.reduce_ms.toFixed(1)} + clip/Adam ${row.adam_ms.toFixed(1)} + wire ${row.wire_ms.toFixed(1)} (push ${row.push_ms.toFixed(1)}, pull ${row.pull_ms.toFixed(1)}), turnaround ${row.turnaround_ms.toFixed(1)}; ${(row.bytes_per_step_per_worker / 1e6).toFixed(2)} MB per worker per step${floor}`);
      }
    }
    const by = (v: string) => Object.fromEntries(rows.filter((r) => r.variant === v).map((r) => [r.workers, r.efficiency]));
    const main = variants.includes("rows") ? "rows" : variants.find((v) => v !== "dense")!;
    const bytes = Object.fromEntries(rows.filter((r) => r.variant === main).map((r) => [r.workers, r.bytes_per_step_per_worker]));
    const base = Object.fromEntries(rows.filter((r) => r.variant === "dense").map((r) => [r.workers, r.bytes_per_step_per_worker]));
    const floor = Object.fromEntries(rows.filter((r) => r.variant === main).map((r) => [r.workers, r.floor_efficiency]));
    emitJson({ bench: "cluster", tokens_per_s: o.tokensPerS, steps: o.steps, warmup_steps: o.warmup, rows, efficiency: by(main), baseline_efficiency: by("dense"), floor_efficiency: floor, bytes_per_step: bytes, baseline_bytes_per_step: base, link_gbps: o.linkGbps ?? null });
    return 0;
  } finally {
    net?.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}
