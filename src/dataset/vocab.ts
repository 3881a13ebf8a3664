// The vocabulary: `<unk>` (id 0), `<pad>` (id 1), then the most frequent tokens of the counted reviews
// (the training split; with --unsup also the unlabelled reviews, unless --vocab-from train). Saved as
// JSON with a content hash that every Arrow file and model records, so a mismatch is detected.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { PAD_ID, UNK_ID } from "../config.js";
import { InputError } from "../errors.js";

export const UNK = "<unk>";
export const PAD = "<pad>";
export const VOCAB_FORMAT = "imdb-train-vocab/1";

export interface Vocab {
  /** Token of each id; tokens[0] = "<unk>", tokens[1] = "<pad>". */
  tokens: string[];
  /** sha256 (hex) of the tokens joined by "\n": identifies the id mapping. */
  hash: string;
  /** V = tokens.length (rows of the embedding table). */
  size: number;
  /** Id of a token; unknown tokens map to UNK_ID (0). */
  id(token: string): number;
}

/** The JSON file written next to the Arrow files. */
export interface VocabFile {
  format: string;
  hash: string;
  size: number;
  tokens: string[];
  /** Count of each token over the reviews the vocabulary was built from: the training split, and the
   *  unlabelled one when the manifest's options say vocabFrom "train+unsup" ([0] = tokens mapped to <unk>, [1] = 0). */
  counts: number[];
}

export function vocabHash(tokens: readonly string[]): string {
  return createHash("sha256").update(tokens.join("\n")).digest("hex");
}

/** A Vocab over `tokens` (which must start with <unk>, <pad>). */
export function makeVocab(tokens: string[]): Vocab {
  if (tokens[UNK_ID] !== UNK || tokens[PAD_ID] !== PAD) throw new Error("a vocabulary starts with <unk>, <pad>");
  let index: Map<string, number> | null = null; // built on first use: the ingest never looks a token up
  return {
    tokens,
    hash: vocabHash(tokens),
    size: tokens.length,
    id: (t) => {
      if (index === null) {
        index = new Map();
        for (let i = 0; i < tokens.length; i++) index.set(tokens[i]!, i);
      }
      return index.get(t) ?? UNK_ID;
    },
  };
}

/**
 * Chooses the vocabulary from training counts: the `maxSize` most frequent tokens seen at least
 * `minFreq` times, ties broken by the token's code units (so the result never depends on the order
 * the reviews were read in). Returns the Vocab and the count of each kept id.
 */
export function buildVocab(counts: Map<string, number>, opts: { maxSize: number; minFreq: number }): { vocab: Vocab; counts: number[] } {
  const tokens = [...counts.keys()];
  const r = buildVocabFromArrays(tokens, Int32Array.from(tokens, (t) => counts.get(t)!), opts);
  return { vocab: r.vocab, counts: r.counts };
}

/**
 * The indices `candidates` ordered by count (most frequent first), equal counts by token (UTF-16 code
 * units, as `<` compares strings). Grouped by count first: most groups hold one token, and the big groups
 * of the long tail are sorted as plain strings by the engine, with no comparison function to call.
 */
function byCountThenToken(tokens: readonly string[], counts: Int32Array, candidates: number[]): number[] {
  const groups = new Map<number, number[]>();
  for (const i of candidates) {
    const c = counts[i]!;
    const g = groups.get(c);
    if (g === undefined) groups.set(c, [i]);
    else g.push(i);
  }
  const order = Int32Array.from(groups.keys()).sort().reverse();
  const out: number[] = [];
  for (const c of order) {
    const g = groups.get(c)!;
    if (g.length === 1) { out.push(g[0]!); continue; }
    const byToken = new Map<string, number>();
    for (const i of g) byToken.set(tokens[i]!, i); // tokens are distinct
    for (const t of [...byToken.keys()].sort()) out.push(byToken.get(t)!);
  }
  return out;
}

/**
 * buildVocab over parallel arrays (token i was seen counts[i] times). Also returns `kept`: the index
 * into `tokens` of each vocabulary id from 2 on, so callers can map their own ids without strings.
 */
