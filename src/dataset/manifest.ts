// manifest.json: what a dataset directory holds, how it was made, and a checksum of every file.
import { createHash } from "node:crypto";
import type { KeepSide } from "../config.js";
import type { Split } from "./batch.js";

export const MANIFEST_FORMAT = "imdb-train-dataset/1";

/** Upper bounds (exclusive) of the length histogram's bins, in tokens; the last bin is open. */
export const LENGTH_BINS = [50, 100, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000];

export interface SplitInfo {
  reviews: number;
  /** Positive reviews (0 in an unlabelled split). */
  positive: number;
  /** false on a split whose reviews have no label (unsup: the Arrow label column is all null); absent = labelled. */
  labelled?: false;
  batches: number;
  /** Real tokens after --max-len truncation. */
  tokens: number;
  /** B*T summed over batches (tokens + padding). */
  slots: number;
  /** 1 - tokens / slots. */
  padding: number;
  files: string[];
}

export interface Manifest {
  format: string;
  /** sha256 (16 hex) over the sorted file checksums: the same input and options give the same id. */
  datasetId: string;
  /** The input (the first one when there were several: see `inputs`). */
  source: { path: string; kind: string };
  /** Every input, when there were several (--data given more than once). */
  inputs?: { path: string; kind: string }[];
  options: {
    vocabSize: number; minFreq: number; batchSize: number; maxLen: number; keep?: KeepSide; valFraction: number; seed: number; shards: number; poolBatches: number;
    /** Present when the unlabelled reviews were ingested (--unsup). */
    unsup?: true;
    /** With --unsup: the splits whose tokens the vocabulary counts. */
    vocabFrom?: VocabFrom;
  };
  vocab: { file: string; size: number; hash: string };
  splits: Partial<Record<Split, SplitInfo>>;
  /** Padding over all written batches. */
  padding: number;
  /** Review lengths (before truncation) per split: counts[i] for lengths < LENGTH_BINS[i], last = the rest. */
  lengthHistogram: { bins: number[]; counts: Record<string, number[]> };
  /** Reviews left out, by reason. */
  skipped: { empty: number; tooLarge: number; badName: number };
  /** Reviews kept after a repair, by kind. */
  repaired: { invalidUtf8: number; truncated: number };
  /** name → size and sha256 of every file in the directory except manifest.json. */
  files: Record<string, { bytes: number; sha256: string }>;
  /** The files' names in the warnings, at most 100 per kind. */
  warnings: { file: string; reason: string }[];
}

/** The reviews the vocabulary is counted over: the training reviews, or those and the unlabelled ones. */
export type VocabFrom = "train" | "train+unsup";
export const VOCAB_FROM: readonly VocabFrom[] = ["train", "train+unsup"];

export function sha256(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function histogram(lengths: Iterable<number>): number[] {
  const counts = new Array<number>(LENGTH_BINS.length + 1).fill(0);
  for (const len of lengths) {
    let i = 0;
    while (i < LENGTH_BINS.length && len >= LENGTH_BINS[i]!) i++;
    counts[i]!++;
  }
  return counts;
}

export function datasetIdOf(files: Manifest["files"]): string {
  const lines = Object.keys(files).sort().map((k) => `${k} ${files[k]!.sha256}`);
  return sha256(lines.join("\n")).slice(0, 16);
}
