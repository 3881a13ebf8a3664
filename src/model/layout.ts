// The ONE parameter layout of the model: names, shapes and offsets of every tensor in the flat Float32Array
// that workers, coordinator and checkpoints exchange. Also the PyTorch-like initialisation and GloVe loading.
//
// Legend: V vocabulary rows, E embedding width (or D, the width of dense inputs), H hidden size per
// direction, G gates per cell (LSTM 4: i,f,g,o; GRU 3: r,z,n — PyTorch order), K = dirs*H the width a
// layer outputs. Weights are stored input-major ([in, out]) so that the forward pass needs no transposes,
// except the vocabulary-sized tables, stored one row per token so that a step touches whole rows (* = rowSparse):
//   task classify (the default)
//     embedding.weight * [V, E]          (absent for dense input)
//     rnn.l{l}.w_ih      [In, G*H]       In = E (or D) for l = 0, K for l = 1
//     rnn.l{l}.w_hh      [H, G*H]
//     rnn.l{l}.b_ih      [G*H]
//     rnn.l{l}.b_hh      [G*H]
//     rnn.l{l}_reverse.* (bidirectional only, same shapes)
//     fc.weight          [K, 1]
//     fc.bias            [1]
//   task lm (unidirectional only): embedding.weight and rnn.* exactly as the classifier's, at the same offsets
//     (a fine-tune copies them by name, see copyByName), then
//     lm.weight *        [V, H]          output row of each token (out-major, as PyTorch's Linear)
//     lm.bias *          [V]
//   task sgns (word2vec skip-gram):
//     embedding.weight * [V, E]          input ("centre") vectors: what GloVe's text format gets
//     context.weight *   [V, E]          output ("context") vectors
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { ModelConfig } from "../config.js";
import { PAD_ID, UNK_ID, taskOf } from "../config.js";
import { InputError, UsageError } from "../errors.js";
import { Rng } from "../rng.js";

export interface ParamEntry {
  name: string;
  shape: number[];
  /** First element of this tensor in the flat buffer. */
  offset: number;
  /** Number of elements (product of shape). */
  size: number;
  /**
   * Row-sparse: the first dimension indexes vocabulary rows (width = size / shape[0]) and a step's gradient
   * is exactly zero outside the rows it reports in StepResult.touched[name].
   */
  rowSparse?: true;
}

export interface ParamLayout {
  entries: ParamEntry[];
  /** Total elements of the flat buffer. */
  size: number;
  /** Stable hash of names and shapes (hex), compared on the wire and in checkpoints. */
  hash: string;
}

/** Model config plus, for dense input, the input width D (no embedding table then). */
export type LayoutConfig = ModelConfig & { inputDim?: number };

/** Gates per cell. */
export function gatesOf(cell: ModelConfig["cell"]): number {
  return cell === "gru" ? 3 : 4;
}

export function directionsOf(cfg: ModelConfig): number {
  return cfg.bidirectional ? 2 : 1;
}

/** Name prefix of one recurrent layer and direction, e.g. "rnn.l1_reverse". */
export function rnnPrefix(layer: number, reverse: boolean): string {
  return `rnn.l${layer}${reverse ? "_reverse" : ""}`;
}

function validate(cfg: LayoutConfig): void {
  const pos = (v: number, what: string) => {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`model ${what} must be a positive integer, got ${v}`);
  };
  const task = taskOf(cfg);
  if (task !== "classify" && task !== "lm" && task !== "sgns") throw new UsageError(`model task must be classify, lm or sgns, got ${String(task)}`);
  if (cfg.cell !== "lstm" && cfg.cell !== "gru") throw new UsageError(`model cell must be lstm or gru, got ${String(cfg.cell)}`);
  pos(cfg.hidden, "hidden");
  pos(cfg.layers, "layers");
  if (task !== "classify" && cfg.inputDim !== undefined) throw new UsageError(`task ${task} reads tokens: dense input (inputDim) is for the classifier only`);
  if (task === "lm" && cfg.bidirectional) throw new UsageError("task lm predicts the next token from the ones before it: a bidirectional model would see it (use bidirectional false)");
  if (cfg.inputDim !== undefined) pos(cfg.inputDim, "inputDim");
  else { pos(cfg.vocabSize, "vocabSize"); pos(cfg.embedDim, "embedDim"); }
}

