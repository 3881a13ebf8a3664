// After tokenizing: the kept reviews in canonical order with their sample ids, the seeded validation split
// (drawn from the training reviews only: never from test or unsup), and truncation to --max-len.
import { truncateIds, type KeepSide } from "../config.js";
import { InputError } from "../errors.js";
import { Rng } from "../rng.js";
import type { Meta, TaskRef } from "./read.js";
import type { IngestReport } from "./report.js";
import type { TokenizeResult } from "./tokenize-task.js";

/** A kept review after tokenizing: where its ids are. */
export interface Item {
  meta: Meta;
  /** Token ids local to `thread` until they are mapped to vocabulary ids in place (shared memory). */
  ids: Int32Array;
  thread: number;
  /** Sample id (canonical order). */
  sid: number;
  /** Tokens before --max-len truncation. */
  raw: number;
}

/** The kept reviews by split. */
export interface Splits {
  /** Every kept review, in canonical order (sample id = position). */
  items: Item[];
  train: Item[];
  val: Item[];
  test: Item[];
  /** Unlabelled reviews (--unsup). */
  unsup: Item[];
}

/**
 * The kept reviews in canonical order, sample ids set (their token ids are still thread-local); reviews
 * with invalid UTF-8 (repaired) and without tokens (skipped) reported.
 */
export function collectItems(metas: Meta[], tasks: TaskRef[], results: TokenizeResult[], report: IngestReport): Item[] {
  const items: Item[] = [];
  for (let t = 0; t < tasks.length; t++) {
    const r = results[t]!;
    const n = r.tokOffsets.length - 1;
    for (let i = 0; i < n; i++) {
      const meta = metas[tasks[t]!.start + i]!;
      if (r.invalidUtf8[i]) report.invalidUtf8(meta.file);
      const ids = r.ids.subarray(r.tokOffsets[i]!, r.tokOffsets[i + 1]!);
      if (ids.length === 0) {
        report.empty(meta.file);
        continue;
      }
      items.push({ meta, ids, sid: 0, raw: ids.length, thread: r.thread });
    }
  }
  const sorted = canonicalOrder(items);
  for (let i = 0; i < sorted.length; i++) sorted[i]!.sid = i;
  return sorted;
}

/** Splits the kept reviews: a seeded `valFraction` of train held out as validation. */
export function holdOutValidation(items: Item[], o: { seed: number; valFraction: number; unsup: boolean }, data: string): Splits {
  const trainAll = items.filter((it) => it.meta.split === "train");
  const test = items.filter((it) => it.meta.split === "test");
  const unsup = items.filter((it) => it.meta.split === "unsup");
  if (trainAll.length === 0) throw new InputError("no training reviews (train/pos, train/neg): the vocabulary is built from them", { path: data });
  if (o.unsup && unsup.length === 0) throw new InputError("--unsup: no unlabelled reviews (train/unsup/<id>_0.txt) in the input", { path: data });
  const perm = new Rng(o.seed).shuffle(Int32Array.from(trainAll, (_, i) => i));
  const nVal = Math.round(trainAll.length * o.valFraction);
  const isVal = new Uint8Array(trainAll.length);
  for (let k = 0; k < nVal; k++) isVal[perm[k]!] = 1;
  const train = trainAll.filter((_, i) => !isVal[i]);
  const val = trainAll.filter((_, i) => isVal[i]);
  return { items, train, val, test, unsup };
}

/** Truncates every review longer than `maxLen` tokens (0 = none) to the `keep` end, counting them. */
export function truncateAll(items: Item[], o: { maxLen: number; keep: KeepSide }, report: IngestReport): void {
  if (o.maxLen <= 0) return;
  for (const it of items) {
    if (it.ids.length > o.maxLen) { it.ids = truncateIds(it.ids, o.maxLen, o.keep); report.repaired.truncated++; }
  }
}

/**
 * The canonical order of the kept reviews, on which sample ids and the validation split depend: train, then
 * test, then unsup (last: the labelled reviews' sample ids are the same with or without it), neg before
 * pos, then by the file's serial number (and its name, should two share one). Sorted as numbers —
 * (split, label, serial) and the position packed into one float64 key — unless serials repeat.
 */
function canonicalOrder(items: Item[]): Item[] {
  const rank = (m: Meta) => (m.split === "train" ? 0 : m.split === "test" ? 2 : 4) + m.label;
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
  const sorted = [...items].sort((a, b) => (rank(a.meta) - rank(b.meta)) || (a.meta.serial - b.meta.serial) ||
    (a.meta.id < b.meta.id ? -1 : a.meta.id > b.meta.id ? 1 : 0));
  refuseRepeats(sorted);
  return sorted;
}

/** The same review from two inputs (--data given twice) is an error: it would be trained on twice. */
function refuseRepeats(sorted: Item[]): void {
  for (let k = 1; k < sorted.length; k++) {
    const a = sorted[k - 1]!.meta;
    const b = sorted[k]!.meta;
    if (a.id === b.id && a.file !== b.file) throw new InputError(`review ${a.id} is in two inputs (${a.file} and ${b.file})`);
  }
}
