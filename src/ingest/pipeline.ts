// The ingest dataflow, one stage after the other:
//   read + tokenize   gunzip + tar on the main thread, tokenizing and counting on piscina threads as
//                     reviews arrive (read.ts, schedule.ts), dictionaries merged as results come back
//   collect           kept reviews in canonical order, seeded validation split (collect.ts)
//   vocabulary        from the training reviews (and the unlabelled ones, with --unsup: see
//                     DEFAULT_VOCAB_FROM), never the validation reviews; every thread then maps its ids in place
//   truncate, bucket  --max-len, length buckets per split (bucket.ts)
//   write             Arrow files + vocabulary + manifest in a temporary directory (write.ts, dataset-dir.ts)
//   publish           optionally every batch to NATS JetStream (publish.ts)
//   into place        the temporary directory renamed to --out
import { resolve } from "node:path";
import { UsageError } from "../errors.js";
import { logger, progress } from "../output.js";
import { NO_TELEMETRY } from "../telemetry.js";
import type { Split } from "../dataset/batch.js";
import { datasetIdOf, histogram, LENGTH_BINS, MANIFEST_FORMAT, type Manifest } from "../dataset/manifest.js";
import { vocabToJson, type Vocab } from "../dataset/vocab.js";
import { bucketBatches, paddingOf } from "./bucket.js";
import { collectItems, holdOutValidation, truncateAll, type Item, type Splits } from "./collect.js";
import { checkTarget, writeInPlace, type DatasetFiles } from "./dataset-dir.js";
import { ensureOfficialArchive } from "./download.js";
import type { TokenMerger } from "./merge.js";
import { LOG_PROGRESS_EVERY, resolveOptions, type IngestOptions, type IngestResult } from "./options.js";
import { publishDataset, type PublishItem, type PublishSummary } from "./publish.js";
import { readIntoTasks, type Input, type TaskRef } from "./read.js";
import { IngestReport } from "./report.js";
import { TokenizeScheduler } from "./schedule.js";
import { sourceKind } from "./source.js";
import type { TokenizeResult } from "./tokenize-task.js";
import { writeSplit, type SplitToWrite } from "./write.js";

export { DEFAULT_MAX_REVIEW_BYTES, type IngestOptions, type IngestResult } from "./options.js";

const log = logger("ingest");

type Resolved = ReturnType<typeof resolveOptions>;

/** Wall-clock and CPU seconds (the whole process, all threads) at the end of each phase. */
class PhaseClock {
  private marks = new Map<string, { wall: number; cpu: number }>();
  constructor() { this.mark("start"); }
  mark(phase: string): void {
    const c = process.cpuUsage();
    this.marks.set(phase, { wall: performance.now(), cpu: (c.user + c.system) / 1e3 });
  }
  /** Seconds since the start. */
  seconds(): number { return (performance.now() - this.at("start").wall) / 1000; }
  /** Seconds from the end of phase `a` to the end of phase `b`, to the millisecond. */
  wall(a: string, b: string): number { return Math.round(this.at(b).wall - this.at(a).wall) / 1000; }
  cpu(a: string, b: string): number { return Math.round(this.at(b).cpu - this.at(a).cpu) / 1000; }
  private at(phase: string) { return this.marks.get(phase)!; }
}

