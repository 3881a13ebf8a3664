// The only module that imports @tensorflow/*: picks and starts a backend once per process, and re-exports
// the tfjs namespaces that the engine, its reference and the benchmark baseline use.
//
// Backends: "tensorflow" (tfjs-node-gpu / tfjs-node, optional packages), "webgpu" (a GPU adapter found
// through the WebGPU entry point the caller's loader gives: see BackendLoaders), "wasm" (default on CPU:
// single-threaded per process, SIMD), "cpu" (pure JS, slow; tests only). tfjs native backends are not safe
// in worker threads: one engine per process. This module imports no engine module.
import * as tf from "@tensorflow/tfjs-core";
// tfjs-layers' Node bundle also registers every op's gradient with tfjs-core (core alone registers none).
import * as tfl from "@tensorflow/tfjs-layers";
import "@tensorflow/tfjs-backend-cpu";
import { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import { UnavailableError, errorMessage } from "./errors.js";
import { logger } from "./output.js";

export { tf, tfl };
export type Tensor = tf.Tensor;
export type Tensor2D = tf.Tensor2D;
export type LayersModel = tfl.LayersModel;
export type WeightsManifestEntry = tf.io.WeightsManifestEntry;

import type { BackendChoice, BackendName } from "./backend-choice.js";
export { BACKEND_CHOICES, type BackendChoice, type BackendName } from "./backend-choice.js";

/** A WebGPU entry point (what a browser has as navigator.gpu), as tfjs-backend-webgpu uses it. */
export interface WebgpuEntry {
  requestAdapter(): Promise<{ readonly isFallbackAdapter: boolean } | null>;
}

/** What starting a backend needs from modules this one does not import. */
export interface BackendLoaders {
  /**
   * The WebGPU entry point for the "webgpu" backend (src/engine/index.ts passes the one of
   * src/engine/gpu/device.ts, the `webgpu` package's owner); rejects saying why there is none.
   */
  webgpu?: () => Promise<WebgpuEntry>;
}

const log = logger("tfjs");
let started: Promise<BackendName> | undefined;
let startedChoice: BackendChoice | undefined;

/**
 * Starts the backend once for this process and returns its name. `auto` tries tensorflow, then a real
 * (non-fallback) WebGPU adapter (when `loaders.webgpu` is given), then wasm. A forced backend that cannot
 * start throws UnavailableError. Calling again with a different choice once a backend runs is an error
 * (one backend per process).
 */
export function useBackend(choice: BackendChoice = "auto", loaders: BackendLoaders = {}): Promise<BackendName> {
  if (started) {
    if (choice !== "auto" && choice !== startedChoice && tf.getBackend() !== choice) {
      return started.then((name) => {
        if (name !== choice) throw new UnavailableError(`backend ${name} already runs in this process; cannot switch to ${choice}`);
        return name;
      });
    }
    return started;
  }
  startedChoice = choice;
  started = start(choice, loaders);
  started.catch(() => { started = undefined; startedChoice = undefined; });
  return started;
}

async function start(choice: BackendChoice, loaders: BackendLoaders): Promise<BackendName> {
  const order: BackendName[] = choice === "auto" ? ["tensorflow", "webgpu", "wasm"] : [choice];
  const failures: string[] = [];
  for (const name of order) {
    try {
      await startOne(name, loaders);
      log.debug(`backend ${name}`);
      return name;
    } catch (err) {
      failures.push(`${name}: ${errorMessage(err)}`);
      if (choice !== "auto") throw new UnavailableError(`backend ${name} is not available: ${errorMessage(err)}`, { cause: err });
    }
  }
  throw new UnavailableError(`no tfjs backend could start (${failures.join("; ")})`);
}

async function startOne(name: BackendName, loaders: BackendLoaders): Promise<void> {
  switch (name) {
    case "wasm":
      registerWasmKernels();
      break;
    case "cpu":
      break;
    case "tensorflow":
      await loadTensorflow();
      break;
    case "webgpu":
      await loadWebgpuBackend(loaders);
      break;
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tf.setBackend("${name}") failed`);
  await tf.ready();
}

/** Optional packages, absent on most machines (their install downloads libtensorflow for CUDA 11). */
async function loadTensorflow(): Promise<void> {
  for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    try { await import(pkg); return; } catch { /* try the next one */ }
  }
  throw new Error("neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed");
}

/** Registers tfjs-backend-webgpu over the loader's entry point, when it offers a real (non-fallback) adapter. */
async function loadWebgpuBackend(loaders: BackendLoaders): Promise<void> {
  if (!loaders.webgpu) throw new Error("no WebGPU loader was given to useBackend (see BackendLoaders)");
  const gpu = await loaders.webgpu();
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter found");
  if (adapter.isFallbackAdapter) throw new Error("only a software WebGPU adapter was found");
  // tfjs-backend-webgpu reads navigator.gpu when it is imported.
  Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true });
  await import("@tensorflow/tfjs-backend-webgpu");
}

let wasmKernelsRegistered = false;

/**
 * wasm lacks UnsortedSegmentSum (tfjs #8082), which the gradient of `gather` (an Embedding layer) needs.
 * A small host-side kernel: out[segment[i], :] += x[i, :]. Used by the reference and the baseline.
 */
function registerWasmKernels(): void {
  if (wasmKernelsRegistered) return;
  wasmKernelsRegistered = true;
  tf.registerKernel({
    kernelName: "UnsortedSegmentSum",
    backendName: "wasm",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, segmentIds } = inputs;
      const numSegments = attrs?.numSegments;
      if (!x || !segmentIds || typeof numSegments !== "number" || !(backend instanceof BackendWasm)) {
        throw new Error("UnsortedSegmentSum: expects inputs x, segmentIds, a numSegments attribute and the wasm backend");
      }
      const xv = backend.readSync(x.dataId); //         [N, ...rest]
      const ids = backend.readSync(segmentIds.dataId); // [N]
      if (!(xv instanceof Float32Array) || !(ids instanceof Int32Array || ids instanceof Float32Array)) throw new Error("UnsortedSegmentSum: expects float32 values and numeric segment ids");
      const rowSize = ids.length > 0 ? xv.length / ids.length : 0;
      const out = new Float32Array(numSegments * rowSize); // [numSegments, ...rest]
      for (let i = 0; i < ids.length; i++) {
        const s = ids[i];
        if (s < 0 || s >= numSegments) continue;
        const o = s * rowSize;
        const xi = i * rowSize;
        for (let j = 0; j < rowSize; j++) out[o + j] += xv[xi + j];
      }
      return backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], "float32", undefined, out);
    },
  });
}

/** The backend running now, or undefined before `useBackend`. */
export function currentBackend(): string | undefined {
  return started ? tf.getBackend() : undefined;
}

/** tfjs-layers (already loaded: kept async for callers written against an on-demand load). */
export async function loadLayers(): Promise<typeof tfl> {
  return tfl;
}
