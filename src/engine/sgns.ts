// Task sgns: word2vec's skip-gram with negative sampling (Mikolov et al. 2013) on a batch of reviews, as a
// gradient at fixed parameters (the coordinator applies it, like every other gradient).
//
// Legend: V vocabulary, E vector width, W largest window, k negatives per pair; u_x = embedding.weight[x]
// (input vectors), v_x = context.weight[x] (output vectors).
//
// Pairs (drawPairs), per review, with draws seeded by (batch.seed, the review's id) only, so a review gets the
// same pairs in any batch, on any worker, after a resume:
//   1. <unk> and <pad> are dropped (as word2vec drops unknown words), then each token x is kept with
//      probability min(1, (sqrt(f_x / (t·N)) + 1) · t·N / f_x) (word2vec's subsampling; f_x its count, N the
//      count of every vocabulary token, t = sgnsSubsample; t = 0 keeps all);
//   2. each kept position draws its window w uniformly from 1..W and pairs its token (the centre) with each
//      token within w positions of it (the contexts);
//   3. each pair draws k negatives from unigram counts^0.75 (never <unk>, <pad>); a negative equal to the
//      pair's context is skipped, as word2vec does.
// Loss of a pair (c, o) with negatives n: −log σ(u_c·v_o) − Σ_n log σ(−u_c·v_n). Gradients, with
// g = σ(u_c·v_o) − 1 for the context and g = σ(u_c·v_n) for each negative x:
//   d u_c += g · v_x        d v_x += g · u_c
// so only the rows of the centres (embedding.weight) and of contexts and negatives (context.weight) move.
import { DEFAULTS, PAD_ID, UNK_ID, taskOf, type ModelConfig } from "../config.js";
import { UsageError } from "../errors.js";
import { paramLayout, view, type ParamLayout } from "../model/layout.js";
import { Rng } from "../rng.js";
import { AliasTable, markedRows, sampleSeed, unigramWeights } from "./sampler.js";
import type { EngineBatch, EvalResult, StepResult } from "./types.js";
import { checkTokenBatch } from "./check.js";

const SALT = 0x2f6b1c3d;

export interface SgnsSettings {
  window: number; //     W
  negatives: number; //  k
  subsample: number; //  t (0 = off)
}

/** The task's settings from the model config (defaults from DEFAULTS), validated. */
export function sgnsSettings(cfg: ModelConfig): SgnsSettings {
  const s = { window: cfg.sgnsWindow ?? DEFAULTS.pretrain.sgnsWindow, negatives: cfg.sgnsNegatives ?? DEFAULTS.pretrain.sgnsNegatives, subsample: cfg.sgnsSubsample ?? DEFAULTS.pretrain.sgnsSubsample };
  if (!Number.isInteger(s.window) || s.window < 1) throw new UsageError(`sgnsWindow must be a positive integer, got ${s.window}`);
  if (!Number.isInteger(s.negatives) || s.negatives < 1) throw new UsageError(`sgnsNegatives must be a positive integer, got ${s.negatives}`);
  if (!(s.subsample >= 0 && Number.isFinite(s.subsample))) throw new UsageError(`sgnsSubsample must be a number >= 0, got ${s.subsample}`);
  return s;
}

/** What the draws need from the vocabulary's counts: the negatives' table and each token's keep probability. */
export interface SgnsTables {
  negatives: AliasTable;
  /** [V] probability that subsampling keeps an occurrence (0 for <unk>, <pad>). */
  keep: Float64Array;
}

