// One stage of `train`: a coordinator child and N worker children on this machine, all stopped together — on
// Ctrl-C / SIGTERM (the coordinator writes an exit checkpoint and stops the workers), when the coordinator
// fails, and when the launcher itself goes away (children watch their IPC channel). Children's logs pass
// through; the stage draws one progress bar from the coordinator's events. `train` runs one stage, or two
// with --pretrain (the pretraining task, then the classifier).
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { TrainingError, AbortedError, errorMessage } from "../errors.js";
import { settledWithin } from "../wait.js";
import { logger, plainProgress, progress, type Progress } from "../output.js";
import { childEnv } from "../children.js";
import { RunClock, fixed } from "./progress.js";
import type { TrainReport } from "./role.js";
import type { CoordinatorEvent } from "./types.js";

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

export interface StageOptions {
  /** Shown on the progress bar and in plain progress lines ("train", "pretrain"). */
  label: string;
  /** The coordinator's arguments (after `coordinator`); the stage adds nothing to them. */
  coordArgs: string[];
  workers: number;
  /** One worker per listed GPU (CUDA_VISIBLE_DEVICES), round robin. */
  gpus: string[];
  backend: string;
  /** Worker arguments for CURVE (`--curve-keys <dir>`), or none. */
  secureArgs: string[];
  metricsPort?: number;
  epochs: number;
  /** Where `imdb-train scale --out` finds this run's control socket. */
  controlDir: string;
}

/** Runs one stage to its end and returns the coordinator's report; throws when it failed or was interrupted. */
export async function runStage(o: StageOptions): Promise<TrainReport> {
  const children: Child[] = [];
  let stopping = false;
  let bar: Progress | null = null;
  const result: { report?: TrainReport } = {};
  let failure: string | null = null;
  let lastStep = 0;
  let samples = 0;
  const clock = new RunClock(o.epochs);
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
    const coord = start("coordinator", o.coordArgs);
    children.push(coord);
    log.info(`coordinator pid ${coord.proc.pid}${o.label === "train" ? "" : ` (${o.label})`}`);
    const endpoint = await new Promise<string>((res, rej) => {
      coord.proc.on("message", (msg: { type: string; event?: CoordinatorEvent; report?: TrainReport; message?: string }) => {
        if (msg.type === "event" && msg.event) {
          const e = msg.event;
          if (e.type === "listening") res(e.endpoint);
          else if (e.type === "step") {
            const total = e.stepsInEpoch * o.epochs;
            bar ??= progress(o.label, total, "steps");
            samples += e.samples;
            lastStep = e.step; // the run's step: a resumed run carries on counting
            const rate = samples / ((performance.now() - t0) / 1000);
            clock.step(e);
            bar.set(lastStep, `epoch ${e.epoch + 1}/${o.epochs} loss ${fixed(e.loss, 3)} acc ${fixed(e.accuracy, 1, 100)}% ${fixed(rate, 1)} samples/s ${fixed(e.seconds, 2)} s/step`);
            // no bar on a pipe or in a container: a plain line now and then, with the time left
            if (plainProgress() && clock.due(e)) log.info(`${o.label === "train" ? "" : `${o.label}: `}${clock.line(e)}`);
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
      const gpu = o.gpus.length ? o.gpus[i % o.gpus.length]! : undefined;
      const env: NodeJS.ProcessEnv = gpu !== undefined ? { CUDA_VISIBLE_DEVICES: gpu } : {};
      const args = ["worker", "--coordinator", endpoint, "--name", `w${i}`, "--backend", o.backend, ...o.secureArgs];
      if (o.metricsPort !== undefined) args.push("--metrics-port", o.metricsPort === 0 ? "0" : String(o.metricsPort + 1 + i));
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
    for (let i = 0; i < o.workers; i++) startWorker();
    // `imdb-train scale --out <out> --workers N` talks to this socket (src/coordinator/scale.ts)
    const { startControl } = await import("./scale.js");
    try {
      controlServer = await startControl(o.controlDir, {
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
      log.info(`control socket ${controlServer.socket}: npx imdb-train scale --out ${o.controlDir} --workers N`);
    } catch (err) {
      log.warn(`no control socket (${errorMessage(err)}): \`imdb-train scale\` cannot reach this run`);
    }
    const { code, signal } = await coord.exited;
    if (code !== 0 || !result.report) {
      await stopAll(`coordinator exited (${signal ?? `status ${code}`})`);
      // 130: the coordinator stopped as asked, its exit checkpoint written; anything else is a failure it reported
      if (interrupted && code === 130) throw new AbortedError("interrupted: stopped the coordinator and all workers (exit checkpoint written)");
      throw new TrainingError(`${o.label === "train" ? "training" : o.label} failed: ${failure ?? `coordinator exited (${signal ?? `status ${code}`})`}`);
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
  return result.report!;
}
