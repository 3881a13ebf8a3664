// `eval` and `predict`: a saved model (see ./modeldir.ts) applied to raw reviews with the real engine.
import { MovingAverage, fmtSecs, logger, plainProgress, progress } from "../output.js";
import type { Batch } from "../dataset/batch.js";
import { InputError } from "../errors.js";
import { taskOf } from "../config.js";
import { loadVocab } from "../dataset/vocab.js";
import { readReviews, sourceKind } from "../ingest/index.js";
import { createEngine, batchToEngine } from "../engine/index.js";
import type { BackendChoice } from "../tfjs.js";
import { loadModel, type LoadedModel } from "../model/files.js";
import { encodeText, bucketBySize } from "./textbatch.js";

const log = logger("eval");
/** Plain progress lines (no terminal): one after the first batch, then one every this many seconds. */
const LINE_EVERY_S = 10;

/** A function that answers true at most once every `s` seconds (and not on its first call). */
function everySeconds(s: number): () => boolean {
  let last = performance.now();
  return () => {
    const now = performance.now();
    if (now - last < s * 1000) return false;
    last = now;
    return true;
  };
}

/**
 * Plain lines for the evaluation pass: reviews done, accuracy so far, and the time left from a moving average
 * of seconds per padded token (batches are sorted by length, so later ones are longer: tokens, not reviews).
 */
class EvalLines {
  private readonly perToken = new MovingAverage(20);
  private tokensLeft: number;
  private done = 0;
  private readonly due = everySeconds(LINE_EVERY_S);
  private readonly t0 = performance.now();
  constructor(private readonly total: number, batches: readonly Batch[]) {
    this.tokensLeft = batches.reduce((s, b) => s + b.size * b.maxLen, 0);
  }
  batchDone(b: Batch, seconds: number, accuracy: number): void {
    const tokens = b.size * b.maxLen;
    this.perToken.add(seconds / tokens);
    this.tokensLeft -= tokens;
    this.done += b.size;
    if (this.done > b.size && !this.due()) return;
    const rate = this.done / ((performance.now() - this.t0) / 1000);
    const pct = (100 * this.done / this.total).toFixed(1);
    log.info(`${this.done}/${this.total} reviews (${pct}%) · acc ${(accuracy * 100).toFixed(2)}% · ${rate.toFixed(0)} reviews/s · left ${fmtSecs(this.tokensLeft * this.perToken.value)}`);
  }
}

/** A saved sentiment classifier; a pretraining run's model (task lm or sgns) is refused by name. */
function classifierModel(dir: string): LoadedModel {
  const m = loadModel(dir);
  const task = taskOf(m.model);
  if (task !== "classify") throw new InputError(`this is a pretraining model (task ${task}), not a sentiment classifier: use the model of the run that fine-tuned from it (train --pretrain writes it to <out>/model)`, { path: dir });
  return m;
}

export interface EvalReport { accuracy: number; loss: number; n: number; split: string; seconds: number; model: string }

/** Which split of an aclImdb source to read: `test/` when present, else `train/` (or the one asked for). */
async function pickSplit(data: string, wanted?: string): Promise<string> {
  if (wanted) return wanted;
  await sourceKind(data); // throws a clear InputError for a missing or unreadable path
  try {
    for await (const r of readReviews(data, { splits: ["test"] })) { void r; return "test"; }
  } catch (err) {
    if (!(err instanceof InputError && /no reviews of split test/.test(err.message))) throw err;
  }
  return "train";
}

export async function evaluateModel(o: { model: string; data: string; split?: string; batchSize?: number; backend?: BackendChoice; limit?: number }): Promise<EvalReport> {
  const t0 = performance.now();
  const m = classifierModel(o.model);
  const vocab = loadVocab(m.vocabPath);
  const split = await pickSplit(o.data, o.split);
  const seqs: Int32Array[] = [];
  const labels: number[] = [];
  const reading = plainProgress() ? everySeconds(LINE_EVERY_S) : () => false;
  for await (const r of readReviews(o.data, { splits: [split] })) {
    seqs.push(encodeText(r.text, vocab, m.maxLen, m.keep ?? "first"));
    labels.push(r.label);
    if (o.limit && seqs.length >= o.limit) break;
    if (reading()) log.info(`reading ${split} reviews: ${seqs.length} so far (${fmtSecs((performance.now() - t0) / 1000)})`);
  }
  if (!seqs.length) throw new InputError(`no reviews in split "${split}"`, { path: o.data });
  log.info(`${seqs.length} ${split} reviews from ${o.data}`);
  const engine = await createEngine({ model: m.model, backend: o.backend ?? "auto" });
  const { batches } = bucketBySize(seqs, labels, o.batchSize ?? 64);
  const bar = progress("eval", seqs.length, "reviews");
  const lines = plainProgress() ? new EvalLines(seqs.length, batches) : null;
  let lossSum = 0, correct = 0, n = 0;
  try {
    for (const b of batches) {
      const tb = performance.now();
      const r = await engine.evaluate(m.params, batchToEngine(b));
      lossSum += r.lossSum; correct += r.correct; n += r.count;
      bar.tick(b.size, `acc ${(correct / n * 100).toFixed(2)}%`);
      lines?.batchDone(b, (performance.now() - tb) / 1000, correct / n);
    }
  } finally {
    engine.dispose();
  }
  bar.done();
  return { accuracy: correct / n, loss: lossSum / n, n, split, seconds: (performance.now() - t0) / 1000, model: o.model };
}

/** Positive probability of each text. */
export async function predictTexts(o: { model: string | LoadedModel; texts: string[]; backend?: BackendChoice }): Promise<number[]> {
  const m = typeof o.model === "string" ? classifierModel(o.model) : o.model;
  const vocab = loadVocab(m.vocabPath);
  const seqs = o.texts.map((t) => encodeText(t, vocab, m.maxLen, m.keep ?? "first"));
  const engine = await createEngine({ model: m.model, backend: o.backend ?? "auto" });
  const out = new Array<number>(seqs.length);
  try {
    const { batches, order } = bucketBySize(seqs, seqs.map(() => 0), 64);
    for (let k = 0; k < batches.length; k++) {
      const r = await engine.evaluate(m.params, batchToEngine(batches[k]!));
      order[k]!.forEach((i, j) => { out[i] = 1 / (1 + Math.exp(-r.outputs[j]!)); });
    }
  } finally {
    engine.dispose();
  }
  return out;
}
