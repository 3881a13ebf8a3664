// Task lm: next-token prediction with a sampled softmax, on the classifier's embedding and recurrent layers.
//
// Legend: B batch, T padded length, E embedding width, H hidden (top layer, one direction), V vocabulary,
// P predictions (Σ_b len_b − 1), S candidate draws per batch, U unique candidates (U ≤ S).
//
// Position t of review b (t < len_b − 1) predicts token t+1 from the top layer's output h_t, so the layers
// run over the first len_b − 1 tokens only (the last token's output would predict nothing). Padding is never
// a target. Sampled softmax (Jean et al. 2015): per batch, S ids are drawn with replacement from Q (see
// drawCandidates; seeded by the batch's set of sample ids); equal draws are merged into U candidates c with
// multiplicity m_c. For a prediction with target y:
//   z_y = h·w_y + b_y − log Q(y)
//   z_c = h·w_c + b_c − log Q(c) + log m_c       for each candidate c ≠ y (a draw of y is left out of its row)
//   loss = logsumexp(z_y, z_c …) − z_y
// which is the cross-entropy over the target and the S draws listed one by one (m_c copies of c), at the
// cost of U. Backward: dz = softmax(z) − onehot(y); dh = dz_y·w_y + Σ_c dz_c·w_c enters the recurrent layers'
// BPTT at its step; dw_y += dz_y·h, db_y += dz_y; dw_c = Σ_p dz_pc·h_p, db_c = Σ_p dz_pc.
// Matmuls over all predictions go to the backend in chunks of CHUNK_ROWS rows: logits = H·W_Uᵀ [P, U],
// dH = dZ·W_U, dW_U = dZᵀ·H; the per-row target terms are typed-array loops.
import type { LmSampler, ModelConfig } from "../config.js";
import { DEFAULTS, PAD_ID, taskOf } from "../config.js";
import { UsageError } from "../errors.js";
import { paramLayout, view, type ParamLayout } from "../model/layout.js";
import { Rng } from "../rng.js";
import { gather, scatterAdd } from "./embedding.js";
import { CHUNK_ROWS, mm, upload, uploadTransposed, weightGrad } from "./matmul.js";
import { AliasTable, batchSeed, logUniformWeights, markedRows, unigramWeights } from "./sampler.js";
import { RecurrentStack, type StackForward } from "./stack.js";
import type { EngineBatch, EvalResult, StepResult } from "./types.js";
import { checkTokenBatch } from "./check.js";

const SALT = 0x1b873593;

/** The candidate distribution Q of an lm model: unigram counts^0.75 (floored at 1) or log-uniform; never <pad>. */
export function lmTable(cfg: ModelConfig, counts?: ArrayLike<number>): AliasTable {
  const sampler: LmSampler = cfg.lmSampler ?? DEFAULTS.pretrain.lmSampler;
  if (sampler === "log-uniform") return new AliasTable(logUniformWeights(cfg.vocabSize, [PAD_ID]));
  if (sampler !== "unigram") throw new UsageError(`lmSampler must be unigram or log-uniform, got ${String(sampler)}`);
  if (!counts) throw new UsageError("task lm with sampler unigram needs the vocabulary's token counts (EngineOptions.counts)");
  if (counts.length !== cfg.vocabSize) throw new UsageError(`${counts.length} token counts for a vocabulary of ${cfg.vocabSize}`);
  return new AliasTable(unigramWeights(counts, 0.75, 1, [PAD_ID]));
}

export interface Candidates {
  draws: Int32Array; //  [S] in drawing order
  ids: Int32Array; //    [U] unique, ascending
  mult: Int32Array; //   [U] how many draws gave each
}

/** The batch's S draws from `table`: a function of (seed, the set of sample ids) only (row positions without ids). */
export function drawCandidates(table: AliasTable, S: number, batch: EngineBatch): Candidates {
  const keys = batch.ids ?? Int32Array.from({ length: batch.size }, (_, b) => b);
  const rng = new Rng(batchSeed(batch.seed ?? 0, keys, SALT));
  const draws = new Int32Array(S);
  const count = new Int32Array(table.size);
  for (let s = 0; s < S; s++) count[(draws[s] = table.draw(rng))]++;
  let U = 0;
  for (let v = 0; v < count.length; v++) if (count[v]) U++;
  const ids = new Int32Array(U), mult = new Int32Array(U);
  for (let v = 0, u = 0; v < count.length; v++) if (count[v]) { ids[u] = v; mult[u++] = count[v]; }
  return { draws, ids, mult };
}

/** Predictions of a batch: feature row (t*B + b in the layers' outputs), target id and review of each. */
interface Predictions { P: number; row: Int32Array; target: Int32Array; review: Int32Array }

export class LmModel {
  readonly layout: ParamLayout;
  private readonly stack: RecurrentStack;
  private readonly table: AliasTable;
  private readonly S: number;
  private readonly V: number;
  private readonly E: number;
  private readonly H: number;

