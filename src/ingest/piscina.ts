// The one module that imports piscina: a small pool of tokenizer threads, and the helper a task module
// uses to hand typed arrays back by transfer (no copy).
import { Piscina, move, transferableSymbol, valueSymbol } from "piscina";

export interface ThreadPool<In, Out> extends AsyncDisposable {
  /** Runs one task; the `transfer` buffers move to the worker (unusable here afterwards). */
  run(task: In, transfer: ArrayBuffer[]): Promise<Out>;
  /** Stops the threads (waits for running tasks); safe to call twice. */
  close(): Promise<void>;
}

/**
 * A pool of exactly `threads` threads running the default export of the module at `module`. Each thread is
 * handed up to `queued` tasks at a time (run one after the other there), so that it starts the next one
 * without waiting for a busy main thread to hear that the last one ended.
 */
export function createPool<In, Out>(module: URL, threads: number, queued = 1): ThreadPool<In, Out> {
  const pool = new Piscina({
    filename: module.href,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 60_000,
    concurrentTasksPerWorker: queued,
  });
  let closed: Promise<void> | null = null;
  const close = () => (closed ??= pool.destroy());
  return {
    run: (task, transfer) => pool.run(task, { transferList: transfer }) as Promise<Out>,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A task's return value whose buffers are transferred: the pool's caller receives the value itself. */
export type Moved = ReturnType<typeof move>;

/** Returns `value` from a task with `buffers` transferred rather than copied. */
export function withTransfer(value: object, buffers: ArrayBuffer[]): Moved {
  return move({ [transferableSymbol]: buffers, [valueSymbol]: value });
}
