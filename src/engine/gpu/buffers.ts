// GPU buffers of one batch size, allocated for a capacity of Tcap time steps (rounded up to 64) and
// reused by every batch that fits; grown (reallocated once) when a longer bucket arrives. Bind groups are
// created with the buffers, so a step only writes data and records dispatches.
//
// Legend: B batch, Tc = Tcap, In input width (E), H hidden, GH = G·H, U distinct tokens of a batch
// (≤ min(V, Tc·B)), Np parameters without the embedding table.
import type { Pipelines } from "./pipelines.js";
import { bindGroup } from "./pipelines.js";
import { STEP_SLOT_BYTES } from "./wgsl/common.js";

const STORAGE = 128, COPY_DST = 8, COPY_SRC = 4, UNIFORM = 64, MAP_READ = 1;

/** Uniform slots (256 bytes each) written once per step. */
export const SLOT = {
  dims: 0, proj: 1, fcW: 2, fcB: 3, dWih: 4, dWhh: 5, dBih: 6, dBhh: 7, dX: 8,
  rWih: 9, rWhh: 10, rBih: 11, rBhh: 12, scatter: 13,
} as const;
export const SLOTS = 14;
/** Most split-K partial sums of one matmul. */
export const MAX_SPLITS = 16;

export interface Shared {
  device: GPUDevice;
  pipes: Pipelines;
  P: GPUBuffer; //    [Np] parameters (no embedding)
  G: GPUBuffer; //    [Np] gradients (no embedding)
  ones: GPUBuffer; // [4] 1.0: the constant operand of column sums
  lstm: boolean;
  In: number;
  H: number;
  GH: number;
  V: number;
  Np: number;
}

export interface BatchBuffers {
  B: number;
  Tcap: number;
  Ucap: number;
  X: GPUBuffer; //      [Tc·B, In] inputs, then dX
  A: GPUBuffer; //      [Tc·B, GH] projection → activations → gate gradients
  Ah: GPUBuffer; //     [Tc·B, GH] GRU: gradients of the recurrent pre-activations (LSTM: unused)
  Hs: GPUBuffer; //     [(Tc+1)·B, H] states
  Cs: GPUBuffer; //     [(Tc+1)·B, H] LSTM cells / GRU q
  carry: GPUBuffer; //  [B, H] LSTM dc / GRU dh⊙z
  lens: GPUBuffer; //   [B] i32
  y: GPUBuffer; //      [B] targets
  head: GPUBuffer; //   [2B + B·H] logits, dOut, dropout masks
  ctok: GPUBuffer; //   [Tc·B] i32 compact token rows
  embC: GPUBuffer; //   [Ucap, In]
  start: GPUBuffer; //  [Ucap+1] u32
  pos: GPUBuffer; //    [Tc·B] u32
  dEmbC: GPUBuffer; //  [Ucap, In]
  part: GPUBuffer; //   [MAX_SPLITS · max(In, H) · GH] split-K partials
  uni: GPUBuffer; //    [SLOTS] uniform slots
  steps: GPUBuffer; //  [Tcap] step slots (t), bound with a dynamic offset
  staging: GPUBuffer; // [B + Np + Ucap·In] readback
  groups: Record<string, GPUBindGroup>;
  bytes: number;
}

/** Bytes of the largest buffer a (B, Tcap) set needs: callers split batches that exceed the device limit. */
export function largestBuffer(s: Pick<Shared, "GH" | "In">, B: number, Tcap: number): number {
  return Tcap * B * Math.max(s.GH, s.In) * 4;
}

export function roundCapacity(T: number): number {
  return Math.ceil(T / 64) * 64;
}

