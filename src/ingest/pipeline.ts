// The ingest dataflow: read (gunzip + tar on the main thread) → tokenize and count (piscina threads,
// overlapped with reading; dictionaries merged as results arrive) → seeded validation split → vocabulary
// (training reviews only) → ids mapped to the vocabulary in place (each thread its own, at once) and
// length buckets → Arrow files + manifest in a temporary directory → optional NATS publish → rename
// into place.
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, rmSync, writeSync } from "node:fs";
import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { truncateIds } from "../config.js";
import type { Split } from "../dataset/batch.js";
import { InputError, UsageError } from "../errors.js";
import { logger, progress } from "../output.js";
import { Rng } from "../rng.js";
import { NO_TELEMETRY } from "../telemetry.js";
import { bucketBatches, paddingOf } from "./bucket.js";
import { ensureOfficialArchive } from "./download.js";
import { resolveOptions, type IngestOptions, type IngestResult } from "./options.js";
import { datasetIdOf, histogram, LENGTH_BINS, MANIFEST_FORMAT, sha256, type Manifest } from "../dataset/manifest.js";
import { createPool } from "./piscina.js";
import { publishDataset, type PublishItem, type PublishSummary } from "./publish.js";
import { readRawGroups, sourceKind, type RawReview } from "./source.js";
import type { RemapTask, TokenizeResult, TokenizeTask } from "./tokenize-task.js";
import { TokenMerger } from "./merge.js";
import { vocabToJson } from "../dataset/vocab.js";
import { writeSplit, type WriteItem } from "./write.js";

export { DEFAULT_MAX_REVIEW_BYTES, type IngestOptions, type IngestResult } from "./options.js";

/** Reviews per tokenizer task, and a byte cap: large tasks keep the threads busy, few messages. */
const TASK_REVIEWS = 512;
const TASK_BYTES = 1 << 20;
/** Tasks handed to each pool thread at a time; the others wait here, where the main thread can take them. */
const QUEUED_PER_THREAD = 3;
/** The `thread` of the results the main thread makes: its thread id (pool threads have ids from 1). */
const MAIN_THREAD = 0;
/** Whether an ingest in this process is tokenizing on the main thread (its dictionary is module state). */
let mainTokenizerBusy = false;
/** Warnings printed per kind before they are only counted. */
const WARN_LIMIT = 10;

const log = logger("ingest");

type Meta = Omit<RawReview, "bytes">;

/** A kept review after tokenizing: where its ids are. */
interface Item {
  meta: Meta;
  /** Token ids local to `thread` until they are mapped to vocabulary ids in place (shared memory). */
  ids: Int32Array;
  thread: number;
  /** Sample id (canonical order). */
  sid: number;
  /** Tokens before --max-len truncation. */
  raw: number;
}

class Warnings {
  readonly list: { file: string; reason: string }[] = [];
  private perKind = new Map<string, number>();
  add(kind: string, file: string, reason: string): void {
    const n = (this.perKind.get(kind) ?? 0) + 1;
    this.perKind.set(kind, n);
    if (n <= WARN_LIMIT) log.warn(`${file}: ${reason}`);
    else if (n === WARN_LIMIT + 1) log.warn(`more ${kind} warnings: counted in manifest.json`);
    if (this.list.length < 100) this.list.push({ file, reason });
  }
}

