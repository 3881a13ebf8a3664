// Bounded bookkeeping for what strangers make the coordinator do: counts per key and a reply budget per peer,
// each holding at most `capacity` keys (the least recently used one goes), so that a flood of one-shot
// identities costs a bounded amount of memory.

/** Counts per key; `hit` returns the count after this one. */
export class Counts {
  private readonly n = new Map<string, number>();
  constructor(private readonly capacity: number) {}
  hit(key: string): number {
    const c = (this.n.get(key) ?? 0) + 1;
    this.n.delete(key); // re-insert: Map order is the recency order
    this.n.set(key, c);
    if (this.n.size > this.capacity) this.n.delete(this.n.keys().next().value!);
    return c;
  }
  get size(): number { return this.n.size; }
}

/** A token bucket per peer: `perSecond` replies a second, bursts of `burst`. */
export class ReplyBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly capacity: number, private readonly perSecond: number, private readonly burst: number) {}
  /** True when `peer` may get one more reply at `now` (ms). */
  take(peer: string, now: number): boolean {
    const b = this.buckets.get(peer) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    this.buckets.delete(peer);
    this.buckets.set(peer, b);
    if (this.buckets.size > this.capacity) this.buckets.delete(this.buckets.keys().next().value!);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
  get size(): number { return this.buckets.size; }
}