export function sgnsTables(counts: ArrayLike<number> | undefined, V: number, subsample: number): SgnsTables {
  if (!counts) throw new UsageError("task sgns needs the vocabulary's token counts (EngineOptions.counts)");
  if (counts.length !== V) throw new UsageError(`${counts.length} token counts for a vocabulary of ${V}`);
  const negatives = new AliasTable(unigramWeights(counts, 0.75, 0, [UNK_ID, PAD_ID]));
  let N = 0;
  for (let x = 0; x < V; x++) if (x !== UNK_ID && x !== PAD_ID) N += counts[x];
  const thr = subsample * N;
  const keep = Float64Array.from(counts, (f, x) => {
    if (x === UNK_ID || x === PAD_ID) return 0;
    if (subsample === 0 || f <= 0) return 1;
    return Math.min(1, (Math.sqrt(f / thr) + 1) * thr / f);
  });
  return { negatives, keep };
}

/** The pairs of a batch, grouped by centre occurrence. */
export interface SgnsPairs {
  centres: Int32Array; //   [C] token of each centre occurrence
  starts: Int32Array; //    [C+1] its pairs are starts[i] .. starts[i+1]−1
  review: Int32Array; //    [C] batch row of each occurrence
  contexts: Int32Array; //  [Np]
  negatives: Int32Array; // [Np*k] (−1: a draw equal to the context, skipped)
}

export function drawPairs(batch: EngineBatch, s: SgnsSettings, tables: SgnsTables): SgnsPairs {
  const { size: B, maxLen: T, lengths } = batch;
  const tokens = batch.tokens!;
  const k = s.negatives, W = s.window;
  let n = 0;
  for (let b = 0; b < B; b++) n += lengths[b];
  const centres = new Int32Array(n), review = new Int32Array(n), starts = new Int32Array(n + 1);
  const contexts = new Int32Array(n * 2 * W), negatives = new Int32Array(n * 2 * W * k);
  const seq = new Int32Array(T);
  let C = 0, Np = 0;
  for (let b = 0; b < B; b++) {
    const rng = new Rng(sampleSeed(batch.seed ?? 0, batch.ids ? batch.ids[b] : b, SALT));
    let L = 0;
    for (let t = 0; t < lengths[b]; t++) {
      const x = tokens[b * T + t];
      const p = tables.keep[x];
      if (p === 0 || (p < 1 && rng.next() >= p)) continue;
      seq[L++] = x;
    }
    for (let i = 0; i < L; i++) {
      const w = 1 + rng.int(W);
      centres[C] = seq[i]; review[C] = b; starts[C] = Np;
      for (let j = Math.max(0, i - w); j <= Math.min(L - 1, i + w); j++) {
        if (j === i) continue;
        const o = seq[j];
        contexts[Np] = o;
        for (let q = 0; q < k; q++) {
          const neg = tables.negatives.draw(rng);
          negatives[Np * k + q] = neg === o ? -1 : neg;
        }
        Np++;
      }
      C++;
    }
  }
  starts[C] = Np;
  return { centres: centres.subarray(0, C), starts: starts.subarray(0, C + 1), review: review.subarray(0, C), contexts: contexts.subarray(0, Np), negatives: negatives.subarray(0, Np * k) };
}

export class SgnsModel {
  readonly layout: ParamLayout;
  readonly settings: SgnsSettings;
  private readonly tables: SgnsTables;
  private readonly V: number;
  private readonly E: number;

  constructor(readonly cfg: ModelConfig, counts?: ArrayLike<number>) {
    if (taskOf(cfg) !== "sgns") throw new UsageError(`the skip-gram engine trains task sgns, not ${taskOf(cfg)}`);
    this.layout = paramLayout(cfg);
    this.settings = sgnsSettings(cfg);
    this.V = cfg.vocabSize; this.E = cfg.embedDim;
    this.tables = sgnsTables(counts, this.V, this.settings.subsample);
  }

  private check(params: Float32Array, batch: EngineBatch): void {
    checkTokenBatch("skip-gram", this.layout.size, this.V, params, batch);
  }

  evaluate(params: Float32Array, batch: EngineBatch): EvalResult {
    this.check(params, batch);
    const r = this.run(params, drawPairs(batch, this.settings, this.tables), batch.size, undefined);
    return { lossSum: r.lossSum, correct: r.correct, count: r.count, outputs: r.perReview };
  }

