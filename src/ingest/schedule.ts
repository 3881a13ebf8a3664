// Where tokenizer tasks run. The piscina threads are handed QUEUED_PER_THREAD tasks each at a time (so a
// thread starts its next task without waiting for a busy main thread to hear that the last one ended);
// the other tasks wait here, newest last. Once reading ends the main thread takes waiting tasks too,
// newest first, rather than sit idle while the pool works through the backlog. Each result's new tokens
// and counts go to the merger as it arrives. After the vocabulary is chosen, every thread maps its own
// results' ids to vocabulary ids in place (shared memory), the main thread its share meanwhile.
import { createPool, type ThreadPool } from "./piscina.js";
import { TokenMerger } from "./merge.js";
import type { RemapTask, TokenizeResult, TokenizeTask } from "./tokenize-task.js";

/** Tasks handed to each pool thread at a time; the others wait here, where the main thread can take them. */
const QUEUED_PER_THREAD = 3;
/** The `thread` of the results the main thread makes: its thread id (pool threads have ids from 1). */
export const MAIN_THREAD = 0;
/** Whether an ingest in this process is tokenizing on the main thread (its dictionary is module state). */
let mainTokenizerBusy = false;

type TaskModule = typeof import("./tokenize-task.js");

interface Waiting {
  input: TokenizeTask;
  done: (r: TokenizeResult) => void;
  fail: (e: unknown) => void;
}

export class TokenizeScheduler implements AsyncDisposable {
  /** The ingest's dictionary: every result's new tokens and training counts, merged as they arrive. */
  readonly merger = new TokenMerger();
  /** Tasks submitted, done, and those the main thread tokenized (the pool ran the others). */
  submitted = 0;
  completed = 0;
  tasksHere = 0;
  private onResult: (() => void) | undefined;
  private readonly pool: ThreadPool<TokenizeTask | RemapTask, TokenizeResult | null>;
  // the same code on this thread (loaded now: its warm-up runs while reading)
  private readonly local: Promise<TaskModule> = import("./tokenize-task.js");
  private module: TaskModule | null = null;
  private readonly waiting: Waiting[] = [];
  private inPool = 0;

  constructor(private readonly threads: number) {
    this.pool = createPool(new URL("./tokenize-task.js", import.meta.url), threads, QUEUED_PER_THREAD);
  }

  /** Queues one task (its bytes shared, not moved); settles with its result. */
  submit(input: TokenizeTask): Promise<TokenizeResult> {
    this.submitted++;
    const result = new Promise<TokenizeResult>((done, fail) => this.waiting.push({ input, done, fail }));
    this.dispatch();
    return result;
  }

  /**
   * Reading has ended: the main thread helps with what still waits; settles with every result, in order.
   * `onResult` is called as each task still to do ends (progress).
   */
  async results(pending: Promise<TokenizeResult>[], onResult?: () => void): Promise<TokenizeResult[]> {
    this.onResult = onResult;
    this.module = await this.local;
    await this.helpTokenize(this.module);
    return Promise.all(pending);
  }

  /**
   * Maps every result's ids to vocabulary ids in place (after `merger.vocabulary`): each pool thread's
   * results on the pool (one task per thread), this thread's own here meanwhile. Settles when all are done.
   */
  toVocabIds(results: TokenizeResult[]): Promise<unknown> {
    const byThread = new Map<number, Int32Array<SharedArrayBuffer>[]>();
    for (const r of results) {
      const list = byThread.get(r.thread);
      if (list) list.push(r.ids);
      else byThread.set(r.thread, [r.ids]);
    }
    const pending: Promise<unknown>[] = [];
    for (const [thread, remap] of byThread) if (thread !== MAIN_THREAD) pending.push(this.pool.run({ remap, map: this.merger.toVocab(thread) }, []));
    const mine = byThread.get(MAIN_THREAD);
    if (mine) this.module!.remapIds({ remap: mine, map: this.merger.toVocab(MAIN_THREAD) });
    return Promise.all(pending);
  }

  /** Stops the threads (waits for running tasks); safe to call twice. */
  close(): Promise<void> {
    return this.pool.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private finished(): void {
    this.completed++;
    this.onResult?.();
  }

  private dispatch(): void {
    while (this.inPool < QUEUED_PER_THREAD * this.threads && this.waiting.length > 0) {
      const w = this.waiting.shift()!;
      this.inPool++;
      const { offsets, counted } = w.input; // the bytes are shared, not moved
      this.pool.run(w.input, [offsets.buffer as ArrayBuffer, counted.buffer as ArrayBuffer]).then((res) => {
        const r = res!;
        this.inPool--;
        this.merger.add(r);
        this.finished();
        w.done(r);
        this.dispatch();
      }, (e: unknown) => { this.inPool--; w.fail(e); this.dispatch(); });
    }
  }

  /** The main thread's share: the newest waiting tasks, one at a time, giving the event loop a turn in
   *  between so that the pool is handed the next task as soon as it finishes one. */
  private async helpTokenize({ tokenizeBatch, useDictionary }: TaskModule): Promise<void> {
    // one ingest at a time uses this thread's dictionary (another one running in this process: no help)
    if (mainTokenizerBusy || this.waiting.length === 0) return;
    mainTokenizerBusy = true;
    // the merger's dictionary: what the pool reported is known to it, and the ids need no mapping
    const own = useDictionary(this.merger.shareIndex(MAIN_THREAD));
    try {
      while (this.waiting.length > 0) {
        const w = this.waiting.pop()!;
        try {
          const r = tokenizeBatch(w.input, MAIN_THREAD);
          this.tasksHere++;
          this.merger.add(r);
          this.finished();
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
  }
}
