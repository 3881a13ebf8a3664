// Which training batches each step uses. Each epoch has a seeded shuffle of the batch indices; steps take
// `perStep` consecutive indices from a cursor. The sampler remembers which batches of the epoch were done,
// so that no batch is given twice in an epoch and a batch whose worker died can be handed out again.
//
// A step of several batches (one per worker) lasts as long as its slowest batch, and the ingested batches are
// bucketed by length: with batches drawn at random, the workers with shorter ones wait for the longest
// (`bench cluster` in docs/performance.md). Given each batch's cost (its padded tokens) and the step's batch
// count, the shuffled order is regrouped: every window of STEP_WINDOW steps' worth of batches is sorted by
// cost, cut into steps of similar cost, and those steps shuffled again. The same seed, epoch, group and costs
// give the same order (resume), and a group of 1 is the plain shuffle.
import { Rng } from "../rng.js";

/** Steps whose batches are sorted together when grouping by cost. */
export const STEP_WINDOW = 64;

/** The regrouping: batches per step and each batch's cost (padded tokens). */
export interface StepGrouping { group: number; cost: (index: number) => number }

export class EpochSampler {
  /** Batch indices in this epoch's order. */
  readonly order: number[];
  private cursor = 0;
  private readonly done = new Set<number>();
  private readonly requeued: number[] = [];

  constructor(batchCount: number, readonly epoch: number, seed: number, grouping?: StepGrouping) {
    this.order = Array.from({ length: batchCount }, (_, i) => i);
    const rng = new Rng(seed).fork(epoch);
    rng.shuffle(this.order);
    if (grouping && grouping.group > 1) groupByCost(this.order, grouping, rng.fork(grouping.group));
  }

  /** The next up to `n` batch indices: batches handed back first, then fresh ones. */
  take(n: number): number[] {
    const out: number[] = [];
    while (out.length < n && this.requeued.length) out.push(this.requeued.shift()!);
    while (out.length < n && this.cursor < this.order.length) out.push(this.order[this.cursor++]!);
    return out;
  }

  /** What `take(n)` would return next, if no batch is handed back meanwhile (nothing is taken). */
  peek(n: number): number[] {
    const back = this.requeued.slice(0, n);
    return back.concat(this.order.slice(this.cursor, this.cursor + n - back.length));
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

/** Regroup a shuffled order in place: each window of STEP_WINDOW × group batches sorted by cost (ties by
 *  position), cut into steps of `group`, the steps shuffled within the window. */
function groupByCost(order: number[], g: StepGrouping, rng: Rng): void {
  const size = g.group * STEP_WINDOW;
  for (let start = 0; start < order.length; start += size) {
    const window = order.slice(start, start + size).map((b, i) => ({ b, i, c: g.cost(b) }));
    window.sort((x, y) => x.c - y.c || x.i - y.i);
    const steps: number[][] = [];
    for (let k = 0; k < window.length; k += g.group) steps.push(window.slice(k, k + g.group).map((x) => x.b));
    // a short last step (the epoch's batches are not a multiple of the group) stays last: every other step
    // starts on a multiple of the group
    const short = steps.length && steps[steps.length - 1]!.length < g.group ? steps.pop()! : null;
    rng.shuffle(steps);
    if (short) steps.push(short);
    order.splice(start, window.length, ...steps.flat());
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
