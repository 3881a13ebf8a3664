// Access to an ingested dataset for training roles: the coordinator counts batches, a worker keeps the
// batches of each split in memory, indexed by `Batch.index` (only indices cross the wire).
import type { Batch, Split } from "./batch.js";
import { InputError } from "../errors.js";
import { openDataset } from "./open.js";

export interface TrainingData {
  dir: string;
  vocabSize: number;
  vocabHash: string;
  /** Reviews per batch as ingested (B of a full batch). */
  batchSize: number;
  count(split: Split): number;
  /** Samples in a split. */
  samples(split: Split): number;
  batch(split: Split, index: number): Batch;
}

export async function openTrainingData(dir: string): Promise<TrainingData> {
  const ds = await openDataset(dir);
  const cache = new Map<Split, Batch[]>();
  const get = (split: Split): Batch[] => {
    let bs = cache.get(split);
    if (!bs) {
      bs = ds.splits.includes(split) ? ds.batches(split) : [];
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