export function createBatchBuffers(s: Shared, B: number, Tcap: number): BatchBuffers {
  const { device, In, H, GH } = s;
  let bytes = 0;
  const buf = (label: string, floats: number, usage = STORAGE | COPY_DST | COPY_SRC): GPUBuffer => {
    const size = Math.max(16, Math.ceil((floats * 4) / 16) * 16);
    bytes += size;
    return device.createBuffer({ label, size, usage });
  };
  const rows = Tcap * B;
  const Ucap = Math.min(s.V, rows);
  const b: Omit<BatchBuffers, "groups" | "bytes"> = {
    B, Tcap, Ucap,
    X: buf("X", rows * In),
    A: buf("A", rows * GH),
    Ah: buf("Ah", s.lstm ? 4 : rows * GH),
    Hs: buf("Hs", (Tcap + 1) * B * H),
    Cs: buf("Cs", (Tcap + 1) * B * H),
    carry: buf("carry", B * H),
    lens: buf("lens", B),
    y: buf("y", B),
    head: buf("head", 2 * B + B * H),
    ctok: buf("ctok", rows),
    embC: buf("embC", Ucap * In),
    start: buf("start", Ucap + 1),
    pos: buf("pos", rows),
    dEmbC: buf("dEmbC", Ucap * In),
    part: buf("part", MAX_SPLITS * Math.max(In, H) * GH),
    uni: buf("uniforms", (SLOTS * STEP_SLOT_BYTES) / 4, UNIFORM | COPY_DST),
    steps: buf("steps", (Tcap * STEP_SLOT_BYTES) / 4, UNIFORM | COPY_DST),
    staging: buf("staging", B + s.Np + Ucap * In, MAP_READ | COPY_DST),
  };
  // t of each step slot, written once.
  const st = new Uint32Array((Tcap * STEP_SLOT_BYTES) / 4);
  for (let t = 0; t < Tcap; t++) st[(t * STEP_SLOT_BYTES) / 4] = t;
  device.queue.writeBuffer(b.steps, 0, st);

  const slot = (i: number): [GPUBuffer, number, number] => [b.uni, i * STEP_SLOT_BYTES, 64];
  const step: [GPUBuffer, number, number] = [b.steps, 0, 16];
  const k = s.pipes;
  const g = (kk: typeof k.matmul, r: (GPUBuffer | [GPUBuffer, number, number])[]) => bindGroup(device, kk, r);
  const groups: Record<string, GPUBindGroup> = {
    gather: g(k.gather, [slot(SLOT.dims), b.embC, b.ctok, b.X]),
    proj: g(k.matmul, [slot(SLOT.proj), b.X, s.P, b.A]),
    forward: s.lstm
      ? g(k.forward, [slot(SLOT.dims), step, s.P, b.lens, b.A, b.Hs, b.Cs])
      : g(k.forward, [slot(SLOT.dims), step, s.P, b.lens, b.A, b.Hs, b.Cs]),
    head: g(k.head, [slot(SLOT.dims), s.P, b.Hs, b.y, b.head]),
    fcW: g(k.matmul, [slot(SLOT.fcW), b.head, b.Hs, s.G]),
    fcB: g(k.matmul, [slot(SLOT.fcB), b.head, s.ones, s.G]),
    backward: s.lstm
      ? g(k.backward, [slot(SLOT.dims), step, s.P, b.lens, b.A, b.Cs, b.carry, b.head])
      : g(k.backward, [slot(SLOT.dims), step, s.P, b.lens, b.A, b.Hs, b.Cs, b.Ah, b.carry, b.head]),
    dX: g(k.matmul, [slot(SLOT.dX), b.A, s.P, b.X]),
    scatter: g(k.scatter, [slot(SLOT.scatter), b.X, b.start, b.pos, b.dEmbC]),
  };
  // Weight gradients: straight into G, or into the partials then reduced into G (split-K).
  const dAh = s.lstm ? b.A : b.Ah;
  const wg: [string, number, GPUBuffer, GPUBuffer, number][] = [
    ["dWih", SLOT.dWih, b.X, b.A, SLOT.rWih],
    ["dWhh", SLOT.dWhh, b.Hs, dAh, SLOT.rWhh],
    ["dBih", SLOT.dBih, s.ones, b.A, SLOT.rBih],
    ["dBhh", SLOT.dBhh, s.ones, dAh, SLOT.rBhh],
  ];
  for (const [name, sl, a, bm, rs] of wg) {
    groups[name] = g(k.matmul, [slot(sl), a, bm, s.G]);
    groups[name + "Split"] = g(k.matmul, [slot(sl), a, bm, b.part]);
    groups[name + "Reduce"] = g(k.reduce, [slot(rs), b.part, s.G]);
  }
  return { ...b, groups, bytes };
}

export function destroyBatchBuffers(b: BatchBuffers): void {
  for (const v of Object.values(b)) if (v && typeof v === "object" && "destroy" in v && typeof v.destroy === "function") (v as GPUBuffer).destroy();
}
