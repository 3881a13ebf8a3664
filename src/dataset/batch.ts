// The contract between ingest and training: what a batch is, in memory. Ingest writes batches as Arrow
// record batches (src/ingest); readers turn each record batch into a `Batch`.

/** The dataset's splits: train, its seeded validation share, test when the input has one, and the
 *  unlabelled reviews (unsup, for pretraining) when ingested with --unsup. */
export type Split = "train" | "val" | "test" | "unsup";

/**
 * One padded training batch. B = `size` reviews, T = `maxLen` (longest review in the batch).
 * Legend: tokens[b*T + t] is token t of review b; positions t >= lengths[b] hold PAD_ID.
 */
export interface Batch {
  split: Split;
  /** Position of this batch in its split's file (stable across runs of the same dataset). */
  index: number;
  /** B: reviews in the batch. */
  size: number;
  /** T: padded length = max(lengths). */
  maxLen: number;
  /** [B*T] token ids, row-major, PAD_ID-padded. */
  tokens: Int32Array;
  /** [B] true lengths (>= 1). */
  lengths: Int32Array;
  /** [B] 1 = positive, 0 = negative; all 0 in a batch without labels (see `labelled`). */
  labels: Uint8Array;
  /** false for a batch of unlabelled reviews (the unsup split: its Arrow label column is all null); absent = labelled. */
  labelled?: false;
  /** [B] stable sample ids (unique within the dataset), for exactly-once accounting. */
  ids: Int32Array;
}
