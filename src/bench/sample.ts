// Real IMDB reviews for the engine's benchmark and learning test, straight from an aclImdb archive or
// directory through the ingest module's reader and tokenizer (no Arrow dataset needed).
// Legend: B batch, T padded length.
import { PAD_ID, UNK_ID } from "../config.js";
import { InputError } from "../errors.js";
import { readReviews, tokenize } from "../ingest/index.js";
import { Rng } from "../rng.js";
import type { EngineBatch } from "../engine/types.js";

export interface EncodedReview {
  ids: Int32Array;
  label: 0 | 1;
}

export interface ReviewSample {
  /** id -> token; 0 = <unk>, 1 = <pad>. */
  vocab: string[];
  reviews: EncodedReview[];
}

/**
 * Reads the train split at `path`, keeps `count` reviews chosen with `seed` (all when count is 0), and
 * encodes them with a vocabulary of the `vocabSize` most frequent tokens of the kept reviews (plus <unk>,
 * <pad>). `maxLen` > 0 truncates each review to its first maxLen tokens.
 */
export async function loadReviewSample(path: string, opts: { count?: number; seed?: number; vocabSize: number; maxLen?: number; minFreq?: number }): Promise<ReviewSample> {
  const texts: { tokens: string[]; label: 0 | 1 }[] = [];
  for await (const r of readReviews(path, { splits: ["train"] })) texts.push({ tokens: tokenize(r.text), label: r.label });
  if (texts.length === 0) throw new InputError("no train reviews found", { path });
  let kept = texts;
  if (opts.count && opts.count < texts.length) {
    const order = new Rng(opts.seed ?? 1).shuffle(Int32Array.from(texts, (_, i) => i));
    kept = Array.from(order.subarray(0, opts.count), (i) => texts[i]);
  }
  if (opts.maxLen && opts.maxLen > 0) kept = kept.map((t) => ({ ...t, tokens: t.tokens.slice(0, opts.maxLen) }));
  const counts = new Map<string, number>();
  for (const t of kept) for (const w of t.tokens) counts.set(w, (counts.get(w) ?? 0) + 1);
  const minFreq = opts.minFreq ?? 1;
  const words = [...counts].filter(([, c]) => c >= minFreq).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, opts.vocabSize).map(([w]) => w);
  const vocab = ["<unk>", "<pad>", ...words];
  const index = new Map(vocab.map((w, i) => [w, i]));
  const reviews = kept
    .filter((t) => t.tokens.length > 0)
    .map((t) => ({ ids: Int32Array.from(t.tokens, (w) => index.get(w) ?? UNK_ID), label: t.label }));
  return { vocab, reviews };
}

/** Padded batch of the given reviews (T = longest of them). */
export function makeBatch(reviews: readonly EncodedReview[]): EngineBatch {
  const B = reviews.length;
  const T = Math.max(...reviews.map((r) => r.ids.length));
  const tokens = new Int32Array(B * T).fill(PAD_ID);
  reviews.forEach((r, b) => tokens.set(r.ids, b * T));
  return {
    size: B, maxLen: T,
    lengths: Int32Array.from(reviews, (r) => r.ids.length),
    tokens,
    targets: Float32Array.from(reviews, (r) => r.label),
  };
}

/** The q-quantile (0..1) of the review lengths. */
export function lengthQuantile(reviews: readonly EncodedReview[], q: number): number {
  const ls = Int32Array.from(reviews, (r) => r.ids.length).sort();
  return ls[Math.min(ls.length - 1, Math.floor(q * ls.length))];
}

/** A length-bucketed batch as ingest makes them: the B reviews whose lengths are nearest to `target`. */
export function batchNearLength(reviews: readonly EncodedReview[], target: number, B: number): EngineBatch {
  const sorted = [...reviews].sort((a, b) => Math.abs(a.ids.length - target) - Math.abs(b.ids.length - target));
  return makeBatch(sorted.slice(0, B));
}

/** Length-bucketed batches of B reviews over the whole sample (sorted by length, chunked), in seeded order. */
export function bucketedBatches(reviews: readonly EncodedReview[], B: number, rng: Rng): EngineBatch[] {
  const order = Int32Array.from(reviews, (_, i) => i).sort((a, b) => reviews[a].ids.length - reviews[b].ids.length);
  const out: EngineBatch[] = [];
  for (let i = 0; i + B <= order.length; i += B) out.push(makeBatch(Array.from(order.subarray(i, i + B), (j) => reviews[j])));
  return rng.shuffle(out);
}