  step(params: Float32Array, batch: EngineBatch): StepResult {
    this.check(params, batch);
    const pairs = drawPairs(batch, this.settings, this.tables);
    const grads = new Float32Array(this.layout.size);
    const r = this.run(params, pairs, batch.size, grads);
    const inRows = new Uint8Array(this.V), outRows = new Uint8Array(this.V);
    for (let i = 0; i < pairs.centres.length; i++) if (pairs.starts[i + 1] > pairs.starts[i]) inRows[pairs.centres[i]] = 1;
    for (let j = 0; j < pairs.contexts.length; j++) outRows[pairs.contexts[j]] = 1;
    for (let j = 0; j < pairs.negatives.length; j++) if (pairs.negatives[j] >= 0) outRows[pairs.negatives[j]] = 1;
    const embeddingRows = markedRows(inRows);
    return { lossSum: r.lossSum, correct: r.correct, count: r.count, grads, embeddingRows, touched: { "embedding.weight": embeddingRows, "context.weight": markedRows(outRows) } };
  }

  /** Loss, ranking count and per-review loss of the pairs; with `grads`, the gradient added into it. */
  private run(params: Float32Array, pairs: SgnsPairs, B: number, grads: Float32Array | undefined) {
    const E = this.E, E4 = E & ~3, k = this.settings.negatives;
    const inV = view(this.layout, params, "embedding.weight"), outV = view(this.layout, params, "context.weight");
    const gIn = grads ? view(this.layout, grads, "embedding.weight") : new Float32Array(0);
    const gOut = grads ? view(this.layout, grads, "context.weight") : new Float32Array(0);
    const train = grads !== undefined;
    const u = new Float64Array(E); //  the centre's input vector
    const du = new Float64Array(E); // its gradient over the occurrence's pairs, added to its row once
    const perReview = new Float32Array(B);
    let lossSum = 0, correct = 0;
    const { centres, starts, contexts, negatives } = pairs;
    for (let i = 0; i < centres.length; i++) {
      const cu = centres[i] * E;
      for (let e = 0; e < E; e++) { u[e] = inV[cu + e]; du[e] = 0; }
      let occLoss = 0;
      for (let j = starts[i]; j < starts[i + 1]; j++) {
        let best = -Infinity, pos = 0;
        for (let q = -1; q < k; q++) {
          const x = q < 0 ? contexts[j] : negatives[j * k + q];
          if (x < 0) continue;
          const xv = x * E;
          // s = u·v_x with four partial sums (no single dependency chain)
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0, e = 0;
          for (; e < E4; e += 4) {
            s0 += u[e] * outV[xv + e]; s1 += u[e + 1] * outV[xv + e + 1];
            s2 += u[e + 2] * outV[xv + e + 2]; s3 += u[e + 3] * outV[xv + e + 3];
          }
          for (; e < E; e++) s0 += u[e] * outV[xv + e];
          const s = (s0 + s1) + (s2 + s3);
          // label 1 for the context, 0 for a negative: loss softplus(∓s), g = σ(s) − label
          const a = q < 0 ? -s : s, ea = Math.exp(-Math.abs(s));
          occLoss += (a > 0 ? a : 0) + Math.log1p(ea);
          if (q < 0) pos = s; else if (s > best) best = s;
          if (!train) continue;
          const sig = s >= 0 ? 1 / (1 + ea) : ea / (1 + ea);
          const g = q < 0 ? sig - 1 : sig;
          for (let f = 0; f < E; f++) {
            du[f] += g * outV[xv + f];
            gOut[xv + f] += g * u[f];
          }
        }
        if (pos > best) correct++;
      }
      if (train) for (let e = 0; e < E; e++) gIn[cu + e] += du[e];
      lossSum += occLoss;
      perReview[pairs.review[i]] += occLoss;
    }
    return { lossSum, correct, count: contexts.length, perReview };
  }
}
