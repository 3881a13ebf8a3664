// Reads TensorFlow.js memory into `Telemetry.engineMemory` without importing tfjs here: pass the
// engine's `tf` (or anything with `memory()`); tfjs reports `numBytes` (live tensors) for every
// backend, and `numBytesInGPU` / `numBytesAllocatedInGPU` only where the backend keeps tensors on a GPU.
import type { Telemetry } from "../telemetry.js";

/** The part of `tf.memory()` we read. */
export interface MemorySource {
  memory(): { numBytes: number; numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
}

export function readEngineMemory(source: MemorySource): { bytes: number; gpuBytes?: number } {
  const info = source.memory();
  // WebGPU pools its buffers: what it holds on the GPU is the allocated total, not the bytes in use.
  const gpu = info.numBytesAllocatedInGPU ?? info.numBytesInGPU;
  return typeof gpu === "number" && Number.isFinite(gpu) ? { bytes: info.numBytes, gpuBytes: gpu } : { bytes: info.numBytes };
}

/** Report `source.memory()` for `worker` once. Call after each step (cheap: no device sync). */
export function reportEngineMemory(telemetry: Telemetry, worker: string, source: MemorySource): void {
  const { bytes, gpuBytes } = readEngineMemory(source);
  telemetry.engineMemory(worker, bytes, gpuBytes);
}

/**
 * The TensorFlow.js engine already running in this process, if any, found where tfjs-core keeps it
 * (`globalThis._tfengine`), without importing tfjs. Returns undefined until a backend has started, so
 * reading it never initialises a backend as a side effect.
 */
export function runningTfjsEngine(): MemorySource | undefined {
  const engine = (globalThis as { _tfengine?: { backendInstance?: unknown; memory?: MemorySource["memory"] } })._tfengine;
  if (!engine || engine.backendInstance == null || typeof engine.memory !== "function") return undefined;
  return { memory: () => engine.memory!() };
}