  constructor(readonly cfg: ModelConfig, counts?: ArrayLike<number>) {
    if (taskOf(cfg) !== "lm") throw new UsageError(`the language-model engine trains task lm, not ${taskOf(cfg)}`);
    this.layout = paramLayout(cfg); // refuses bidirectional models
    this.S = cfg.lmSamples ?? DEFAULTS.pretrain.lmSamples;
    if (!Number.isInteger(this.S) || this.S < 1) throw new UsageError(`lmSamples must be a positive integer, got ${this.S}`);
    this.table = lmTable(cfg, counts);
    this.V = cfg.vocabSize; this.E = cfg.embedDim; this.H = cfg.hidden;
    this.stack = new RecurrentStack(cfg, this.layout, this.E);
  }

  private check(params: Float32Array, batch: EngineBatch): void {
    checkTokenBatch("language-model", this.layout.size, this.V, params, batch);
  }

  /** Inputs of the layers: each review's first len−1 tokens, as a [B, T'] batch with T' = max(len) − 1. */
  private inputs(batch: EngineBatch): { Tp: number; lens: Int32Array; tokens: Int32Array } {
    const { size: B, maxLen: T } = batch;
    const lens = batch.lengths.map((n) => n - 1);
    const Tp = Math.max(...lens);
    const tokens = new Int32Array(B * Tp);
    for (let b = 0; b < B; b++) tokens.set(batch.tokens!.subarray(b * T, b * T + Tp), b * Tp);
    return { Tp, lens, tokens };
  }

  /** Every (b, t < len_b − 1) whose next token is not <pad>, time-major. */
  private predictions(batch: EngineBatch, Tp: number, lens: Int32Array): Predictions {
    const { size: B, maxLen: T } = batch;
    const row: number[] = [], target: number[] = [], review: number[] = [];
    for (let t = 0; t < Tp; t++) {
      for (let b = 0; b < B; b++) {
        if (t >= lens[b]) continue;
        const y = batch.tokens![b * T + t + 1];
        if (y === PAD_ID) continue;
        row.push(t * B + b); target.push(y); review.push(b);
      }
    }
    return { P: row.length, row: Int32Array.from(row), target: Int32Array.from(target), review: Int32Array.from(review) };
  }

  evaluate(params: Float32Array, batch: EngineBatch): EvalResult {
    const r = this.run(params, batch, false);
    return { lossSum: r.lossSum, correct: r.correct, count: r.count, outputs: r.perReview };
  }

  step(params: Float32Array, batch: EngineBatch): StepResult {
    const r = this.run(params, batch, true);
    const grads = r.grads!;
    const touched = { "embedding.weight": r.embeddingRows!, "lm.weight": r.lmRows!, "lm.bias": r.lmRows! };
    return { lossSum: r.lossSum, correct: r.correct, count: r.count, grads, embeddingRows: r.embeddingRows, touched };
  }

  private run(params: Float32Array, batch: EngineBatch, train: boolean) {
    this.check(params, batch);
    const { size: B } = batch;
    const { Tp, lens, tokens } = this.inputs(batch);
    const grads = train ? new Float32Array(this.layout.size) : undefined;
    const perReview = new Float32Array(B);
    const pred = this.predictions(batch, Tp, lens);
    if (Tp === 0 || pred.P === 0) {
      const empty = new Int32Array(0);
      return { lossSum: 0, correct: 0, count: 0, perReview, grads, embeddingRows: empty, lmRows: empty };
    }
    const emb = view(this.layout, params, "embedding.weight");
    const f: StackForward = this.stack.forward(params, gather(emb, this.V, this.E, tokens, lens, B, Tp), Tp, B, lens, train, true);
    const feats = new Float32Array(pred.P * this.H); // [P, H]
    for (let p = 0; p < pred.P; p++) feats.set(f.outputs!.subarray(pred.row[p] * this.H, (pred.row[p] + 1) * this.H), p * this.H);
    const cand = drawCandidates(this.table, this.S, batch);
    const sm = this.softmax(params, feats, pred, cand, grads);
    for (let p = 0; p < pred.P; p++) perReview[pred.review[p]] += sm.losses[p];
    if (!grads) return { lossSum: sm.lossSum, correct: sm.correct, count: pred.P, perReview };
    const dOut = new Float32Array(Tp * B * this.H); // [T'*B, H]
    for (let p = 0; p < pred.P; p++) dOut.set(sm.dFeats!.subarray(p * this.H, (p + 1) * this.H), pred.row[p] * this.H);
    const dx = this.stack.backward(params, f, Tp, B, lens, undefined, dOut, grads, true)!;
    const embeddingRows = scatterAdd(view(this.layout, grads, "embedding.weight"), this.E, dx, tokens, lens, B, Tp);
    return { lossSum: sm.lossSum, correct: sm.correct, count: pred.P, perReview, grads, embeddingRows, lmRows: sm.lmRows! };
  }

