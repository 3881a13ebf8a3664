// Merging the tokenizer threads' dictionaries on the main thread while the threads work: each thread's
// new tokens get dataset-wide ("temporary") ids and its sparse training counts are added as results
// arrive (while the main thread would otherwise wait for gunzip), so that when reading ends only the
// vocabulary choice is left. Token ids stay thread-local; `toVocab(thread)` maps them to vocabulary ids.
// The main thread, when it tokenizes too, uses the merger's own dictionary (`shareIndex`): the tokens the
// pool has reported are known to it already, and its ids are temporary ids.
import { Interner } from "./intern.js";
import { buildVocabFromArrays, type Vocab } from "../dataset/vocab.js";
import type { TokenizeResult } from "./tokenize-task.js";

function grow(a: Int32Array, need: number): Int32Array {
  if (need <= a.length) return a;
  let n = a.length;
  while (n < need) n *= 2;
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

export class TokenMerger {
  private index = new Interner(); //                        token ↔ temporary id, in order of first arrival
  private local = new Map<number, Int32Array>(); //      thread → (local id → temporary id)
  private counts: Int32Array = new Int32Array(1 << 17); // temporary id → training count
  private final: Int32Array | null = null; //             temporary id → vocabulary id
  /** The thread that tokenizes with the index itself (`shareIndex`), or -1. */
  private native = -1;

  /**
   * The merger's dictionary, for `thread` to tokenize with directly (on this thread, between `add`s): its
   * results then carry temporary ids, and their new tokens are in the index already.
   */
  shareIndex(thread: number): Interner {
    this.native = thread;
    return this.index;
  }

  /** Adds one result's new tokens and counts. Results of one thread must come in the order it made them;
   *  `thread` is a thread id (0 or more). */
  add(r: TokenizeResult): void {
    if (r.thread === this.native) {
      const counts = (this.counts = grow(this.counts, this.index.size));
      for (let k = 0; k < r.countIds.length; k++) counts[r.countIds[k]!]! += r.countValues[k]!;
      return;
    }
    const map = grow(this.local.get(r.thread) ?? new Int32Array(1 << 14), r.firstNewId + r.newTokens.length);
    this.local.set(r.thread, map);
    for (let k = 0; k < r.newTokens.length; k++) {
      const tok = r.newTokens[k]!;
      map[r.firstNewId + k] = this.index.intern(tok, 0, tok.length);
    }
    const counts = (this.counts = grow(this.counts, this.index.size));
    for (let k = 0; k < r.countIds.length; k++) counts[map[r.countIds[k]!]!]! += r.countValues[k]!;
  }

  /** A thread's local id → temporary id; null for the thread whose ids are temporary ids already. */
  private mapOf(thread: number): Int32Array | null {
    return thread === this.native ? null : this.local.get(thread)!;
  }

  /** Takes back the counts of a review (thread-local ids) that turned out not to be training data. */
  uncount(thread: number, ids: Int32Array): void {
    const map = this.mapOf(thread);
    const counts = this.counts;
    if (map === null) for (let j = 0; j < ids.length; j++) counts[ids[j]!]!--;
    else for (let j = 0; j < ids.length; j++) counts[map[ids[j]!]!]!--;
  }

  /** Chooses the vocabulary from the counts; afterwards `toVocab` maps ids. */
  vocabulary(opts: { maxSize: number; minFreq: number }): { vocab: Vocab; counts: number[] } {
    const tokens = this.index.tokens;
    const r = buildVocabFromArrays(tokens, this.counts.subarray(0, tokens.length), opts);
    const final = new Int32Array(tokens.length); // UNK_ID (0) where not kept
    for (let i = 0; i < r.kept.length; i++) final[r.kept[i]!] = i + 2;
    this.final = final;
    return { vocab: r.vocab, counts: r.counts };
  }

  /** Thread-local id → vocabulary id, for one thread's ids (after `vocabulary`). */
  toVocab(thread: number): Int32Array {
    const map = this.mapOf(thread);
    const final = this.final!;
    if (map === null) return final;
    const out = new Int32Array(map.length);
    for (let i = 0; i < map.length; i++) out[i] = final[map[i]!]!;
    return out;
  }
}