export async function runIngest(opts: IngestOptions): Promise<IngestResult> {
  const clock = new PhaseClock();
  const o = resolveOptions(opts);
  const inputs = await inputsOf(opts.data);
  const named = inputs.map((i) => i.path).join(", "); // for messages about the whole input
  const target = await checkTarget(opts.out, opts.force);
  const report = new IngestReport();
  const scheduler = new TokenizeScheduler(o.threads);
  try {
    // ---- read + tokenize (overlapped), merging each result as it arrives ----
    const read = await readIntoTasks(inputs, scheduler, report, {
      taskReviews: opts.taskReviews, maxReviewBytes: o.maxReviewBytes, maxUnpackedBytes: o.maxUnpackedBytes,
      unsup: o.unsup, countUnsup: o.vocabFrom === "train+unsup",
    });
    clock.mark("read");
    read.bar.done(`${read.metas.length} reviews`);
    const results = await tokenizeRest(scheduler, read.tasks);
    clock.mark("tokenize");

    const splits = holdOutValidation(collectItems(read.metas, read.tasks, results, report), o, named);
    const { vocab, counts } = chooseVocabulary(scheduler.merger, splits.val, o);
    const remapped = scheduler.toVocabIds(results);
    remapped.catch(() => undefined); // awaited before writing; a failure before then must not go unhandled
    truncateAll(splits.items, o, report);
    clock.mark("vocab");
    const bucketed = bucketSplits(splits, o);
    clock.mark("bucket");

    const written = await writeInPlace(target, async (files) => {
      await files.put("vocab.json", vocabToJson(vocab, counts));
      await remapped;
      const w = await writeSplits(files, bucketed, vocab, o, Boolean(opts.publish));
      const manifest = describe(files, w.infos, splits, vocab, report, o, inputs);
      const manifestJson = JSON.stringify(manifest, null, 2) + "\n";
      await files.putManifest(manifestJson);
      clock.mark("write");
      const published = opts.publish ? await publish(opts, manifest, manifestJson, w.messages) : undefined;
      clock.mark("publish");
      return { manifest, published };
    });
    const result = resultOf(written.manifest, splits, target.out, report, clock, scheduler, written.published);
    (opts.telemetry ?? NO_TELEMETRY).ingest({ reviews: splits.items.length, seconds: result.seconds, padding: result.padding, skipped: report.skippedTotal });
    return result;
  } finally {
    await scheduler.close();
  }
}

/** The inputs: the paths given, or the official archive (downloaded once into a cache). */
async function inputsOf(data: IngestOptions["data"]): Promise<Input[]> {
  const paths = typeof data === "string" ? [data] : data !== undefined && data.length > 0 ? [...data] : [await ensureOfficialArchive()];
  const twice = paths.find((p, i) => paths.findIndex((q) => resolve(q) === resolve(p)) !== i);
  if (twice !== undefined) throw new UsageError(`--data ${twice} is given twice`);
  return Promise.all(paths.map(async (path) => ({ path, kind: await sourceKind(path) })));
}

/** Waits for the tokenizer tasks still running or waiting when reading ends (the main thread helps). */
async function tokenizeRest(scheduler: TokenizeScheduler, tasks: TaskRef[]): Promise<TokenizeResult[]> {
  const bar = progress("tokenize", tasks.length - scheduler.completed, "tasks", { logEvery: LOG_PROGRESS_EVERY, component: "ingest" });
  const results = await scheduler.results(tasks.map((t) => t.result), () => bar.tick());
  bar.done();
  return results;
}

/** The vocabulary from the training reviews (validation reviews' counts taken back out first). */
function chooseVocabulary(merger: TokenMerger, val: Item[], o: Resolved): { vocab: Vocab; counts: number[] } {
  for (const it of val) merger.uncount(it.thread, it.ids);
  return merger.vocabulary({ maxSize: o.vocabSize, minFreq: o.minFreq });
}

/** Each split's reviews in length buckets (its own seed per split). */
function bucketSplits(splits: Splits, o: Resolved): SplitToWrite[] {
  const named: [Split, Item[], number][] = [["train", splits.train, 1], ["val", splits.val, 2]];
  if (splits.test.length > 0) named.push(["test", splits.test, 3]);
  if (splits.unsup.length > 0) named.push(["unsup", splits.unsup, 4]);
  return named.map(([name, list, seedOffset]) => {
    const lengths = Int32Array.from(list, (it) => it.ids.length);
    const batches = bucketBatches(lengths, { batchSize: o.batchSize, poolBatches: o.poolBatches, seed: o.seed + seedOffset });
    return {
      name, labelled: name !== "unsup", batches, pad: paddingOf(batches, lengths),
      list: list.map((it) => ({ ids: it.ids, sid: it.sid, label: it.meta.label, rating: it.meta.rating, name: it.meta.id })),
    };
  });
}

/** Every split's Arrow files (train and unsup in --shards files), and the NATS messages when publishing. */
async function writeSplits(files: DatasetFiles, bucketed: SplitToWrite[], vocab: Vocab, o: Resolved, publish: boolean) {
  const infos: Manifest["splits"] = {};
  const messages: PublishItem[] = [];
  const bar = progress("write", bucketed.reduce((n, b) => n + b.batches.length, 0), "batches", { logEvery: LOG_PROGRESS_EVERY, component: "ingest" });
  for (const b of bucketed) {
    const shards = b.name === "train" || b.name === "unsup" ? o.shards : 1;
    const onBatch = () => bar.tick(1, b.name);
    const w = await writeSplit(b, { vocabHash: vocab.hash, shards, publish, onBatch }, (name, write) => files.putPieces(name, write));
    infos[b.name] = w.info;
    messages.push(...w.messages);
  }
  bar.done("");
  return { infos, messages };
}

