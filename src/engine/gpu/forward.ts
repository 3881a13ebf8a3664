// The forward pass of a GPU step (phase 0): embedding gather, input projection, the recurrence, the head.
//
// Legend: B batch, T padded length, rows = T·B (time-major, row t·B + b), E embedding width, H hidden,
// GH = G·H gate columns, U distinct tokens of the batch.
//
//   X = embC[ctok]                          [rows, E]        1 dispatch (gather.wgsl: embed.ts)
//   A = X·W_ih + b_ih (+ b_hh for LSTM)     [rows, GH]       1 tiled matmul
//   for t in 0..T−1: h_{t+1} = cell(A_t, h_t · W_hh)        [B, H] per step, T dispatches (Hs, Cs)
//   head: logits = h·W_fc + b_fc, dOut      [B]              1 dispatch
import type { BatchBuffers, Shared } from "./buffers.js";
import type { StepPlan } from "./plan.js";
import { forwardSteps, grid1, type Recorder } from "./recorder.js";

/** Clears the initial states (and the backward carry when training), then records phase 0. */
export function recordForward(rec: Recorder, s: Shared, bb: BatchBuffers, plan: StepPlan): void {
  const { B, T, rows } = plan;
  const k = s.pipes, g = bb.groups;
  rec.enc.clearBuffer(bb.Hs, 0, B * s.H * 4); //   h_0 = 0   [B, H]
  rec.enc.clearBuffer(bb.Cs, 0, B * s.H * 4); //   c_0 = 0   [B, H]
  if (plan.train) rec.enc.clearBuffer(bb.carry); // dc / dh⊙z carried back from step T
  rec.begin(0);
  rec.run(k.gather, g.gather, ...grid1(Math.ceil(rows * s.In / 256))); // X        [rows, E]
  rec.run(k.matmul, g.proj, ...plan.proj.grid); //                        A        [rows, GH]
  rec.steps(k.forward, g.forward, stepGrid(s, B), forwardSteps(T)); //    Hs, Cs   [(T+1)·B, H]
  rec.run(k.head, g.head, Math.ceil(B / 64)); //                          logits   [B]
}

/** Workgroups of one recurrent step: 16×16 tiles over [B, H]. */
export function stepGrid(s: Pick<Shared, "H">, B: number): readonly [number, number] {
  return [Math.ceil(s.H / 16), Math.ceil(B / 16)];
}
