// What the roles report while they run. Roles call a `Telemetry`; src/metrics implements it with
// Prometheus metrics, and `NO_TELEMETRY` ignores everything (tests, library use).
// Units: seconds, bytes, counts. `worker` is a bounded label (the worker's slot name, e.g. "w0").
import type { GpuPhase } from "./engine/types.js";
import type { ModelTask } from "./config.js";

export type StepPhase = "compute" | "wait" | "reduce" | "optimizer" | "broadcast";
import type { RejectReason } from "./protocol/wire.js";
export type { RejectReason };

/** Why a checkpoint could not be written: a full disk (or quota), a read-only file system, no permission, anything else. */
export type CheckpointFailure = "no_space" | "read_only" | "permission" | "other";
export const CHECKPOINT_FAILURES: readonly CheckpointFailure[] = ["no_space", "read_only", "permission", "other"];
/** One GPU as a worker process sees it (nvidia-smi): what it reports, in base units. */
export interface GpuReading {
  /** Index among the GPUs visible to the process. */
  index: number;
  /** e.g. "GPU-5f1c…" (DCGM's UUID label: joins its series to the worker). */
  uuid: string;
  /** e.g. "NVIDIA H100 80GB HBM3". */
  name: string;
  /** 0..1, where reported. */
  utilization?: number;
  memoryUsedBytes?: number;
  memoryTotalBytes?: number;
}


export interface Telemetry {
  // ---- training (coordinator) ----
  /** An applied step; `task` lm or sgns (pretraining): its loss goes to the pretraining loss, not the classifier's. */
  step(info: { step: number; epoch: number; loss: number; accuracy: number; samples: number; tokens: number; seconds: number; task?: ModelTask }): void;
  phase(phase: StepPhase, seconds: number, worker?: string): void;
  gradNorm(norm: number, clipped: boolean): void;
  paramVersion(version: number): void;
  validation(info: { epoch: number; loss: number; accuracy: number; task?: ModelTask }): void;
  liveWorkers(n: number): void;
  membership(event: "join" | "leave" | "evict", worker: string): void;
  heartbeatMissed(worker: string): void;
  /** A worker was evicted: why (bounded set) and how late it was: seconds past its deadline (connection lost: seconds since last heard). */
  evicted(worker: string, cause: "connection" | "deadline" | "heartbeat" | "startup" | "refused", lateSeconds: number): void;
  /** A step applied nothing: every gradient was refused, or their sum was not finite with no part to blame. */
  skippedStep(reason: "overflow" | "refused"): void;
  straggler(worker: string, seconds: number): void;
  rejected(reason: RejectReason, worker?: string): void;
  bytes(direction: "sent" | "received", n: number, worker?: string): void;
  checkpoint(seconds: number, bytes: number): void;
  /** A checkpoint could not be written (the run goes on when it was a periodic one). */
  checkpointFailed(reason: CheckpointFailure): void;
  // ---- workers ----
  workerStep(worker: string, info: { samples: number; tokens: number; seconds: number; loss: number; accuracy: number }): void;
  engineMemory(worker: string, bytes: number, gpuBytes?: number): void;
  /** A GPU this worker can see, as last polled. */
  gpuDevice(worker: string, gpu: GpuReading): void;
  /** GPU execution time of one engine step, by phase (seconds; WebGPU timestamp queries). */
  gpuTime(worker: string, seconds: Partial<Record<GpuPhase, number>>): void;
  // ---- ingest ----
  ingest(info: { reviews: number; seconds: number; padding: number; skipped: number }): void;
  jetstreamLag(messages: number): void;
}

const noop = () => {};
export const NO_TELEMETRY: Telemetry = {
  step: noop, phase: noop, gradNorm: noop, paramVersion: noop, validation: noop, liveWorkers: noop,
  membership: noop, heartbeatMissed: noop, evicted: noop, skippedStep: noop, straggler: noop, rejected: noop, bytes: noop, checkpoint: noop, checkpointFailed: noop,
  workerStep: noop, engineMemory: noop, gpuDevice: noop, gpuTime: noop, ingest: noop, jetstreamLag: noop,
};
