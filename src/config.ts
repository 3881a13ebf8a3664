// Every default setting of the project in one commented block, and the model's shape contract.
// The resolved config is saved with every checkpoint and model.

export type CellKind = "lstm" | "gru";
/** Which tokens of a review longer than --max-len are kept: the first ones, or the last (where the verdict usually is). */
export type KeepSide = "first" | "last";
export const KEEP_SIDES: readonly KeepSide[] = ["first", "last"];

/** The kept part of `ids` when it is longer than `maxLen` (0 = no limit). */
export function truncateIds(ids: Int32Array, maxLen: number, keep: KeepSide): Int32Array {
  if (maxLen <= 0 || ids.length <= maxLen) return ids;
  return keep === "last" ? ids.subarray(ids.length - maxLen) : ids.subarray(0, maxLen);
}

/**
 * What a model's parameters are trained for (see paramLayout for each one's tensors):
 *   classify  the sentiment classifier, BCE on the final state (the default);
 *   lm        a next-token language model: the classifier's embedding and recurrent layers, then a softmax over
 *             the vocabulary trained as a sampled softmax (pretraining of what a classifier fine-tunes);
 *   sgns      word2vec's skip-gram with negative sampling: input and output word vectors only.
 */
export type ModelTask = "classify" | "lm" | "sgns";
export const MODEL_TASKS: readonly ModelTask[] = ["classify", "lm", "sgns"];

/** How the language model draws its softmax candidates: unigram counts^0.75 (needs the vocabulary's counts),
 *  or log-uniform over the frequency-ordered ids (P(id) ∝ log((id+2)/(id+1)), no counts needed). */
export type LmSampler = "unigram" | "log-uniform";

/** Shape of the classifier: Embedding(V, E) → {LSTM|GRU}(H) × layers [× 2 directions] → Linear(·, 1). */
export interface ModelConfig {
  cell: CellKind;
  /** V: rows of the embedding table (vocabulary incl. <unk>=0 and <pad>=1). */
  vocabSize: number;
  /** E: embedding width. */
  embedDim: number;
  /** H: hidden size of each recurrent layer and direction. */
  hidden: number;
  /** Stacked recurrent layers (1 or 2). */
  layers: number;
  bidirectional: boolean;
  /** Absent = "classify" (layouts and their hashes are then exactly those of a config without the field). */
  task?: ModelTask;
  /** lm: S, candidate draws of the sampled softmax per batch (default DEFAULTS.pretrain.lmSamples). */
  lmSamples?: number;
  /** lm: the candidates' distribution (default DEFAULTS.pretrain.lmSampler). */
  lmSampler?: LmSampler;
  /** sgns: W, the largest window; each centre draws its own window uniformly from 1..W (default DEFAULTS.pretrain.sgnsWindow). */
  sgnsWindow?: number;
  /** sgns: k, negatives per (centre, context) pair, drawn from unigram^0.75 (default DEFAULTS.pretrain.sgnsNegatives). */
  sgnsNegatives?: number;
  /** sgns: t of word2vec's subsampling of frequent tokens (0 = off; default DEFAULTS.pretrain.sgnsSubsample). */
  sgnsSubsample?: number;
}

/** The model's task (absent = "classify"). */
export function taskOf(cfg: { task?: ModelTask }): ModelTask {
  return cfg.task ?? "classify";
}

/** Every default of the project, in one table. `ingest` alone makes the chapter's batches of 64 from whole
 *  reviews; `train` (and `coordinator`) use the training section, chosen by validation accuracy on 2 cores. */
export const DEFAULTS = {
  seed: 1234, //                every shuffle, split and initialisation derives from it
  ingest: {
    vocabSize: 25_000, //       most frequent tokens kept, plus <unk> and <pad>
    minFreq: 1, //              tokens seen fewer times map to <unk>
    batchSize: 64, //           reviews per batch
    maxLen: 0, //               truncate reviews to this many tokens (0 = no truncation)
    keep: "last" as KeepSide, // which --max-len tokens of a longer review are kept
    valFraction: 0.1, //        seeded validation split of train
    poolBatches: 100, //        bucketing pool, in batches (torchtext BucketIterator)
  },
  model: {
    cell: "lstm" as CellKind,
    embedDim: 100, //           E
    hidden: 256, //             H
    layers: 1,
    bidirectional: false,
    forgetBias: 1, //           LSTM forget-gate bias at initialisation (0 = PyTorch's init)
  },
  train: {
    workers: 2, //              worker processes of `train`
    batchSize: 32, //           reviews per batch, per worker per step: 2 workers make a step of 64
    maxLen: 400, //             tokens kept per review (p90 of the archive is ~540; 400 keeps ~85% whole)
    epochs: 5,
    lr: 2e-3, //                Adam learning rate (peak, after warm-up)
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0, //          L2 penalty added to the gradient (torch.optim.Adam's weight_decay)
    clip: 5, //                 global-norm gradient clipping (0 = off)
    warmupSteps: 50, //         linear learning-rate warm-up
    decay: "cosine" as "none" | "linear" | "cosine", // to 0.1 × lr at the last step
    dropout: 0.5, //            on the classifier's input (the final hidden state)
    heartbeatTimeoutS: 10, //   an idle worker silent this long is evicted
    joinTimeoutS: 300, //       how long the coordinator waits for the expected workers
  },
  pretrain: {
    // train --pretrain: passes over train + unsup and the Adam learning rate of each kind of pretraining
    lm: { epochs: 1, lr: 1e-3 },
    vectors: { epochs: 2, lr: 5e-3 },
    // S: the LM's per-token cost is the LSTM's 6·G·H·(E+H) = 2,187,264 FLOPs (forward 2·G·H·(E+H), backward
    // twice that) plus 6·H·(S+1) for the sampled softmax (logits, dh, dW over the target and S candidates):
    // S = 384 adds 591,360, 1.27× the classifier's per-token FLOPs (E=100, H=256, G=4).
    lmSamples: 384,
    lmSampler: "unigram" as LmSampler, // counts^0.75 from the vocabulary
    sgnsWindow: 5, //           word2vec's default window
    sgnsNegatives: 5, //        negatives per pair
    sgnsSubsample: 1e-4, //     word2vec's -sample
  },
} as const;

/** Special token ids, fixed by the vocabulary format. */
export const UNK_ID = 0;
export const PAD_ID = 1;