export async function runIngest(opts: IngestOptions): Promise<IngestResult> {
  const t0 = performance.now();
  const cpu = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6; }; // s, all threads
  const c0 = cpu();
  const o = resolveOptions(opts);
  const telemetry = opts.telemetry ?? NO_TELEMETRY;
  const data = opts.data ?? (await ensureOfficialArchive());
  const kind = await sourceKind(data);
  const out = resolve(opts.out);
  const outExists = await stat(out).then(() => true, () => false);
  if (outExists && !opts.force) throw new UsageError(`${out} already exists; pass --force to replace it`);
  await mkdir(dirname(out), { recursive: true });

  const warnings = new Warnings();
  const skipped = { empty: 0, tooLarge: 0, badName: 0 };
  const repaired = { invalidUtf8: 0, truncated: 0 };

  // ---- read + tokenize (overlapped), merging each result as it arrives -------------------------
  const pool = createPool<TokenizeTask | RemapTask, TokenizeResult | null>(new URL("./tokenize-task.js", import.meta.url), o.threads, QUEUED_PER_THREAD);
  // the same code on this thread: once reading ends, the main thread tokenizes tasks still waiting rather
  // than sit idle while the pool works through the backlog (loaded now: its warm-up runs while reading)
  const local = import("./tokenize-task.js");
  const metas: Meta[] = [];
  const merger = new TokenMerger();
  const tasks: { start: number; result: Promise<TokenizeResult> }[] = [];
  // tasks not yet given to the pool, oldest first; the pool gets QUEUED_PER_THREAD per thread at a time
  const waiting: { input: TokenizeTask; done: (r: TokenizeResult) => void; fail: (e: unknown) => void }[] = [];
  let inPool = 0;
  let tasksHere = 0;
  const dispatch = () => {
    while (inPool < QUEUED_PER_THREAD * o.threads && waiting.length > 0) {
      const w = waiting.shift()!;
      inPool++;
      const { offsets, counted } = w.input; // the bytes are shared, not moved
      pool.run(w.input, [offsets.buffer as ArrayBuffer, counted.buffer as ArrayBuffer]).then((res) => {
        const r = res!;
        inPool--;
        merger.add(r);
        w.done(r);
        dispatch();
      }, (e: unknown) => { inPool--; w.fail(e); dispatch(); });
    }
  };
  /** The main thread's share: the newest waiting tasks, one at a time, giving the event loop a turn in
   *  between so that the pool is handed the next task as soon as it finishes one. */
  const helpTokenize = async () => {
    const { tokenizeBatch, useDictionary } = await local;
    // one ingest at a time uses this thread's dictionary (another one running in this process: no help)
    if (mainTokenizerBusy || waiting.length === 0) return;
    mainTokenizerBusy = true;
    // the merger's dictionary: what the pool reported is known to it, and the ids need no mapping
    const own = useDictionary(merger.shareIndex(MAIN_THREAD));
    try {
      while (waiting.length > 0) {
        const w = waiting.pop()!;
        try {
          const r = tokenizeBatch(w.input, MAIN_THREAD);
          tasksHere++;
          merger.add(r);
          w.done(r);
        } catch (e) {
          w.fail(e);
        }
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      useDictionary(own); // this thread's own (empty) dictionary again: the ingest's tokens go with the merger
      mainTokenizerBusy = false;
    }
  };

  let tRead = 0;
  let tTok = 0;
  let cTok = 0;
  try {
    const total = kind === "dir" ? 0 : Math.round((await stat(data)).size / 1e6);
    const bar = progress("ingest", total, kind === "dir" ? "reviews" : "MB");
    let readBytes = 0;
    const taskReviews = opts.taskReviews ?? TASK_REVIEWS;
    let cur: RawReview[] = [];
    let curBytes = 0;
    const flush = () => {
      if (cur.length === 0) return;
      const offsets = new Int32Array(cur.length + 1); // [N+1]
      for (let i = 0; i < cur.length; i++) offsets[i + 1] = offsets[i]! + cur[i]!.bytes.length;
      const bytes = new Uint8Array(new SharedArrayBuffer(offsets[cur.length]!));
      for (let i = 0; i < cur.length; i++) bytes.set(cur[i]!.bytes, offsets[i]!);
      const start = metas.length - cur.length;
      // training reviews are counted now; validation reviews are taken back out once they are chosen
      const counted = Uint8Array.from(cur, (r) => (r.split === "train" ? 1 : 0));
      const result = new Promise<TokenizeResult>((done, fail) => waiting.push({ input: { bytes, offsets, counted }, done, fail }));
      tasks.push({ start, result });
      dispatch();
      cur = [];
      curBytes = 0;
    };
    const groups = readRawGroups(data, {
      onSkip: (file, reason) => { skipped.badName++; warnings.add("file name", file, reason); },
      onRead: (n) => { readBytes += n; },
    });
    // the per-review loops are small functions of their own: V8 then compiles them, not this whole function
    const take = (group: RawReview[]) => {
      for (const r of group) {
        if (r.bytes.length > o.maxReviewBytes) {
          skipped.tooLarge++;
          warnings.add("size", r.file, `review of ${r.bytes.length} bytes is over the ${o.maxReviewBytes}-byte limit: skipped`);
          continue;
        }
        metas.push({ split: r.split, label: r.label, rating: r.rating, id: r.id, file: r.file, serial: r.serial });
        cur.push(r);
        curBytes += r.bytes.length;
        if (cur.length >= taskReviews || curBytes >= TASK_BYTES) flush();
      }
    };
    for await (const group of groups) {
      take(group);
      if (kind === "dir") bar.set(metas.length); else bar.set(Math.round(readBytes / 1e6), `${metas.length} reviews`);
    }
    flush();
    tRead = performance.now();
    await helpTokenize();
    const results = await Promise.all(tasks.map((t) => t.result));
    tTok = performance.now();
    cTok = cpu();
    bar.done(`${metas.length} reviews`);
    return await finish(results);
  } finally {
    await pool.close();
  }

  /**
   * Maps every result's ids to vocabulary ids in place (after `merger.vocabulary`): each pool thread's
   * results on the pool (one task per thread), this thread's own here meanwhile. Settles when all are done.
   */
  function toVocabIds(results: TokenizeResult[], remapIds: (task: RemapTask) => void): Promise<unknown> {
    const byThread = new Map<number, Int32Array<SharedArrayBuffer>[]>();
    for (const r of results) {
      const list = byThread.get(r.thread);
      if (list) list.push(r.ids);
      else byThread.set(r.thread, [r.ids]);
    }
    const pending: Promise<unknown>[] = [];
    for (const [thread, remap] of byThread) if (thread !== MAIN_THREAD) pending.push(pool.run({ remap, map: merger.toVocab(thread) }, []));
    const mine = byThread.get(MAIN_THREAD);
    if (mine) remapIds({ remap: mine, map: merger.toVocab(MAIN_THREAD) });
    return Promise.all(pending);
  }

  /** The kept reviews in canonical order, sample ids set (their token ids are still thread-local). */
  function collect(results: TokenizeResult[]): Item[] {
    const items: Item[] = [];
    for (let t = 0; t < tasks.length; t++) {
      const r = results[t]!;
      const n = r.tokOffsets.length - 1;
      for (let i = 0; i < n; i++) {
        const meta = metas[tasks[t]!.start + i]!;
        if (r.invalidUtf8[i]) {
          repaired.invalidUtf8++;
          warnings.add("utf-8", meta.file, "invalid UTF-8: bad bytes replaced by U+FFFD");
        }
        const ids = r.ids.subarray(r.tokOffsets[i]!, r.tokOffsets[i + 1]!);
        if (ids.length === 0) {
          skipped.empty++;
          warnings.add("empty", meta.file, "empty review (no tokens): skipped");
          continue;
        }
        items.push({ meta, ids, sid: 0, raw: ids.length, thread: r.thread });
      }
    }
    const sorted = canonicalOrder(items);
    for (let i = 0; i < sorted.length; i++) sorted[i]!.sid = i;
    return sorted;
  }

  async function finish(results: TokenizeResult[]): Promise<IngestResult> {
    // ---- kept reviews in canonical order (ids are temporary ids now) ----------------------------
    const items = collect(results);
    const trainAll = items.filter((it) => it.meta.split === "train");
    const test = items.filter((it) => it.meta.split === "test");
    if (trainAll.length === 0) throw new InputError("no training reviews (train/pos, train/neg): the vocabulary is built from them", { path: data });

    // ---- seeded validation split -----------------------------------------------------------
    const perm = new Rng(o.seed).shuffle(Int32Array.from(trainAll, (_, i) => i));
    const nVal = Math.round(trainAll.length * o.valFraction);
    const isVal = new Uint8Array(trainAll.length);
    for (let k = 0; k < nVal; k++) isVal[perm[k]!] = 1;
    const train = trainAll.filter((_, i) => !isVal[i]);
    const val = trainAll.filter((_, i) => isVal[i]);

    // ---- vocabulary from the training reviews ------------------------------------------------
    for (const it of val) merger.uncount(it.thread, it.ids);
    const { vocab, counts: vocabCounts } = merger.vocabulary({ maxSize: o.vocabSize, minFreq: o.minFreq });
    const remapped = toVocabIds(results, (await local).remapIds);
    remapped.catch(() => undefined); // awaited before writing; a failure before then must not go unhandled
    if (o.maxLen > 0) {
      for (const it of items) {
        if (it.ids.length > o.maxLen) { it.ids = truncateIds(it.ids, o.maxLen, o.keep); repaired.truncated++; }
      }
    }
    const tVocab = performance.now();
    const cVocab = cpu();

    // ---- buckets -------------------------------------------------------------------------
    const splits: [Split, Item[]][] = [["train", train], ["val", val]];
    if (test.length > 0) splits.push(["test", test]);
    const bucketed = splits.map(([name, list], k) => {
      const lengths = Int32Array.from(list, (it) => it.ids.length);
      const batches = bucketBatches(lengths, { batchSize: o.batchSize, poolBatches: o.poolBatches, seed: o.seed + 1 + k });
      return { name, list, lengths, batches, pad: paddingOf(batches, lengths) };
    });
    const tBucket = performance.now();
    const cBucket = cpu();

    // ---- write into a temporary directory ------------------------------------------------------
    const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    const removeOnSignal = cleanupOnSignal(tmp); // armed before the directory exists
    try {
      await mkdir(tmp);
      const files: Manifest["files"] = {};
      const put = async (name: string, bytes: Uint8Array | string) => {
        await writeFile(join(tmp, name), bytes);
        files[name] = { bytes: typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length, sha256: sha256(bytes) };
      };
      // a file written a piece at a time (synchronously: the pieces are reused buffers), hashed as it goes
      const putPieces = async (name: string, write: (sink: (piece: Uint8Array) => void) => void) => {
        const fd = openSync(join(tmp, name), "w");
        const hash = createHash("sha256");
        let bytes = 0;
        try {
          write((piece) => {
            hash.update(piece);
            for (let done = 0; done < piece.length;) done += writeSync(fd, piece, done);
            bytes += piece.length;
          });
        } finally {
          closeSync(fd);
        }
        files[name] = { bytes, sha256: hash.digest("hex") };
      };
      await put("vocab.json", vocabToJson(vocab, vocabCounts));
      await remapped;
      const infos: Manifest["splits"] = {};
      const publishItems: PublishItem[] = [];
      for (const b of bucketed) {
        const list: WriteItem[] = b.list.map((it) => ({
          ids: it.ids, sid: it.sid, label: it.meta.label, rating: it.meta.rating, name: it.meta.id,
        }));
        const w = await writeSplit(
          { name: b.name, list, batches: b.batches, pad: b.pad },
          { vocabHash: vocab.hash, shards: b.name === "train" ? o.shards : 1, publish: Boolean(opts.publish) },
          putPieces,
        );
        infos[b.name] = w.info;
        publishItems.push(...w.messages);
      }
      const tokens = bucketed.reduce((s, b) => s + b.pad.tokens, 0);
      const slots = bucketed.reduce((s, b) => s + b.pad.slots, 0);
      const padding = slots === 0 ? 0 : 1 - tokens / slots;
      const datasetId = datasetIdOf(files);
      const hist: Record<string, number[]> = {};
      hist.train = histogram(train.map((it) => it.raw));
      hist.val = histogram(val.map((it) => it.raw));
      if (test.length > 0) hist.test = histogram(test.map((it) => it.raw));
      const manifest: Manifest = {
        format: MANIFEST_FORMAT, datasetId,
        source: { path: resolve(data), kind },
        options: { vocabSize: o.vocabSize, minFreq: o.minFreq, batchSize: o.batchSize, maxLen: o.maxLen, keep: o.keep, valFraction: o.valFraction, seed: o.seed, shards: o.shards, poolBatches: o.poolBatches },
        vocab: { file: "vocab.json", size: vocab.size, hash: vocab.hash },
        splits: infos, padding,
        lengthHistogram: { bins: LENGTH_BINS, counts: hist },
        skipped, repaired, files, warnings: warnings.list,
      };
      const manifestJson = JSON.stringify(manifest, null, 2) + "\n";
      await writeFile(join(tmp, "manifest.json"), manifestJson);
      const tWrite = performance.now();
      const cWrite = cpu();

      let published: PublishSummary | undefined;
      if (opts.publish) {
        const pbar = progress("publish", publishItems.length, "batches");
        published = await publishDataset(opts.publish, datasetId, vocab.hash, manifestJson, publishItems, (n) => pbar.set(n), opts.natsAuth);
        pbar.done();
        log.info(`published ${published.messages} batches to ${published.stream} (${published.duplicates} already there) on ${published.url}`);
      }
      const tPub = performance.now();
      const cPub = cpu();

      // ---- into place -------------------------------------------------------------------
      if (outExists) {
        const old = `${tmp}.old`;
        await rename(out, old);
        await rename(tmp, out);
        await rm(old, { recursive: true, force: true });
      } else {
        await rename(tmp, out);
      }
      const seconds = (performance.now() - t0) / 1000;
      const s = (a: number, b: number) => Math.round((b - a)) / 1000;
      const result: IngestResult = {
        train: train.length, val: val.length, test: test.length, vocab: vocab.size, padding, out,
        datasetId, vocabHash: vocab.hash,
        batches: { train: infos.train?.batches ?? 0, val: infos.val?.batches ?? 0, test: infos.test?.batches ?? 0 },
        tokens, skipped, repaired, seconds,
        phases: { read: s(t0, tRead), tokenize: s(t0, tTok), vocab: s(tTok, tVocab), bucket: s(tVocab, tBucket), write: s(tBucket, tWrite), publish: s(tWrite, tPub) },
        cpuPhases: {
          readTokenize: s(c0 * 1000, cTok * 1000), vocab: s(cTok * 1000, cVocab * 1000), bucket: s(cVocab * 1000, cBucket * 1000),
          write: s(cBucket * 1000, cWrite * 1000), publish: s(cWrite * 1000, cPub * 1000),
        },
        tokenizeTasks: { pool: tasks.length - tasksHere, main: tasksHere },
        ...(published ? { published } : {}),
      };
      telemetry.ingest({ reviews: items.length, seconds, padding, skipped: skipped.empty + skipped.tooLarge + skipped.badName });
      return result;
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    } finally {
      removeOnSignal();
    }
  }
}

