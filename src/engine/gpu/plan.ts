// The host side of a GPU step: the batch's compact token table, the uniforms of every dispatch, and the
// uploads (the dense parameters and the batch's embedding rows only, from a full vector or from RowParams).
// Nothing here records GPU work (forward.ts, backward.ts, readback.ts do).
//
// Legend: B batch, T padded length, rows = T·B time-major positions (row t·B + b), E embedding width,
// H hidden, GH = G·H gate columns (G = 4 LSTM, 3 GRU), V vocabulary, U distinct token ids of the batch,
// Np parameters without the embedding table, S split-K partial sums of one matmul.
import { PAD_ID } from "../../config.js";
import { InputError } from "../../errors.js";
import { batchDropoutMask } from "../head.js";
import { checkRowsGiven, isRowParams } from "../rows.js";
import type { EngineBatch, EngineParams } from "../types.js";
import { MAX_SPLITS, SLOT, SLOTS, type BatchBuffers, type Shared } from "./buffers.js";
import { DIMS_WORDS, STEP_SLOT_BYTES } from "./wgsl/common.js";

/** Element offsets of the dense tensors in P and G (the parameters after the embedding table). */
export interface Offsets { wih: number; whh: number; bih: number; bhh: number; fcw: number; fcb: number }

/** The batch's tokens as the kernels read them. */
export interface TokenTable {
  ctok: Int32Array<ArrayBuffer>; //    [rows] compact row u of each position, −1 past a review's end
  uniq: Int32Array; //                 [U] token id of each compact row, ascending
  padU: number; //                     compact row of <pad>, −1 when the batch reads none (it gets no gradient)
  start: Uint32Array<ArrayBuffer>; //  [U+1] CSR: positions of row u are pos[start[u] .. start[u+1]) (training only)
  pos: Uint32Array<ArrayBuffer>; //    [n ≤ rows] positions holding each row, ascending, <pad> left out
}

/** A matmul's operands: element (m, k) of A at off + m·rs + k·cs; same for B with (k, n). */
export interface Operand { off: number; rs: number; cs: number }

/** A matmul as recorded: workgroup grid, split-K count S, n = M·N outputs, written at dOff of its output. */
export interface MatmulOp { grid: readonly [number, number, number]; S: number; n: number; dOff: number }

/** The matmuls of the backward pass (training steps only). */
export interface GradOps { fcW: MatmulOp; fcB: MatmulOp; dWih: MatmulOp; dWhh: MatmulOp; dBih: MatmulOp; dBhh: MatmulOp; dX: MatmulOp }

/** Everything a step records, decided on the host. */
export interface StepPlan {
  B: number;
  T: number;
  rows: number;
  train: boolean;
  tokens: TokenTable;
  embC: Float32Array; //       [U, E] the batch's embedding rows
  mask: Float32Array | null; // [B, H] dropout on the classifier's input (training only)
  proj: MatmulOp;
  grads?: GradOps; //          training only
}

/**
 * Maps the batch's token ids to compact rows in ascending id order (so the rows a step touches come back
 * sorted, as the contract wants them). `mark` [V] is all −1 on entry and on return (also when a bad id throws).
 */
export function compactTokens(batch: EngineBatch, V: number, mark: Int32Array): Pick<TokenTable, "ctok" | "uniq" | "padU"> {
  const { size: B, maxLen: T, lengths, tokens } = batch;
  const seen: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < lengths[b]; t++) {
      const id = tokens![b * T + t];
      if (!(id >= 0 && id < V)) {
        for (const u of seen) mark[u] = -1;
        throw new InputError(`token id ${id} at batch row ${b}, position ${t} is outside the vocabulary (V=${V})`);
      }
      if (mark[id] < 0) { mark[id] = 0; seen.push(id); }
    }
  }
  const uniq = Int32Array.from(seen).sort(); // [U]
  for (let u = 0; u < uniq.length; u++) mark[uniq[u]] = u;
  const ctok = new Int32Array(T * B).fill(-1); // [rows]
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) ctok[t * B + b] = mark[tokens![b * T + t]];
  const padU = PAD_ID < V ? mark[PAD_ID] : -1;
  for (const id of uniq) mark[id] = -1;
  return { ctok, uniq, padU };
}

