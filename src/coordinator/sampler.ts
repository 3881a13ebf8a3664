// Which training batches each step uses. Each epoch has a seeded shuffle of the batch indices; steps take
// `perStep` consecutive indices from a cursor. The sampler remembers which batches of the epoch were done,
// so that no batch is given twice in an epoch and a batch whose worker died can be handed out again.
import { Rng } from "../rng.js";

export class EpochSampler {
  /** Batch indices in this epoch's order. */
  readonly order: number[];
  private cursor = 0;
  private readonly done = new Set<number>();
  private readonly requeued: number[] = [];

  constructor(batchCount: number, readonly epoch: number, seed: number) {
    this.order = Array.from({ length: batchCount }, (_, i) => i);
    new Rng(seed).fork(epoch).shuffle(this.order);
  }

  /** The next up to `n` batch indices: batches handed back first, then fresh ones. */
  take(n: number): number[] {
    const out: number[] = [];
    while (out.length < n && this.requeued.length) out.push(this.requeued.shift()!);
    while (out.length < n && this.cursor < this.order.length) out.push(this.order[this.cursor++]!);
    return out;
  }

  /** Batches finished (their gradients were summed into a step, or deliberately skipped). */
  markDone(batches: readonly number[]): void {
    for (const b of batches) this.done.add(b);
  }

  /** Batches whose worker vanished: to be handed out again (once). */
  giveBack(batches: readonly number[]): void {
    for (const b of batches) if (!this.done.has(b)) this.requeued.push(b);
  }

  exhausted(): boolean {
    return this.cursor >= this.order.length && this.requeued.length === 0;
  }

  /** Position in the epoch (batches handed out so far). */
  position(): number {
    return this.cursor - this.requeued.length;
  }

  /** Skip the first `k` batches of the order (resume within an epoch). */
  seek(k: number): void {
    this.cursor = Math.min(k, this.order.length);
    for (let i = 0; i < this.cursor; i++) this.done.add(this.order[i]!);
  }

  doneCount(): number {
    return this.done.size;
  }
}

/** Split `items` into `parts` contiguous chunks whose sizes differ by at most one (some may be empty). */
export function splitEven<T>(items: readonly T[], parts: number): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (let p = 0; p < parts; p++) {
    const n = Math.floor(items.length / parts) + (p < items.length % parts ? 1 : 0);
    out.push(items.slice(at, at + n));
    at += n;
  }
  return out;
}

/** Deal `items` round-robin over `parts` (item i goes to part i mod parts). */
export function dealRoundRobin<T>(items: readonly T[], parts: number): T[][] {
  const out: T[][] = Array.from({ length: parts }, () => []);
  items.forEach((x, i) => out[i % parts]!.push(x));
  return out;
}
