// When the WebGPU engine replaces the CPU engine (called by createEngine in src/engine/index.ts):
//   --backend auto:   when a hardware GPU adapter exists and the model is one the kernels cover
//                     (the classifier on token input, 1 unidirectional LSTM/GRU layer); otherwise undefined
//                     (tfjs path; tasks lm and sgns always run on the CPU engines).
//   --backend webgpu: always for a covered model, on the GPU, or on the software adapter with a warning
//                     (slow; useful to run the whole system without a GPU); for other models undefined,
//                     so the fused engine runs on tfjs's webgpu backend as before.
// The adapter is chosen by envAdapterIndex() (IMDB_TRAIN_GPU, or CUDA_VISIBLE_DEVICES as `train --gpus`
// sets it per worker).
import { UnavailableError } from "../../errors.js";
import { logger } from "../../output.js";
import type { Engine, EngineOptions } from "../types.js";
import { acquireDevice } from "./device.js";
import { GpuEngine } from "./engine.js";

const log = logger("gpu");

/** True when the WebGPU kernels cover this model. */
export function gpuCovers(opts: EngineOptions): boolean {
  return (opts.model.task ?? "classify") === "classify" && (opts.input ?? "tokens") === "tokens" && opts.model.layers === 1 && !opts.model.bidirectional;
}

export async function gpuEngineFor(opts: EngineOptions): Promise<Engine | undefined> {
  const choice = opts.backend ?? "auto";
  if (choice !== "auto" && choice !== "webgpu") return undefined;
  if (!gpuCovers(opts)) {
    if (choice === "webgpu") log.info("the WebGPU kernels cover the classifier with 1 unidirectional layer on tokens: this model runs on the CPU engines (tfjs's webgpu backend for the matmuls)");
    return undefined;
  }
  let gpu;
  try {
    gpu = await acquireDevice({ kind: choice === "auto" ? "gpu" : "any" });
  } catch (err) {
    if (choice === "auto" && err instanceof UnavailableError) return undefined;
    throw err;
  }
  if (gpu.software) log.warn(`--backend webgpu on the software adapter ${gpu.name}: correct but slow`);
  const engine = await GpuEngine.create({ ...opts, gpu });
  log.info(`WebGPU engine on ${gpu.name}`);
  return {
    backend: engine.backend,
    layout: engine.layout,
    step: (p, b) => engine.step(p, b),
    stepRows: (p, b) => engine.stepRows(p, b),
    evaluate: (p, b) => engine.evaluate(p, b),
    dispose: () => { engine.dispose(); gpu.device.destroy(); },
  };
}
