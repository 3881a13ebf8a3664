// Word vectors out of a model, in GloVe's text format (what loadGlove in ./layout.ts reads): one line per
// vocabulary token, `token v1 … vE`, from the rows of embedding.weight (for task sgns: the input vectors).
import { closeSync, fsyncSync, writeSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { openTemp } from "../atomic.js";
import { PAD_ID, UNK_ID } from "../config.js";
import { InputError, UsageError } from "../errors.js";
import { entry, paramLayout, type LayoutConfig } from "./layout.js";

/** Lines per write: ~1 MB of text at E = 100. */
const LINES_PER_WRITE = 1000;

/** The shortest decimal (6 to 9 significant digits) that reads back as the same float32 as `x`. */
export function float32Text(x: number): string {
  const f = Math.fround(x);
  let s = f.toPrecision(9);
  for (let p = 6; p < 9; p++) {
    const t = f.toPrecision(p);
    if (Math.fround(Number(t)) === f) { s = t; break; }
  }
  // trailing zeros of the mantissa carry nothing ("0.500000" → "0.5", "1.50000e-10" → "1.5e-10")
  const [mantissa, exponent] = s.split("e");
  const m = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
  return exponent === undefined ? m : `${m}e${exponent}`;
}

/**
 * Writes the rows of embedding.weight for every token of `vocab` (id → token) except <unk> and <pad> to
 * `path`, each value the shortest decimal of its float32 (loadGlove reads back the same bits). The file is
 * written beside `path` and renamed into place: never half-written. Returns the lines written and E.
 */
export async function writeGloveText(path: string, vocab: readonly string[], params: Float32Array, cfg: LayoutConfig): Promise<{ written: number; dim: number }> {
  const layout = paramLayout(cfg);
  if (params.length !== layout.size) throw new UsageError(`expected ${layout.size} parameters, got ${params.length}`);
  const e = entry(layout, "embedding.weight");
  const [V, E] = e.shape;
  if (vocab.length !== V) throw new UsageError(`vocabulary has ${vocab.length} tokens but the model has ${V} embedding rows`);
  for (let id = 0; id < V; id++) {
    if (id === UNK_ID || id === PAD_ID) continue;
    if (vocab[id].length === 0 || /\s/.test(vocab[id])) throw new UsageError(`token ${id} (${JSON.stringify(vocab[id])}) cannot be written in GloVe's format (empty or with white space)`);
  }
  const emb = params.subarray(e.offset, e.offset + e.size);
  let written = 0;
  let tmp = "";
  try {
    const opened = openTemp(path), fd = opened.fd;
    tmp = opened.tmp;
    try {
      const write = (text: string) => { const b = Buffer.from(text); for (let at = 0; at < b.length; ) at += writeSync(fd, b, at); };
      let lines: string[] = [];
      for (let id = 0; id < V; id++) {
        if (id === UNK_ID || id === PAD_ID) continue;
        const values = new Array<string>(E);
        for (let j = 0; j < E; j++) values[j] = float32Text(emb[id * E + j]);
        lines.push(`${vocab[id]} ${values.join(" ")}\n`);
        written++;
        if (lines.length === LINES_PER_WRITE) { write(lines.join("")); lines = []; }
      }
      if (lines.length) write(lines.join(""));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    await rename(tmp, path);
  } catch (err) {
    if (tmp) await rm(tmp, { force: true });
    throw new InputError(`cannot write word vectors: ${(err as Error).message}`, { path, cause: err });
  }
  return { written, dim: E };
}