/** Name and shape of every tensor, layout order, and which of them are row-sparse. */
function shapesOf(cfg: LayoutConfig): [string, number[], boolean][] {
  const task = taskOf(cfg);
  const V = cfg.vocabSize, E = cfg.embedDim;
  const shapes: [string, number[], boolean][] = [];
  if (cfg.inputDim === undefined) shapes.push(["embedding.weight", [V, E], true]);
  if (task === "sgns") return [...shapes, ["context.weight", [V, E], true]];
  const G = gatesOf(cfg.cell);
  const H = cfg.hidden;
  const K = directionsOf(cfg) * H;
  for (let l = 0; l < cfg.layers; l++) {
    const inDim = l === 0 ? (cfg.inputDim ?? E) : K;
    for (const reverse of cfg.bidirectional ? [false, true] : [false]) {
      const p = rnnPrefix(l, reverse);
      shapes.push([`${p}.w_ih`, [inDim, G * H], false], [`${p}.w_hh`, [H, G * H], false], [`${p}.b_ih`, [G * H], false], [`${p}.b_hh`, [G * H], false]);
    }
  }
  if (task === "lm") shapes.push(["lm.weight", [V, H], true], ["lm.bias", [V], true]);
  else shapes.push(["fc.weight", [K, 1], false], ["fc.bias", [1], false]);
  return shapes;
}

export function paramLayout(cfg: LayoutConfig): ParamLayout {
  validate(cfg);
  let offset = 0;
  const entries: ParamEntry[] = shapesOf(cfg).map(([name, shape, rowSparse]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const e: ParamEntry = rowSparse ? { name, shape, offset, size, rowSparse: true } : { name, shape, offset, size };
    offset += size;
    return e;
  });
  // The classifier's key is what it was before tasks existed (its hashes stay valid); sgns has no cell.
  const task = taskOf(cfg);
  const head = task === "classify" ? `${cfg.cell};` : task === "lm" ? `task=lm;${cfg.cell};` : "task=sgns;";
  const key = head + entries.map((e) => `${e.name}:${e.shape.join("x")}`).join(";");
  const hash = createHash("sha256").update(key).digest("hex").slice(0, 16);
  return { entries, size: offset, hash };
}

/** The entry called `name`; throws if the layout has none. */
export function entry(layout: ParamLayout, name: string): ParamEntry {
  const e = layout.entries.find((x) => x.name === name);
  if (!e) throw new UsageError(`parameter ${name} is not in the layout`);
  return e;
}

/** A view of one tensor of a flat buffer (no copy). */
export function view(layout: ParamLayout, buf: Float32Array, name: string): Float32Array {
  const e = entry(layout, name);
  return buf.subarray(e.offset, e.offset + e.size);
}

export interface InitOptions {
  /**
   * Added to the forget-gate slice of every LSTM layer's b_ih (0 = PyTorch's initialisation; 1 is the
   * Gers/Jozefowicz choice: the cell starts by remembering, so gradients reach early tokens). GRU: unused.
   */
  forgetBias?: number;
  /**
   * lm: the vocabulary's token counts (vocab.json `counts`, id order). When given, lm.bias starts at the log
   * unigram probabilities (each count floored at 1), so the model starts by predicting the unigram.
   */
  counts?: ArrayLike<number>;
}

/**
 * Seeded, deterministic initialisation, one stream through the tensors in layout order:
 *   classify and lm (PyTorch-like): embedding N(0, 1) with the <pad> row zero (padding_idx); every recurrent
 *     weight and bias U(-1/sqrt(H), 1/sqrt(H)), then `forgetBias` added to the LSTM forget gates' input bias
 *     (gate order i, f, g, o: slice [H, 2H)); fc weight and bias U(-1/sqrt(K), 1/sqrt(K)); lm.weight
 *     U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's Linear(H, V)); lm.bias 0, or log-unigram with `counts`.
 *   sgns (word2vec): input vectors U(-0.5/E, 0.5/E) with the <pad> row zero, context vectors 0.
 */
export function initParams(cfg: LayoutConfig, seed: number, init: InitOptions = {}): Float32Array {
  const layout = paramLayout(cfg);
  const params = new Float32Array(layout.size);
  const rng = new Rng(seed);
  const sgns = taskOf(cfg) === "sgns";
  for (const e of layout.entries) {
    const p = params.subarray(e.offset, e.offset + e.size);
    if (e.name === "embedding.weight") {
      const E = e.shape[1];
      if (sgns) for (let i = 0; i < p.length; i++) p[i] = rng.uniform(-0.5 / E, 0.5 / E);
      else for (let i = 0; i < p.length; i++) p[i] = rng.normal();
      if (PAD_ID < e.shape[0]) p.fill(0, PAD_ID * E, (PAD_ID + 1) * E);
    } else if (e.name === "context.weight") {
      // zero, as word2vec's output vectors
    } else if (e.name === "lm.bias") {
      if (init.counts) logUnigram(init.counts, p);
    } else {
      const fanIn = e.name.startsWith("fc.") ? layout.entries.find((x) => x.name === "fc.weight")!.shape[0] : cfg.hidden;
      const k = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < p.length; i++) p[i] = rng.uniform(-k, k);
      if (init.forgetBias && cfg.cell === "lstm" && e.name.endsWith(".b_ih")) {
        for (let j = cfg.hidden; j < 2 * cfg.hidden; j++) p[j] += init.forgetBias;
      }
    }
  }
  return params;
}

