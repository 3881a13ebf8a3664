// Compiled compute pipelines of the engine, with explicit bind group layouts (needed for the per-step
// dynamic uniform offset). One instance per device and cell kind.
import type { CellKind } from "../../config.js";
import { GATHER_WGSL, SCATTER_WGSL } from "./wgsl/embed.js";
import { GRU_BACKWARD_WGSL, GRU_FORWARD_WGSL } from "./wgsl/gru.js";
import { HEAD_WGSL } from "./wgsl/head.js";
import { LSTM_BACKWARD_WGSL, LSTM_FORWARD_WGSL } from "./wgsl/lstm.js";
import { MATMUL_WGSL, REDUCE_WGSL } from "./wgsl/matmul.js";

/** Binding kinds in order: u uniform, d uniform with dynamic offset, r read-only storage, w storage. */
type Kinds = string;

export interface Kernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  kinds: Kinds;
}

const COMPUTE = 4; // GPUShaderStage.COMPUTE

function kernel(device: GPUDevice, label: string, code: string, kinds: Kinds): Kernel {
  const entries: GPUBindGroupLayoutEntry[] = [...kinds].map((k, binding) => ({
    binding,
    visibility: COMPUTE,
    buffer: k === "u" ? { type: "uniform" } : k === "d" ? { type: "uniform", hasDynamicOffset: true }
      : k === "r" ? { type: "read-only-storage" } : { type: "storage" },
  }));
  const layout = device.createBindGroupLayout({ label, entries });
  const module = device.createShaderModule({ label, code });
  const pipeline = device.createComputePipeline({
    label, layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: "main" },
  });
  return { pipeline, layout, kinds };
}

export interface Pipelines {
  matmul: Kernel;
  reduce: Kernel;
  forward: Kernel;
  backward: Kernel;
  gather: Kernel;
  scatter: Kernel;
  head: Kernel;
}

export function createPipelines(device: GPUDevice, cell: CellKind): Pipelines {
  const lstm = cell === "lstm";
  return {
    matmul: kernel(device, "matmul", MATMUL_WGSL, "urrw"),
    reduce: kernel(device, "reduce", REDUCE_WGSL, "urw"),
    forward: lstm ? kernel(device, "lstm-forward", LSTM_FORWARD_WGSL, "udrrwww") : kernel(device, "gru-forward", GRU_FORWARD_WGSL, "udrrwww"),
    backward: lstm ? kernel(device, "lstm-backward", LSTM_BACKWARD_WGSL, "udrrwrwr") : kernel(device, "gru-backward", GRU_BACKWARD_WGSL, "udrrwrrwwr"),
    gather: kernel(device, "gather", GATHER_WGSL, "urrw"),
    scatter: kernel(device, "scatter", SCATTER_WGSL, "urrrw"),
    head: kernel(device, "head", HEAD_WGSL, "urwrw"),
  };
}

/** A bind group for `k` over whole buffers, or (buffer, offset, size) for a uniform slot. */
export function bindGroup(device: GPUDevice, k: Kernel, resources: (GPUBuffer | [GPUBuffer, number, number])[]): GPUBindGroup {
  if (resources.length !== k.kinds.length) throw new Error(`bind group: ${k.kinds.length} bindings expected, got ${resources.length}`);
  return device.createBindGroup({
    layout: k.layout,
    entries: resources.map((r, binding) => ({
      binding, resource: Array.isArray(r) ? { buffer: r[0], offset: r[1], size: r[2] } : { buffer: r },
    })),
  });
}