  /**
   * The sampled softmax over feats [P, H]: loss of each prediction, their sum, the ranking count, and with
   * `grads` the gradients of lm.weight and lm.bias (written there), dFeats [P, H] and the lm rows touched.
   */
  private softmax(params: Float32Array, feats: Float32Array, pred: Predictions, cand: Candidates, grads?: Float32Array) {
    const { H } = this, U = cand.ids.length;
    const W = view(this.layout, params, "lm.weight"), bias = view(this.layout, params, "lm.bias");
    const q = this.table.q;
    const Wu = new Float32Array(U * H); // [U, H]
    const corr = new Float64Array(U); //   [U] b_c − log Q(c) + log m_c
    for (let u = 0; u < U; u++) {
      const c = cand.ids[u];
      Wu.set(W.subarray(c * H, (c + 1) * H), u * H);
      corr[u] = bias[c] - Math.log(q[c]) + Math.log(cand.mult[u]);
    }
    const WuT = uploadTransposed(Wu, U, H); //             [H, U]
    const WuR = grads ? upload(Wu, U, H) : undefined; //  [U, H]
    const losses = new Float64Array(pred.P);
    const dFeats = grads ? new Float32Array(pred.P * H) : undefined;
    const dWu = grads ? new Float64Array(U * H) : undefined;
    const dbu = new Float64Array(U);
    const gW = grads ? view(this.layout, grads, "lm.weight") : undefined, gB = grads ? view(this.layout, grads, "lm.bias") : undefined;
    let lossSum = 0, correct = 0;
    const z = new Float64Array(U); //      one row's corrected logits, then their exponentials
    const biasU = Float64Array.from(cand.ids, (c) => bias[c]);
    const slot = new Int32Array(this.V).fill(-1); // candidate index of an id (-1: not drawn)
    for (let u = 0; u < U; u++) slot[cand.ids[u]] = u;
    const hits = new Int32Array(U); // rows where the candidate is the target (left out there)
    for (let p0 = 0; p0 < pred.P; p0 += CHUNK_ROWS) {
      const m = Math.min(CHUNK_ROWS, pred.P - p0);
      const hs = feats.subarray(p0 * H, (p0 + m) * H); //   [m, H]
      const logits = mm(hs, m, H, WuT); //                  [m, U] = h·w_c
      for (let i = 0; i < m; i++) {
        const p = p0 + i, y = pred.target[p], h = hs.subarray(i * H, (i + 1) * H), row = i * U, hit = slot[y];
        let oy = bias[y];
        for (let j = 0; j < H; j++) oy += h[j] * W[y * H + j];
        const zy = oy - Math.log(q[y]);
        let zmax = zy, omax = -Infinity;
        for (let u = 0; u < U; u++) {
          const o = logits[row + u], zu = o + corr[u];
          z[u] = zu;
          if (u === hit) continue;
          if (o + biasU[u] > omax) omax = o + biasU[u];
          if (zu > zmax) zmax = zu;
        }
        if (hit >= 0) { z[hit] = -Infinity; hits[hit]++; }
        const ey = Math.exp(zy - zmax);
        let sum = ey;
        for (let u = 0; u < U; u++) { const e = Math.exp(z[u] - zmax); z[u] = e; sum += e; }
        const loss = zmax + Math.log(sum) - zy;
        losses[p] = loss;
        lossSum += loss;
        if (oy > omax) correct++;
        if (!grads) continue;
        // dz = softmax − onehot(y): the candidates' into this chunk's logits buffer (reused as dZ [m, U]),
        // the target's terms here
        const inv = 1 / sum, dy = ey * inv - 1;
        for (let u = 0; u < U; u++) { const d = z[u] * inv; logits[row + u] = d; dbu[u] += d; }
        const dh = dFeats!.subarray(p * H, (p + 1) * H);
        for (let j = 0; j < H; j++) { dh[j] = dy * W[y * H + j]; gW![y * H + j] += dy * h[j]; }
        gB![y] += dy;
      }
      if (!grads) continue;
      const back = mm(logits, m, U, WuR!); //                [m, H] = dZ·W_U
      for (let k = 0; k < m * H; k++) dFeats![p0 * H + k] += back[k];
      const dw = weightGrad(logits, hs, m, U, H); //         [U, H] = dZᵀ·H
      for (let k = 0; k < U * H; k++) dWu![k] += dw[k];
    }
    WuT.dispose(); WuR?.dispose();
    if (!grads) return { losses, lossSum, correct };
    const mark = new Uint8Array(this.V);
    for (let p = 0; p < pred.P; p++) mark[pred.target[p]] = 1;
    for (let u = 0; u < U; u++) {
      if (hits[u] === pred.P) continue; // left out of every row: no gradient
      const c = cand.ids[u];
      mark[c] = 1;
      for (let j = 0; j < H; j++) gW![c * H + j] += dWu![u * H + j];
      gB![c] += dbu[u];
    }
    return { losses, lossSum, correct, dFeats, lmRows: markedRows(mark) };
  }
}
