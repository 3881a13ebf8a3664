// Merging the tokenizer threads' dictionaries on the main thread while the threads work: each result's
// thread-local ids become dataset-wide ("temporary") ids and training tokens are counted as results
// arrive, so that when reading ends only the vocabulary choice is left.
import { buildVocabFromArrays, type Vocab } from "./vocab.js";
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
  /** Temporary id → token, in order of first arrival. */
  readonly tokens: string[] = [];
  private index = new Map<string, number>();
  private local = new Map<number, Int32Array>(); // thread → (local id → temporary id)
  private counts: Int32Array = new Int32Array(1 << 16); // temporary id → training count

  /**
   * Rewrites `r.ids` in place from the thread's local ids to temporary ids, and counts the tokens of
   * every review i for which `counted(i)` holds. Results of one thread must come in the order it made them.
   */
  add(r: TokenizeResult, counted: (i: number) => boolean): void {
    let map = grow(this.local.get(r.thread) ?? new Int32Array(1 << 14), r.firstNewId + r.newTokens.length);
    this.local.set(r.thread, map);
    for (let k = 0; k < r.newTokens.length; k++) {
      const tok = r.newTokens[k]!;
      let t = this.index.get(tok);
      if (t === undefined) {
        t = this.tokens.length;
        this.tokens.push(tok);
        this.index.set(tok, t);
      }
      map[r.firstNewId + k] = t;
    }
    this.counts = grow(this.counts, this.tokens.length);
    const ids = r.ids;
    for (let j = 0; j < ids.length; j++) ids[j] = map[ids[j]!]!;
    const counts = this.counts;
    const n = r.tokOffsets.length - 1;
    for (let i = 0; i < n; i++) {
      if (!counted(i)) continue;
      for (let j = r.tokOffsets[i]!, e = r.tokOffsets[i + 1]!; j < e; j++) counts[ids[j]!]!++;
    }
  }

  /** Takes back the counts of a review that was counted but is not training data after all. */
  uncount(ids: Int32Array): void {
    const counts = this.counts;
    for (let j = 0; j < ids.length; j++) counts[ids[j]!]!--;
  }

  /** The vocabulary, its counts, and temporary id → vocabulary id (UNK_ID = 0 where not kept). */
  vocabulary(opts: { maxSize: number; minFreq: number }): { vocab: Vocab; counts: number[]; toVocab: Int32Array } {
    const r = buildVocabFromArrays(this.tokens, this.counts.subarray(0, this.tokens.length), opts);
    const toVocab = new Int32Array(this.tokens.length);
    for (let i = 0; i < r.kept.length; i++) toVocab[r.kept[i]!] = i + 2;
    return { vocab: r.vocab, counts: r.counts, toVocab };
  }
}
