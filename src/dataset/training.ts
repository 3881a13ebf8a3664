// Access to an ingested dataset for training roles: the coordinator counts batches, a worker keeps the
// batches of each split in memory, indexed by `Batch.index` (only indices cross the wire).
// Pretraining reads the split "pretrain": the train batches, then the unsup batches (when the dataset has
// them), numbered on from the last train batch; validation is never part of it.
import type { Batch, Split } from "./batch.js";
import { InputError } from "../errors.js";
import { openDataset } from "./open.js";

/** A dataset split, or "pretrain": train followed by unsup, as one list of batches. */
export type TrainingSplit = Split | "pretrain";

/** The split a model's training batches come from: train for the classifier, "pretrain" for tasks lm and sgns
 *  (the coordinator and its workers must agree on it). */
export function trainingSplitFor(task: "classify" | "lm" | "sgns"): TrainingSplit {
  return task === "classify" ? "train" : "pretrain";
}

export interface TrainingData {
  dir: string;
  vocabSize: number;
  vocabHash: string;
  /** Reviews per batch as ingested (B of a full batch). */
  batchSize: number;
  count(split: TrainingSplit): number;
  /** Samples in a split. */
  samples(split: TrainingSplit): number;
  batch(split: TrainingSplit, index: number): Batch;
}

export async function openTrainingData(dir: string): Promise<TrainingData> {
  const ds = await openDataset(dir);
  const cache = new Map<TrainingSplit, Batch[]>();
  const get = (split: TrainingSplit): Batch[] => {
    let bs = cache.get(split);
    if (!bs && split === "pretrain") {
      bs = [...get("train"), ...get("unsup")];
      cache.set(split, bs);
    }
    if (!bs) {
      const own = split as Split;
      bs = ds.splits.includes(own) ? ds.batches(own) : [];
      bs = [...bs].sort((a, b) => a.index - b.index);
      bs.forEach((b, i) => {
        if (b.index !== i) throw new InputError(`${split} batch at position ${i} has index ${b.index}: batch indices must be 0..n-1`, { path: dir });
      });
      cache.set(split, bs);
    }
    return bs;
  };
  const train = get("train");
  return {
    dir,
    vocabSize: ds.vocab.size,
    vocabHash: ds.vocab.hash,
    batchSize: train.reduce((m, b) => Math.max(m, b.size), 0),
    count: (split) => get(split).length,
    samples: (split) => get(split).reduce((n, b) => n + b.size, 0),
    batch: (split, index) => {
      const b = get(split)[index];
      if (!b) throw new InputError(`${split} batch ${index} does not exist (the split has ${get(split).length})`, { path: dir });
      return b;
    },
  };
}
