// `imdb-train train`: the single-machine launcher. Ingest (when given --data), then one coordinator child and N
// worker children, all stopped together: on Ctrl-C / SIGTERM (the coordinator writes an exit checkpoint and
// stops the workers), when the coordinator fails, and when the launcher itself goes away (children watch
// their IPC channel). Children's logs pass through; the launcher draws one progress bar from the
// coordinator's events.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { KeepSide } from "../config.js";
import { TrainingError, AbortedError, errorMessage } from "../errors.js";
import { settledWithin } from "../wait.js";
import { emitJson, logger, plainProgress, progress, type Progress } from "../output.js";
import { RunClock } from "./progress.js";
import { PASS_ON, optimFrom, toArgv } from "./options.js";
import type { TrainCliOptions } from "./command.js";
import type { TrainReport } from "./role.js";
import type { CoordinatorEvent } from "./types.js";
import { childEnv } from "../children.js";

const log = logger("train");
export const BIN = fileURLToPath(new URL("../../../bin/imdb-train.js", import.meta.url));
const STOP_GRACE_MS = 15_000;

interface Child { name: string; proc: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }

function start(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe", "ipc"], env: childEnv(env) });
  const pass = (stream: NodeJS.ReadableStream | null) => {
    if (!stream) return;
    createInterface({ input: stream }).on("line", (line) => {
      if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
      process.stderr.write(line + "\n");
    });
  };
  pass(proc.stderr);
  // a child's stdout (its --json line) is not ours to print
  proc.stdout?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.once("exit", (code, signal) => res({ code, signal })));
  return { name, proc, exited };
}

