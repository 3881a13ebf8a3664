// The backward pass of a GPU training step: BPTT (phase 1), then the weight and embedding gradients
// (phase 2). Gradients of the dense parameters land in G [Np]; those of the batch's embedding rows in
// dEmbC [U, E] (compact order, see plan.ts).
//
// Legend: B batch, T padded length, rows = T·B, E embedding width, H hidden, GH = G·H gate columns,
// U distinct tokens, S split-K partial sums.
//
//   dW_fc = dOutᵀ·h_T, db_fc = Σ dOut                      [H], [1]          2 matmuls
//   for t in T−1..0: dA_t = gates'(dA_{t+1}·W_hhᵀ + …)     [B, GH] per step  T dispatches (into A)
//   dW_ih = Xᵀ·dA, dW_hh = Hᵀ·dA, db = Σ dA                [E|H, GH], [GH]   matmuls, split-K + reduce
//   dX = dA·W_ihᵀ                                          [rows, E]         1 matmul (into X)
//   dEmbC[u] = Σ dX[positions of u]                        [U, E]            1 dispatch (scatter)
import type { BatchBuffers, Shared } from "./buffers.js";
import { stepGrid } from "./forward.js";
import type { GradOps, StepPlan } from "./plan.js";
import { grid1, reversed, type Recorder } from "./recorder.js";

/** Phase 1: the head's weight gradients, then backpropagation through time. */
export function recordBackward(rec: Recorder, s: Shared, bb: BatchBuffers, plan: StepPlan, ops: GradOps): void {
  const k = s.pipes, g = bb.groups;
  rec.begin(1);
  rec.run(k.matmul, g.fcW, ...ops.fcW.grid); //                                dW_fc   [H]
  rec.run(k.matmul, g.fcB, ...ops.fcB.grid); //                                db_fc   [1]
  rec.steps(k.backward, g.backward, stepGrid(s, plan.B), reversed(plan.T)); // dA      [rows, GH]
  rec.end();
}

/** Phase 2: weight gradients (straight into G, or split-K partials reduced into G), dX, the embedding rows. */
export function recordWeightGrads(rec: Recorder, s: Shared, bb: BatchBuffers, plan: StepPlan, ops: GradOps): void {
  const k = s.pipes, g = bb.groups;
  rec.begin(2);
  for (const name of ["dWih", "dWhh", "dBih", "dBhh"] as const) {
    const op = ops[name];
    if (op.S > 1) {
      rec.run(k.matmul, g[name + "Split"], ...op.grid); //                [S, n] partials
      rec.run(k.reduce, g[name + "Reduce"], ...grid1(Math.ceil(op.n / 256))); // [n] into G
    } else {
      rec.run(k.matmul, g[name], ...op.grid);
    }
  }
  rec.run(k.matmul, g.dX, ...ops.dX.grid); //                                  dX      [rows, E]
  const U = plan.tokens.uniq.length;
  if (U > 0) rec.run(k.scatter, g.scatter, ...grid1(U)); //                   dEmbC   [U, E]
}