/**
 * The canonical order of the kept reviews, on which sample ids and the validation split depend: train before
 * test, neg before pos, then by the file's serial number (and its name, should two share one). Sorted as
 * numbers — (split, label, serial) and the position packed into one float64 key — unless serials repeat.
 */
function canonicalOrder(items: Item[]): Item[] {
  const rank = (m: Meta) => (m.split === "train" ? 0 : 2) + m.label;
  const keys = new Float64Array(items.length);
  const SERIALS = 2 ** 24;
  let simple = items.length < 2 ** 24;
  for (let i = 0; i < items.length && simple; i++) {
    const m = items[i]!.meta;
    if (!(m.serial >= 0 && m.serial < SERIALS && Number.isInteger(m.serial))) simple = false;
    keys[i] = (rank(m) * SERIALS + m.serial) * 2 ** 24 + i; // < 2^50: exact
  }
  if (simple) {
    keys.sort();
    const out = new Array<Item>(items.length);
    let repeated = false;
    for (let k = 0; k < keys.length; k++) {
      out[k] = items[keys[k]! % 2 ** 24]!;
      if (k > 0 && Math.floor(keys[k]! / 2 ** 24) === Math.floor(keys[k - 1]! / 2 ** 24)) repeated = true;
    }
    if (!repeated) return out;
  }
  return [...items].sort((a, b) => (rank(a.meta) - rank(b.meta)) || (a.meta.serial - b.meta.serial) ||
    (a.meta.id < b.meta.id ? -1 : a.meta.id > b.meta.id ? 1 : 0));
}

/**
 * While `dir` exists, SIGINT/SIGTERM remove it first (no half-written dataset stays behind), then the
 * signal takes its usual course: re-raised when nobody else listens. Returns the function that disarms it.
 */
function cleanupOnSignal(dir: string): () => void {
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];
  const handler = (sig: NodeJS.Signals) => {
    disarm();
    // A write still running on libuv's thread pool can add a file while the directory is being removed
    // (ENOTEMPTY): retry until it is gone, and never let the handler throw.
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 10 });
        break;
      } catch { /* try again */ }
    }
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const disarm = () => { for (const s of signals) process.removeListener(s, handler); };
  for (const s of signals) process.on(s, handler);
  return disarm;
}
