// The first stage of an ingest: read the inputs one after the other (gunzip + tar on the main thread) and
// pack their reviews into tokenizer tasks of up to TASK_REVIEWS reviews or TASK_BYTES bytes, in shared
// memory, handed to the scheduler as they fill, so that tokenizing overlaps reading.
import { stat } from "node:fs/promises";
import { progress, type Progress } from "../output.js";
import { LOG_PROGRESS_EVERY } from "./options.js";
import { readRawGroups, SOURCE_SPLITS, type RawReview } from "./source.js";
import type { IngestReport } from "./report.js";
import type { TokenizeScheduler } from "./schedule.js";
import type { TokenizeResult } from "./tokenize-task.js";

/** Reviews per tokenizer task, and a byte cap: large tasks keep the threads busy, few messages. */
const TASK_REVIEWS = 512;
const TASK_BYTES = 1 << 20;

/** A review's description without its bytes (which went to a tokenizer task). */
export type Meta = Omit<RawReview, "bytes">;

/** One input: a directory or an archive in the aclImdb layout. */
export interface Input {
  path: string;
  kind: "dir" | "tar.gz" | "tar";
}

/** One task: its reviews are metas[start ..], its result says how many. */
export interface TaskRef {
  start: number;
  result: Promise<TokenizeResult>;
}

export interface ReadResult {
  /** Every review read, in reading order. */
  metas: Meta[];
  tasks: TaskRef[];
}

/** Packs reviews into tasks for `scheduler`. */
class TaskPacker {
  readonly metas: Meta[] = [];
  readonly tasks: TaskRef[] = [];
  private cur: RawReview[] = [];
  private curBytes = 0;

  constructor(private readonly scheduler: TokenizeScheduler, private readonly taskReviews: number, private readonly countUnsup: boolean) {}

  /** Takes a group of reviews. The per-review loop is a small function of its own: V8 compiles it alone. */
  take(group: RawReview[]): void {
    for (const r of group) {
      this.metas.push({ split: r.split, label: r.label, rating: r.rating, id: r.id, file: r.file, serial: r.serial });
      this.cur.push(r);
      this.curBytes += r.bytes.length;
      if (this.cur.length >= this.taskReviews || this.curBytes >= TASK_BYTES) this.flush();
    }
  }

  /** Hands the reviews taken so far to the scheduler as one task. */
  flush(): void {
    const cur = this.cur;
    if (cur.length === 0) return;
    const offsets = new Int32Array(cur.length + 1); // [N+1]
    for (let i = 0; i < cur.length; i++) offsets[i + 1] = offsets[i]! + cur[i]!.bytes.length;
    const bytes = new Uint8Array(new SharedArrayBuffer(offsets[cur.length]!));
    for (let i = 0; i < cur.length; i++) bytes.set(cur[i]!.bytes, offsets[i]!);
    const start = this.metas.length - cur.length;
    // training reviews are counted now (validation reviews are taken back out once they are chosen), and
    // unlabelled ones when the vocabulary is to count them (see DEFAULT_VOCAB_FROM)
    const countUnsup = this.countUnsup;
    const counted = Uint8Array.from(cur, (r) => (r.split === "train" || (countUnsup && r.split === "unsup") ? 1 : 0));
    this.tasks.push({ start, result: this.scheduler.submit({ bytes, offsets, counted }) });
    this.cur = [];
    this.curBytes = 0;
  }
}

/**
 * Reads every review of the inputs into tokenizer tasks (bad file names and over-long reviews reported and
 * skipped; the unlabelled ones too with `unsup`), with a progress bar in MB of input (reviews when an
 * input is a directory), left for the caller to finish. Resolves once reading ends; the tasks may still be
 * running.
 */
export async function readIntoTasks(
  inputs: Input[], scheduler: TokenizeScheduler, report: IngestReport,
  opts: { taskReviews?: number; maxReviewBytes: number; maxUnpackedBytes: number; unsup: boolean; countUnsup: boolean },
): Promise<ReadResult & { bar: Progress }> {
  const inMB = inputs.every((i) => i.kind !== "dir");
  const mb = (bytes: number) => Math.round(bytes / 1e5) / 10; // to 0.1 MB
  const total = inMB ? mb((await Promise.all(inputs.map(async (i) => (await stat(i.path)).size))).reduce((a, b) => a + b, 0)) : 0;
  const bar = progress("read", total, inMB ? "MB" : "reviews", { logEvery: LOG_PROGRESS_EVERY, component: "ingest" });
  let readBytes = 0;
  const packer = new TaskPacker(scheduler, opts.taskReviews ?? TASK_REVIEWS, opts.unsup && opts.countUnsup);
  for (const input of inputs) {
    const groups = readRawGroups(input.path, {
      splits: opts.unsup ? [...SOURCE_SPLITS, "unsup"] : SOURCE_SPLITS,
      onSkip: (file, reason) => report.badName(file, reason),
      onRead: (n) => { readBytes += n; },
      maxReviewBytes: opts.maxReviewBytes,
      onTooLarge: (file, bytes) => report.tooLarge(file, bytes, opts.maxReviewBytes),
      maxUnpackedBytes: opts.maxUnpackedBytes,
    });
    for await (const group of groups) {
      packer.take(group);
      if (inMB) bar.set(mb(readBytes), `${packer.metas.length} reviews`); else bar.set(packer.metas.length);
    }
  }
  packer.flush();
  return { metas: packer.metas, tasks: packer.tasks, bar };
}
