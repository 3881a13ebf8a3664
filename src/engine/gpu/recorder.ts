// Records a step's dispatches: one command encoder at a time, compute passes named by phase (timed with
// timestamp queries when the engine measures GPU time), and the submits between them.
import type { Kernel } from "./pipelines.js";
import { STEP_SLOT_BYTES } from "./wgsl/common.js";

/** Compute passes of a training step, timed separately: forward (gather → head), BPTT, weight gradients. */
export const PHASES = 3;

/** Timestamp queries of the phases: 2 per phase, resolved into `resolve`, copied to `read` to map. */
export interface Timestamps { set: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer }

export class Recorder {
  enc: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | undefined;

  constructor(private readonly device: GPUDevice, private readonly ts?: Timestamps) {
    this.enc = device.createCommandEncoder();
  }

  /** Opens the compute pass of phase `i`. */
  begin(i: number): void {
    const ts = this.ts;
    this.pass = this.enc.beginComputePass(ts ? { timestampWrites: { querySet: ts.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } } : {});
  }

  end(): void {
    this.pass!.end();
    this.pass = undefined;
  }

  /** One dispatch of `k` over the bind group `group`. */
  run(k: Kernel, group: GPUBindGroup, x: number, y = 1, z = 1): void {
    const pass = this.pass!;
    pass.setPipeline(k.pipeline); pass.setBindGroup(0, group); pass.dispatchWorkgroups(x, y, z);
  }

  /** One dispatch of `k` per time step, in the order of `times`, each with that step's uniform slot. */
  steps(k: Kernel, group: GPUBindGroup, grid: readonly [number, number], times: Iterable<number>): void {
    const pass = this.pass!;
    pass.setPipeline(k.pipeline);
    for (const t of times) {
      pass.setBindGroup(0, group, [t * STEP_SLOT_BYTES]);
      pass.dispatchWorkgroups(...grid);
    }
  }

  /** Submits what is recorded so far (the GPU starts on it) and opens a new encoder. */
  flush(): void {
    this.submit();
    this.enc = this.device.createCommandEncoder();
  }

  /** Submits what is recorded; the recorder is done. */
  submit(): void {
    this.device.queue.submit([this.enc.finish()]);
  }
}

/** A 1-D count of workgroups as a 2-D grid within the 65,535 per-dimension limit (kernels flatten it). */
export function grid1(n: number): [number, number] {
  const x = Math.min(Math.max(n, 1), 65535);
  return [x, Math.ceil(Math.max(n, 1) / x)];
}

/** Time steps T−1 … 0 (backpropagation through time). */
export function* reversed(T: number): Generator<number> {
  for (let t = T - 1; t >= 0; t--) yield t;
}

/** Time steps 0 … T−1. */
export function* forwardSteps(T: number): Generator<number> {
  for (let t = 0; t < T; t++) yield t;
}