export function buildVocabFromArrays(
  tokens: readonly string[], counts: Int32Array, opts: { maxSize: number; minFreq: number },
): { vocab: Vocab; counts: number[]; kept: Int32Array } {
  const maxSize = Math.max(0, opts.maxSize);
  let total = 0;
  let eligible = 0;
  let maxCount = 0;
  for (let i = 0; i < tokens.length; i++) {
    const c = counts[i]!;
    total += c;
    if (c >= opts.minFreq) {
      eligible++;
      if (c > maxCount) maxCount = c;
    }
  }
  // the count at which the cut falls, so only the kept tokens are sorted
  let threshold = opts.minFreq;
  if (eligible > maxSize) {
    const histogram = new Int32Array(Math.min(maxCount, 1 << 20) + 2);
    for (let i = 0; i < tokens.length; i++) if (counts[i]! >= opts.minFreq) histogram[Math.min(counts[i]!, histogram.length - 1)]!++;
    let above = 0;
    threshold = histogram.length - 1;
    while (threshold > opts.minFreq && above + histogram[threshold]! < maxSize) above += histogram[threshold--]!;
  }
  const candidates: number[] = [];
  for (let i = 0; i < tokens.length; i++) if (counts[i]! >= threshold && counts[i]! >= opts.minFreq) candidates.push(i);
  const kept = Int32Array.from(byCountThenToken(tokens, counts, candidates).slice(0, maxSize));
  let keptTotal = 0;
  for (const i of kept) keptTotal += counts[i]!;
  const vocab = makeVocab([UNK, PAD, ...Array.from(kept, (i) => tokens[i]!)]);
  return { vocab, counts: [total - keptTotal, 0, ...Array.from(kept, (i) => counts[i]!)], kept };
}

export function vocabToJson(vocab: Vocab, counts: number[]): string {
  const file: VocabFile = { format: VOCAB_FORMAT, hash: vocab.hash, size: vocab.size, tokens: vocab.tokens, counts };
  return JSON.stringify(file);
}

/** Reads vocab.json; checks its format and that the hash matches its tokens. */
export function loadVocab(path: string): Vocab {
  return readVocabFile(path).vocab;
}

/**
 * Reads vocab.json with its token counts (id order: what the pretraining engines sample from, see
 * EngineOptions.counts); checks them as loadVocab checks the tokens: one finite count >= 0 per token.
 */
export function loadVocabCounts(path: string): { vocab: Vocab; counts: Float64Array } {
  const { file, vocab } = readVocabFile(path);
  const c = file.counts;
  if (!Array.isArray(c) || c.length !== vocab.size) throw new InputError(`vocabulary has ${vocab.size} tokens but ${Array.isArray(c) ? c.length : "no"} counts`, { path });
  const counts = new Float64Array(c.length);
  for (let i = 0; i < c.length; i++) {
    const x = c[i];
    if (typeof x !== "number" || !(x >= 0 && Number.isFinite(x))) throw new InputError(`count ${i} (${JSON.stringify(x)}) is not a number >= 0`, { path });
    counts[i] = x;
  }
  return { vocab, counts };
}

function readVocabFile(path: string): { file: VocabFile; vocab: Vocab } {
  let file: VocabFile;
  try {
    file = JSON.parse(readFileSync(path, "utf8")) as VocabFile;
  } catch (err) {
    throw new InputError(`cannot read the vocabulary: ${(err as Error).message}`, { path, cause: err });
  }
  if (file.format !== VOCAB_FORMAT || !Array.isArray(file.tokens)) {
    throw new InputError(`not a vocabulary file (expected format "${VOCAB_FORMAT}")`, { path });
  }
  if (file.tokens[UNK_ID] !== UNK || file.tokens[PAD_ID] !== PAD) throw new InputError("vocabulary must start with <unk>, <pad>", { path });
  const vocab = makeVocab(file.tokens);
  if (vocab.hash !== file.hash) throw new InputError(`vocabulary hash mismatch (file says ${file.hash}, tokens give ${vocab.hash})`, { path });
  return { file, vocab };
}

/** Token ids of `tokens` ([N] Int32, unknown → UNK_ID). */
export function encode(tokens: string[], vocab: Vocab): Int32Array {
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) out[i] = vocab.id(tokens[i]!);
  return out;
}
