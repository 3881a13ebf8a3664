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
}

export const DEFAULTS = {
  // ---- data (ingest) ----
  vocabSize: 25_000, //        most frequent tokens kept, plus <unk> and <pad>
  minFreq: 1, //               tokens seen fewer times map to <unk>
  batchSize: 64, //            reviews per batch
  maxLen: 0, //                truncate reviews to this many tokens (0 = no truncation)
  keep: "last" as KeepSide, //  which --max-len tokens of a longer review are kept
  valFraction: 0.1, //         seeded validation split of train
  seed: 1234, //               every shuffle and initialisation derives from it
  poolBatches: 100, //         bucketing pool, in batches (torchtext BucketIterator)
  // ---- model ----
  cell: "lstm" as CellKind,
  embedDim: 100,
  hidden: 256,
  layers: 1,
  bidirectional: false,
  // ---- optimisation ----
  lr: 1e-3, //                 Adam learning rate
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  clip: 5, //                  global-norm gradient clipping
  epochs: 5,
} as const;

/** Special token ids, fixed by the vocabulary format. */
export const UNK_ID = 0;
export const PAD_ID = 1;