/** CSR of the positions holding each compact row (no <pad> gradient); empty when not training. */
export function tokenPositions(ctok: Int32Array, U: number, padU: number, train: boolean): Pick<TokenTable, "start" | "pos"> {
  const rows = ctok.length;
  const start = new Uint32Array(U + 1); // [U+1]
  const pos = new Uint32Array(rows); //    [n ≤ rows]
  if (!train) return { start, pos };
  for (let r = 0; r < rows; r++) { const u = ctok[r]; if (u >= 0 && u !== padU) start[u + 1]++; }
  for (let u = 0; u < U; u++) start[u + 1] += start[u];
  const fill = start.slice(0, U);
  for (let r = 0; r < rows; r++) { const u = ctok[r]; if (u >= 0 && u !== padU) pos[fill[u]++] = r; }
  return { start, pos };
}

/**
 * embC [U, E]: the embedding rows of the batch's tokens, in compact order, from the full vector or from
 * the rows given (InputError naming a row the batch reads but was not given).
 */
export function compactRows(params: EngineParams, uniq: Int32Array, E: number): Float32Array {
  if (!isRowParams(params)) {
    const embC = new Float32Array(uniq.length * E);
    for (let u = 0; u < uniq.length; u++) embC.set(params.subarray(uniq[u] * E, uniq[u] * E + E), u * E);
    return embC;
  }
  checkRowsGiven(uniq, params.rows);
  if (params.rows.length === uniq.length) return params.values; // exactly the batch's rows: as given
  const embC = new Float32Array(uniq.length * E);
  for (let u = 0, j = 0; u < uniq.length; u++) {
    while (params.rows[j] < uniq[u]) j++;
    embC.set(params.values.subarray(j * E, j * E + E), u * E);
  }
  return embC;
}

/** The step's uniform slots (256 bytes each), written once per step into one buffer. */
export class Uniforms {
  readonly bytes = new ArrayBuffer(SLOTS * STEP_SLOT_BYTES);
  private readonly u32 = new Uint32Array(this.bytes);

  clear(): void {
    this.u32.fill(0);
  }

  put(slot: number, words: number[]): void {
    this.u32.set(words, (slot * STEP_SLOT_BYTES) / 4);
  }

  /**
   * C[M, N] = A[M, K]·B[K, N] into its output at cOff (row stride ldc), + bias rows per `flags`. With
   * `split`, K is cut into S chunks whose partial sums a reduce adds (enough workgroups on small M·N).
   */
  matmul(slot: number, M: number, N: number, K: number, a: Operand, b: Operand, cOff: number, ldc: number, split: boolean, flags = 0, bias1 = 0, bias2 = 0): MatmulOp {
    let S = 1;
    if (split) {
      const tiles = Math.ceil(M / 64) * Math.ceil(N / 64);
      S = Math.max(1, Math.min(MAX_SPLITS, Math.ceil(256 / tiles), Math.ceil(K / 64)));
    }
    const kChunk = Math.ceil(Math.ceil(K / S) / 16) * 16;
    S = Math.ceil(K / kChunk);
    const w = S > 1
      ? [M, N, K, kChunk, a.off, a.rs, a.cs, b.off, b.rs, b.cs, 0, N, M * N, bias1, bias2, flags]
      : [M, N, K, kChunk, a.off, a.rs, a.cs, b.off, b.rs, b.cs, cOff, ldc, 0, bias1, bias2, flags];
    this.put(slot, w);
    return { grid: [Math.ceil(N / 64), Math.ceil(M / 64), S] as const, S, n: M * N, dOff: cOff };
  }
}

