// `eval` and `predict`: a saved model (see ./modeldir.ts) applied to raw reviews with the real engine.
import { logger, progress } from "../output.js";
import { InputError } from "../errors.js";
import { loadVocab } from "../dataset/vocab.js";
import { readReviews, sourceKind } from "../ingest/index.js";
import { createEngine, batchToEngine } from "../engine/index.js";
import type { BackendChoice } from "../tfjs.js";
import { loadModel, type LoadedModel } from "../model/files.js";
import { encodeText, bucketBySize } from "./textbatch.js";

const log = logger("eval");

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
  const m = loadModel(o.model);
  const vocab = loadVocab(m.vocabPath);
  const split = await pickSplit(o.data, o.split);
  const seqs: Int32Array[] = [];
  const labels: number[] = [];
  for await (const r of readReviews(o.data, { splits: [split] })) {
    seqs.push(encodeText(r.text, vocab, m.maxLen, m.keep ?? "first"));
    labels.push(r.label);
    if (o.limit && seqs.length >= o.limit) break;
  }
  if (!seqs.length) throw new InputError(`no reviews in split "${split}"`, { path: o.data });
  log.info(`${seqs.length} ${split} reviews from ${o.data}`);
  const engine = await createEngine({ model: m.model, backend: o.backend ?? "auto" });
  const { batches } = bucketBySize(seqs, labels, o.batchSize ?? 64);
  const bar = progress("eval", seqs.length, "reviews");
  let lossSum = 0, correct = 0, n = 0;
  try {
    for (const b of batches) {
      const r = await engine.evaluate(m.params, batchToEngine(b));
      lossSum += r.lossSum; correct += r.correct; n += r.count;
      bar.tick(b.size, `acc ${(correct / n * 100).toFixed(2)}%`);
    }
  } finally {
    engine.dispose();
  }
  bar.done();
  return { accuracy: correct / n, loss: lossSum / n, n, split, seconds: (performance.now() - t0) / 1000, model: o.model };
}

/** Positive probability of each text. */
export async function predictTexts(o: { model: string | LoadedModel; texts: string[]; backend?: BackendChoice }): Promise<number[]> {
  const m = typeof o.model === "string" ? loadModel(o.model) : o.model;
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