/** out[v] = log(max(counts[v], 1) / Σ max(counts, 1)). */
function logUnigram(counts: ArrayLike<number>, out: Float32Array): void {
  if (counts.length !== out.length) throw new UsageError(`${counts.length} token counts for a vocabulary of ${out.length}`);
  let total = 0;
  for (let v = 0; v < counts.length; v++) total += Math.max(counts[v], 1);
  for (let v = 0; v < counts.length; v++) out[v] = Math.log(Math.max(counts[v], 1) / total);
}

/**
 * Copies every tensor of `from` whose name and shape `to` also has (e.g. a language model's embedding and
 * recurrent layers into a classifier that fine-tunes them); the others of `to` keep their values. Returns
 * the names copied. A name in both with different shapes is an error (the models do not match).
 */
export function copyByName(from: { layout: ParamLayout; params: Float32Array }, to: { layout: ParamLayout; params: Float32Array }): string[] {
  for (const m of [from, to]) if (m.params.length !== m.layout.size) throw new UsageError(`expected ${m.layout.size} parameters, got ${m.params.length}`);
  const copied: string[] = [];
  for (const e of to.layout.entries) {
    const s = from.layout.entries.find((x) => x.name === e.name);
    if (!s) continue;
    if (s.shape.join("x") !== e.shape.join("x")) throw new UsageError(`${e.name} is ${s.shape.join("x")} in the source model but ${e.shape.join("x")} in the target`);
    to.params.set(from.params.subarray(s.offset, s.offset + s.size), e.offset);
    copied.push(e.name);
  }
  return copied;
}

/**
 * Copies GloVe vectors (text format: `word v1 ... vE` per line, e.g. glove.6B.100d.txt) into the rows of
 * `embedding.weight` for the words of `vocab` (id -> token). Rows for <unk> and <pad> are set to zero, as
 * in the seed; words absent from the file keep their initial values. Returns how many rows were found.
 */
export async function loadGlove(
  path: string,
  vocab: readonly string[],
  params: Float32Array,
  cfg?: LayoutConfig,
): Promise<{ found: number; total: number }> {
  const V = vocab.length;
  let E: number;
  let offset = 0;
  if (cfg) {
    const e = entry(paramLayout(cfg), "embedding.weight");
    if (e.shape[0] !== V) throw new UsageError(`vocabulary has ${V} tokens but the model has ${e.shape[0]} embedding rows`);
    E = e.shape[1];
    offset = e.offset;
  } else {
    // Without a config the embedding is assumed to be the first tensor (it always is in paramLayout).
    E = Math.floor(params.length / V);
  }
  const emb = params.subarray(offset, offset + V * E);
  const ids = new Map<string, number>();
  vocab.forEach((w, i) => { if (i !== UNK_ID && i !== PAD_ID) ids.set(w, i); });
  let found = 0;
  let lineNo = 0;
  let stream;
  try {
    stream = createReadStream(path, { encoding: "utf8" });
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    for await (const line of lines) {
      lineNo++;
      if (line.length === 0) continue;
      const sp = line.indexOf(" ");
      const word = sp < 0 ? line : line.slice(0, sp);
      const id = ids.get(word);
      if (id === undefined) continue;
      const parts = line.slice(sp + 1).trim().split(/ +/);
      if (parts.length !== E) throw new InputError(`line ${lineNo}: expected ${E} numbers after "${word}", got ${parts.length}`, { path });
      for (let j = 0; j < E; j++) {
        const x = Number(parts[j]);
        if (!Number.isFinite(x)) throw new InputError(`line ${lineNo}: "${parts[j]}" is not a number`, { path });
        emb[id * E + j] = x;
      }
      ids.delete(word);
      found++;
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`cannot read GloVe vectors: ${(err as Error).message}`, { path, cause: err });
  } finally {
    stream?.destroy();
  }
  for (const id of [UNK_ID, PAD_ID]) if (id < V) emb.fill(0, id * E, (id + 1) * E);
  return { found, total: V };
}
