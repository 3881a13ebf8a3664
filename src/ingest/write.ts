// Turning a bucketed split into Arrow files (one per shard) and, for --publish, one message per batch.
import type { Split } from "../dataset/batch.js";
import { encodeBatchMessage, type BatchRows } from "../dataset/arrow.js";
import { writeArrowFile } from "../dataset/arrow-writer.js";
import type { SplitInfo } from "../dataset/manifest.js";
import type { PublishItem } from "./publish.js";

/** A kept review as the writer needs it. */
export interface WriteItem {
  /** Vocabulary ids. */
  ids: Int32Array;
  /** Sample id (unique in the dataset). */
  sid: number;
  /** 0 for an unlabelled review (written as null: see SplitToWrite.labelled). */
  label: 0 | 1;
  rating: number;
  /** "train/pos/123_8", "train/unsup/123_0". */
  name: string;
}

export interface SplitToWrite {
  name: Split;
  /** false: the reviews have no label (unsup); the label column is written all null. */
  labelled: boolean;
  list: WriteItem[];
  /** Batches as indices into `list`. */
  batches: Int32Array[];
  pad: { tokens: number; slots: number; padding: number };
}

function rowsOf(list: WriteItem[], batch: Int32Array): BatchRows {
  const B = batch.length;
  const rows: BatchRows = {
    tokens: new Array<Int32Array>(B), labels: new Uint8Array(B), ids: new Int32Array(B), ratings: new Int8Array(B),
    names: new Array<string>(B),
  };
  for (let b = 0; b < B; b++) {
    const it = list[batch[b]!]!;
    rows.tokens[b] = it.ids;
    rows.labels[b] = it.label;
    rows.ids[b] = it.sid;
    rows.ratings[b] = it.rating;
    rows.names[b] = it.name;
  }
  return rows;
}

function pad5(n: number): string {
  return String(n).padStart(5, "0");
}

/**
 * Writes `split` through `put(fileName, write)`: `<split>.arrow`, or `<split>-0000k-of-0000N.arrow` for
 * k < shards (batch j goes to shard j % N); `write(sink)` hands the file's bytes to `sink` a piece at a time
 * (each piece consumed before `sink` returns); `onBatch` after each batch written. Returns the manifest
 * entry, and the NATS messages when `publish`.
 */
export async function writeSplit(
  split: SplitToWrite,
  opts: { vocabHash: string; shards: number; publish: boolean; onBatch?: () => void },
  put: (name: string, write: (sink: (piece: Uint8Array) => void) => void) => Promise<void>,
): Promise<{ info: SplitInfo; messages: PublishItem[] }> {
  const { list } = split;
  const rows = split.batches.map((batch) => rowsOf(list, batch));
  const n = opts.shards;
  const files: string[] = [];
  for (let k = 0; k < n; k++) {
    const file = n === 1 ? `${split.name}.arrow` : `${split.name}-${pad5(k)}-of-${pad5(n)}.arrow`;
    const mine = rows.filter((_, j) => j % n === k);
    const meta = { vocabHash: opts.vocabHash, split: split.name, shard: { index: k, count: n }, labelled: split.labelled };
    await put(file, (sink) => writeArrowFile(meta, mine, sink, opts.onBatch));
    files.push(file);
  }
  const messages: PublishItem[] = opts.publish ? rows.map((r, j) => ({
    split: split.name, index: j,
    payload: encodeBatchMessage({ vocabHash: opts.vocabHash, split: split.name, shard: { index: 0, count: 1 }, labelled: split.labelled, index: j }, r),
  })) : [];
  const info: SplitInfo = {
    reviews: list.length, positive: list.reduce((s, it) => s + it.label, 0), ...(split.labelled ? {} : { labelled: false as const }),
    batches: split.batches.length, tokens: split.pad.tokens, slots: split.pad.slots, padding: split.pad.padding, files,
  };
  return { info, messages };
}