export async function runTrain(o: TrainCliOptions): Promise<number> {
  const out = resolve(o.out);
  const gpus = o.gpus ?? [];
  const workers = gpus.length || o.workers;
  const settings = optimFrom(o); // validate before any work
  let dataset = o.dataset ? resolve(o.dataset) : undefined;
  if (!dataset) {
    // no --data: the official archive, downloaded once into the cache (as `ingest` does)
    const data = o.data ?? await (await import("../ingest/index.js")).ensureOfficialArchive();
    dataset = join(out, "dataset");
    const want = { vocabSize: o.vocabSize, minFreq: o.minFreq, batchSize: o.batchSize, maxLen: o.maxLen, keep: o.keep, valFraction: o.valFraction, seed: settings.seed };
    if (sameIngest(dataset, data, want)) {
      log.info(`reusing ${dataset} (ingested from the same input with the same options)`);
    } else {
      const { runIngest } = await import("../ingest/index.js");
      log.info(`ingesting ${data} into ${dataset}`);
      await runIngest({ data, out: dataset, ...want, shards: 1, force: true });
    }
  }
  const metricsPort = o.metricsPort;
  const coordArgs = ["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", String(workers), "--out", out, ...toArgv(PASS_ON, o)];
  if (metricsPort !== undefined) coordArgs.push("--metrics-port", String(metricsPort));
  if (o.resume) coordArgs.push("--resume", resolve(o.resume));
  if (o.autoResume) coordArgs.push("--auto-resume");
  const secureArgs = o.secure ? ["--curve-keys", await launcherKeys(out)] : [];
  coordArgs.push(...secureArgs);
  const children: Child[] = [];
  let stopping = false;
  let bar: Progress | null = null;
  const result: { report?: TrainReport } = {};
  let failure: string | null = null;
  let lastStep = 0;
  let samples = 0;
  const clock = new RunClock(settings.epochs);
  let controlServer: { socket: string; close(): Promise<void> } | null = null;
  const t0 = performance.now();

  const stopAll = async (why: string) => {
    if (stopping) return;
    stopping = true;
    const running = children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null);
    if (running.length) log.warn(`stopping ${running.map((c) => `${c.name} (pid ${c.proc.pid})`).join(", ")}: ${why}`);
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGTERM");
    const timer = setTimeout(() => {
      for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) { log.warn(`${c.name} (pid ${c.proc.pid}) did not stop: SIGKILL`); c.proc.kill("SIGKILL"); }
    }, STOP_GRACE_MS);
    await Promise.all(children.map((c) => c.exited));
    clearTimeout(timer);
  };
  let interrupted = false;
  const onSignal = (sig: string) => { interrupted = true; void stopAll(`${sig} received`); };
  const sigint = () => onSignal("SIGINT");
  const sigterm = () => onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);

  try {
    const coord = start("coordinator", coordArgs);
    children.push(coord);
    log.info(`coordinator pid ${coord.proc.pid}`);
    const endpoint = await new Promise<string>((res, rej) => {
      coord.proc.on("message", (msg: { type: string; event?: CoordinatorEvent; report?: TrainReport; message?: string }) => {
        if (msg.type === "event" && msg.event) {
          const e = msg.event;
          if (e.type === "listening") res(e.endpoint);
          else if (e.type === "step") {
            const total = e.stepsInEpoch * settings.epochs;
            bar ??= progress("train", total, "steps");
            samples += e.samples;
            lastStep = e.step; // the run's step: a resumed run carries on counting
            const rate = samples / ((performance.now() - t0) / 1000);
            clock.step(e);
            bar.set(lastStep, `epoch ${e.epoch + 1}/${settings.epochs} loss ${e.loss.toFixed(3)} acc ${(e.accuracy * 100).toFixed(1)}% ${rate.toFixed(1)} samples/s ${e.seconds.toFixed(2)} s/step`);
            // no bar on a pipe or in a container: a plain line now and then, with the time left
            if (plainProgress() && clock.due(e)) log.info(clock.line(e));
          } else if (e.type === "member" && e.event !== "join") log.warn(e.reason ?? `${e.worker} ${e.event}`);
        } else if (msg.type === "result" && msg.report) result.report = msg.report;
        else if (msg.type === "error") failure ??= msg.message ?? "coordinator failed";
      });
      void coord.exited.then(({ code, signal }) => rej(new TrainingError(`coordinator exited (${signal ?? `status ${code}`}) before listening`)));
    });
    // Workers: w0..w(N-1) now; `imdb-train scale` adds w<N>, w<N+1>... and stops the newest first.
    const retiring = new Set<string>();
    let nextIndex = 0;
    const isRunning = (c: Child) => c.proc.exitCode === null && c.proc.signalCode === null;
    const running = () => children.slice(1).filter((c) => isRunning(c) && !retiring.has(c.name));
    const startWorker = () => {
      const i = nextIndex++;
      const gpu = gpus.length ? gpus[i % gpus.length]! : undefined;
      const env: NodeJS.ProcessEnv = gpu !== undefined ? { CUDA_VISIBLE_DEVICES: gpu } : {};
      const args = ["worker", "--coordinator", endpoint, "--name", `w${i}`, "--backend", o.backend, ...secureArgs];
      if (metricsPort !== undefined) args.push("--metrics-port", metricsPort === 0 ? "0" : String(metricsPort + 1 + i));
      const w = start(`w${i}`, args, env);
      children.push(w);
      log.info(`worker w${i} pid ${w.proc.pid}${gpu !== undefined ? ` on GPU ${gpu}` : ""}`);
      void w.exited.then(({ code, signal }) => {
        if (stopping || retiring.has(w.name) || (!signal && code === 0)) return;
        log.warn(`worker w${i} (pid ${w.proc.pid}) exited (${signal ?? `status ${code}`})`);
        const alive = children.slice(1).filter(isRunning);
        if (lastStep === 0 || alive.length === 0) {
          failure = lastStep === 0 ? `worker w${i} failed before the first step (${signal ?? `status ${code}`}); see its log above` : "every worker has exited";
          void stopAll(failure);
        }
      });
      return w.name;
    };
    for (let i = 0; i < workers; i++) startWorker();
    // `imdb-train scale --out <out> --workers N` talks to this socket (src/coordinator/scale.ts)
    const { startControl } = await import("./scale.js");
    try {
      controlServer = await startControl(out, {
        status: () => running().map((c) => c.name),
        scale: async (n) => {
          if (stopping) throw new TrainingError("the run is stopping");
          const started: string[] = [], stopped: string[] = [];
          while (running().length < n) started.push(startWorker());
          for (const c of running().slice(n).reverse()) {
            retiring.add(c.name);
            stopped.push(c.name);
            c.proc.kill("SIGTERM"); // the worker says Leave; its open batches go to another worker
          }
          log.info(`scale to ${n} worker(s)${started.length ? `: started ${started.join(", ")}` : ""}${stopped.length ? `; stopping ${stopped.join(", ")}` : ""}`);
          return { started, stopped };
        },
      });
      log.info(`control socket ${controlServer.socket}: npx imdb-train scale --out ${out} --workers N`);
    } catch (err) {
      log.warn(`no control socket (${errorMessage(err)}): \`imdb-train scale\` cannot reach this run`);
    }
    const { code, signal } = await coord.exited;
    if (code !== 0 || !result.report) {
      await stopAll(`coordinator exited (${signal ?? `status ${code}`})`);
      // 130: the coordinator stopped as asked, its exit checkpoint written; anything else is a failure it reported
      if (interrupted && code === 130) throw new AbortedError("interrupted: stopped the coordinator and all workers (exit checkpoint written)");
      throw new TrainingError(`training failed: ${failure ?? `coordinator exited (${signal ?? `status ${code}`})`}`);
    }
    // workers were told to stop; give them a moment, then make sure
    await settledWithin(Promise.all(children.map((c) => c.exited)), 5000);
    await stopAll("run finished").catch(() => {});
  } catch (err) {
    await stopAll("launcher error");
    throw err;
  } finally {
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
    await (controlServer as { close(): Promise<void> } | null)?.close().catch(() => {});
  }
  (bar as Progress | null)?.done();
  const r = result.report!;
  for (const e of r.epochs) log.info(`epoch ${e.epoch}: val accuracy ${(e.val_accuracy * 100).toFixed(2)}% (loss ${e.val_loss.toFixed(4)}), ${e.seconds.toFixed(1)} s`);
  log.info(`model: ${r.model}`);
  if (o.json) emitJson({ ...r, dataset });
  return 0;
}

/** `train --secure`: the CURVE keys in <out>/keys, made on first use and reused (e.g. by --resume). */
async function launcherKeys(out: string): Promise<string> {
  const { writeKeyDir, KEY_FILES } = await import("../security/keys.js");
  const dir = join(out, "keys");
  if (existsSync(join(dir, KEY_FILES.serverSecret))) {
    log.info(`CURVE keys: reusing ${dir}`);
  } else {
    writeKeyDir(dir);
    log.info(`CURVE keys: made ${dir}`);
  }
  return dir;
}

/** An ingested dataset at `dir` made from `data` with these options (manifest.json says so). */
function sameIngest(dir: string, data: string, want: Record<string, number | string>): boolean {
  try {
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { source?: { path?: string }; options?: Record<string, number | string> };
    if (!m.options || resolve(m.source?.path ?? "") !== resolve(data)) return false;
    return Object.entries(want).every(([k, v]) => m.options![k] === v);
  } catch {
    return false;
  }
}
