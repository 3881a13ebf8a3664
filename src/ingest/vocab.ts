// The vocabulary: `<unk>` (id 0), `<pad>` (id 1), then the most frequent training tokens. Saved as
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
  /** Training-split count of each token ([0] = tokens mapped to <unk>, [1] = 0). */
  counts: number[];
}

export function vocabHash(tokens: readonly string[]): string {
  return createHash("sha256").update(tokens.join("\n")).digest("hex");
}

/** A Vocab over `tokens` (which must start with <unk>, <pad>). */
export function makeVocab(tokens: string[]): Vocab {
  if (tokens[UNK_ID] !== UNK || tokens[PAD_ID] !== PAD) throw new Error("a vocabulary starts with <unk>, <pad>");
  const index = new Map<string, number>();
  for (let i = 0; i < tokens.length; i++) index.set(tokens[i]!, i);
  return {
    tokens,
    hash: vocabHash(tokens),
    size: tokens.length,
    id: (t) => index.get(t) ?? UNK_ID,
  };
}

/**
 * Chooses the vocabulary from training counts: the `maxSize` most frequent tokens seen at least
 * `minFreq` times, ties broken by the token's code units (so the result never depends on the order
 * the reviews were read in). Returns the Vocab and the count of each kept id.
 */
export function buildVocab(counts: Map<string, number>, opts: { maxSize: number; minFreq: number }): { vocab: Vocab; counts: number[] } {
  const entries: [string, number][] = [];
  for (const e of counts) if (e[1] >= opts.minFreq) entries.push(e);
  entries.sort((a, b) => (b[1] - a[1]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept = entries.slice(0, Math.max(0, opts.maxSize));
  const tokens = [UNK, PAD, ...kept.map((e) => e[0])];
  let total = 0;
  for (const c of counts.values()) total += c;
  let keptTotal = 0;
  for (const e of kept) keptTotal += e[1];
  return { vocab: makeVocab(tokens), counts: [total - keptTotal, 0, ...kept.map((e) => e[1])] };
}

export function vocabToJson(vocab: Vocab, counts: number[]): string {
  const file: VocabFile = { format: VOCAB_FORMAT, hash: vocab.hash, size: vocab.size, tokens: vocab.tokens, counts };
  return JSON.stringify(file);
}

/** Reads vocab.json; checks its format and that the hash matches its tokens. */
export function loadVocab(path: string): Vocab {
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
  return vocab;
}

/** Token ids of `tokens` ([N] Int32, unknown → UNK_ID). */
export function encode(tokens: string[], vocab: Vocab): Int32Array {
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) out[i] = vocab.id(tokens[i]!);
  return out;
}