/** The backward matmuls and their split-K reductions, into the uniforms. */
function planGradOps(uni: Uniforms, s: Shared, o: Offsets, B: number, T: number, U: number): GradOps {
  const { In: E, H, GH } = s, rows = T * B;
  const ops: GradOps = {
    fcW: uni.matmul(SLOT.fcW, 1, H, B, { off: B, rs: 0, cs: 1 }, { off: T * B * H, rs: H, cs: 1 }, o.fcw, H, false), //  dOut·H_T   [1, H]
    fcB: uni.matmul(SLOT.fcB, 1, 1, B, { off: B, rs: 0, cs: 1 }, { off: 0, rs: 0, cs: 0 }, o.fcb, 1, false), //          Σ dOut      [1]
    dWih: uni.matmul(SLOT.dWih, E, GH, rows, { off: 0, rs: 1, cs: E }, { off: 0, rs: GH, cs: 1 }, o.wih, GH, true), //     Xᵀ·dA       [E, GH]
    dWhh: uni.matmul(SLOT.dWhh, H, GH, rows, { off: 0, rs: 1, cs: H }, { off: 0, rs: GH, cs: 1 }, o.whh, GH, true), //     Hᵀ·dA       [H, GH]
    dBih: uni.matmul(SLOT.dBih, 1, GH, rows, { off: 0, rs: 0, cs: 0 }, { off: 0, rs: GH, cs: 1 }, o.bih, GH, true), //     Σ dA        [GH]
    dBhh: uni.matmul(SLOT.dBhh, 1, GH, rows, { off: 0, rs: 0, cs: 0 }, { off: 0, rs: GH, cs: 1 }, o.bhh, GH, true), //     Σ dA(h)     [GH]
    dX: uni.matmul(SLOT.dX, rows, E, GH, { off: 0, rs: GH, cs: 1 }, { off: o.wih, rs: 1, cs: GH }, 0, E, false), //          dA·W_ihᵀ    [rows, E]
  };
  for (const [name, rs] of [["dWih", SLOT.rWih], ["dWhh", SLOT.rWhh], ["dBih", SLOT.rBih], ["dBhh", SLOT.rBhh]] as const) {
    const op = ops[name];
    uni.put(rs, [op.n, op.S, op.n, op.dOff]);
  }
  uni.put(SLOT.scatter, [U, E, 0, 0]);
  return ops;
}

/** Plans one step: token table, dropout masks, every uniform. Throws InputError for a token outside V. */
export function planStep(uni: Uniforms, s: Shared, o: Offsets, mse: boolean, params: EngineParams, batch: EngineBatch, train: boolean, mark: Int32Array): StepPlan {
  const { size: B, maxLen: T } = batch;
  const rows = T * B;
  const { ctok, uniq, padU } = compactTokens(batch, s.V, mark);
  const tokens = { ctok, uniq, padU, ...tokenPositions(ctok, uniq.length, padU, train) };
  const embC = compactRows(params, uniq, s.In);
  uni.clear();
  // dropout on the classifier's input (training only): the CPU engine's masks, keyed by sample id
  const mask = train ? batchDropoutMask(batch, s.H) : null;
  const dims = [B, T, s.H, s.In, o.wih, o.whh, o.bih, o.bhh, o.fcw, o.fcb, mse ? 1 : 0, rows, mask ? 1 : 0];
  uni.put(SLOT.dims, dims.concat(Array(DIMS_WORDS - dims.length).fill(0)));
  //   A = X·W_ih + b_ih (+ b_hh for the LSTM)                                                                   [rows, GH]
  const proj = uni.matmul(SLOT.proj, rows, s.GH, s.In, { off: 0, rs: s.In, cs: 1 }, { off: o.wih, rs: s.GH, cs: 1 }, 0, s.GH, false, s.lstm ? 3 : 1, o.bih, o.bhh);
  const grads = train ? planGradOps(uni, s, o, B, T, uniq.length) : undefined;
  return { B, T, rows, train, tokens, embC, mask, proj, grads };
}

/** Writes the step's inputs: dense parameters, compact embedding rows, tokens, lengths, targets, masks, uniforms. */
export function uploadStep(s: Shared, bb: BatchBuffers, base: number, params: EngineParams, batch: EngineBatch, plan: StepPlan, uni: Uniforms): void {
  const q = s.device.queue, { B, embC } = plan, { uniq, ctok, start, pos } = plan.tokens;
  const dense = isRowParams(params) ? params.dense : params.subarray(base); // [Np]
  q.writeBuffer(s.P, 0, dense.buffer, dense.byteOffset, s.Np * 4);
  if (uniq.length > 0) q.writeBuffer(bb.embC, 0, embC.buffer, embC.byteOffset, embC.byteLength);
  q.writeBuffer(bb.ctok, 0, ctok);
  q.writeBuffer(bb.lens, 0, batch.lengths.buffer, batch.lengths.byteOffset, B * 4);
  q.writeBuffer(bb.y, 0, batch.targets.buffer, batch.targets.byteOffset, B * 4);
  if (plan.mask) q.writeBuffer(bb.head, 2 * B * 4, plan.mask.buffer, plan.mask.byteOffset, plan.mask.byteLength);
  if (plan.train) { q.writeBuffer(bb.start, 0, start); q.writeBuffer(bb.pos, 0, pos); }
  q.writeBuffer(bb.uni, 0, uni.bytes);
}