/** manifest.json: what the directory holds and how it was made. */
function describe(
  files: DatasetFiles, infos: Manifest["splits"], splits: Splits, vocab: Vocab, report: IngestReport, o: Resolved, inputs: Input[],
): Manifest {
  const sources = inputs.map((i) => ({ path: resolve(i.path), kind: i.kind }));
  const written = Object.values(infos);
  const tokens = written.reduce((s, i) => s + i.tokens, 0);
  const slots = written.reduce((s, i) => s + i.slots, 0);
  const hist: Record<string, number[]> = {};
  hist.train = histogram(splits.train.map((it) => it.raw));
  hist.val = histogram(splits.val.map((it) => it.raw));
  if (splits.test.length > 0) hist.test = histogram(splits.test.map((it) => it.raw));
  if (splits.unsup.length > 0) hist.unsup = histogram(splits.unsup.map((it) => it.raw));
  return {
    format: MANIFEST_FORMAT, datasetId: datasetIdOf(files.files),
    source: sources[0]!, ...(sources.length > 1 ? { inputs: sources } : {}),
    options: {
      vocabSize: o.vocabSize, minFreq: o.minFreq, batchSize: o.batchSize, maxLen: o.maxLen, keep: o.keep, valFraction: o.valFraction, seed: o.seed, shards: o.shards, poolBatches: o.poolBatches,
      ...(o.unsup ? { unsup: true as const, vocabFrom: o.vocabFrom } : {}),
    },
    vocab: { file: "vocab.json", size: vocab.size, hash: vocab.hash },
    splits: infos, padding: slots === 0 ? 0 : 1 - tokens / slots,
    lengthHistogram: { bins: LENGTH_BINS, counts: hist },
    skipped: report.skipped, repaired: report.repaired, files: { ...files.files }, warnings: report.warnings,
  };
}

/** --publish: every batch to JetStream, the manifest to the KV bucket. */
async function publish(opts: IngestOptions, manifest: Manifest, manifestJson: string, messages: PublishItem[]): Promise<PublishSummary> {
  const url = opts.publish!;
  const bar = progress("publish", messages.length, "batches", { logEvery: LOG_PROGRESS_EVERY, component: "ingest" });
  const published = await publishDataset(url, manifest.datasetId, manifest.vocab.hash, manifestJson, messages, (n) => bar.set(n), opts.natsAuth);
  bar.done();
  log.info(`published ${published.messages} batches to ${published.stream} (${published.duplicates} already there) on ${url}`);
  return published;
}

function resultOf(
  m: Manifest, splits: Splits, out: string, report: IngestReport, clock: PhaseClock, scheduler: TokenizeScheduler, published?: PublishSummary,
): IngestResult {
  clock.mark("end");
  const w = (a: string, b: string) => clock.wall(a, b);
  const c = (a: string, b: string) => clock.cpu(a, b);
  return {
    train: splits.train.length, val: splits.val.length, test: splits.test.length, unsup: splits.unsup.length,
    vocab: m.vocab.size, padding: m.padding, out, datasetId: m.datasetId, vocabHash: m.vocab.hash,
    batches: { train: m.splits.train?.batches ?? 0, val: m.splits.val?.batches ?? 0, test: m.splits.test?.batches ?? 0, unsup: m.splits.unsup?.batches ?? 0 },
    tokens: Object.values(m.splits).reduce((s, i) => s + i.tokens, 0),
    skipped: report.skipped, repaired: report.repaired, seconds: clock.seconds(),
    phases: { read: w("start", "read"), tokenize: w("start", "tokenize"), vocab: w("tokenize", "vocab"), bucket: w("vocab", "bucket"), write: w("bucket", "write"), publish: w("write", "publish") },
    cpuPhases: { readTokenize: c("start", "tokenize"), vocab: c("tokenize", "vocab"), bucket: c("vocab", "bucket"), write: c("bucket", "write"), publish: c("write", "publish") },
    tokenizeTasks: { pool: scheduler.submitted - scheduler.tasksHere, main: scheduler.tasksHere },
    ...(published ? { published } : {}),
  };
}
