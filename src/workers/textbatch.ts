// Raw review text → padded batches the engine evaluates (eval and predict), with the same tokenizer,
// vocabulary and truncation as training. Legend: B reviews per batch, T = longest length in the batch.
import { PAD_ID, truncateIds, UNK_ID, type KeepSide } from "../config.js";
import type { Batch } from "../dataset/batch.js";
import { tokenize } from "../ingest/index.js";
import { encode, type Vocab } from "../dataset/vocab.js";

/** Token ids of one review, truncated to `maxLen` (0 = no limit) keeping the `keep` end; an empty review becomes [<unk>]. */
export function encodeText(text: string, vocab: Vocab, maxLen: number, keep: KeepSide): Int32Array {
  const ids = truncateIds(encode(tokenize(text), vocab), maxLen, keep);
  return ids.length ? ids : Int32Array.of(UNK_ID);
}

/** Pad sequences into one batch (row-major [B*T], PAD_ID after each review's length). */
export function padBatch(seqs: readonly Int32Array[], labels: readonly number[], index = 0): Batch {
  const B = seqs.length;
  const T = seqs.reduce((m, s) => Math.max(m, s.length), 1);
  const tokens = new Int32Array(B * T).fill(PAD_ID); // [B*T]
  const lengths = new Int32Array(B); //                   [B]
  seqs.forEach((s, b) => { tokens.set(s, b * T); lengths[b] = s.length; });
  return {
    split: "test", index, size: B, maxLen: T, tokens, lengths,
    labels: Uint8Array.from(labels), ids: Int32Array.from({ length: B }, (_, i) => index * B + i),
  };
}

/** Group sequences by length into batches of at most `batchSize` (less padding); `order[k]` = input position. */
export function bucketBySize(seqs: readonly Int32Array[], labels: readonly number[], batchSize: number): { batches: Batch[]; order: number[][] } {
  const idx = seqs.map((_, i) => i).sort((a, b) => seqs[a]!.length - seqs[b]!.length);
  const batches: Batch[] = [];
  const order: number[][] = [];
  for (let at = 0; at < idx.length; at += batchSize) {
    const part = idx.slice(at, at + batchSize);
    batches.push(padBatch(part.map((i) => seqs[i]!), part.map((i) => labels[i] ?? 0), batches.length));
    order.push(part);
  }
  return { batches, order };
}
