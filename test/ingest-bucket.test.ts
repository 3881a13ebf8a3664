import { test } from "node:test";
import assert from "node:assert/strict";
import { bucketBatches, paddingOf } from "../src/ingest/bucket.js";
import { Rng } from "../src/rng.js";

/** IMDB-like lengths: log-normal around 200 tokens with a long tail. */
function lengths(n: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => Math.max(1, Math.round(Math.exp(5.3 + 0.65 * rng.normal()))));
}

/**
 * The batch sizes bucketBatches must deal: reviews longer than the 99th-percentile length form a pool of
 * their own, the others pools of B × poolBatches; each pool is cut into batches of B, its last one smaller.
 */
function dealtSizes(L: Int32Array, B: number, poolBatches: number): number[] {
  const cut = Int32Array.from(L).sort()[Math.min(L.length - 1, Math.floor(L.length * 0.99))]!;
  const tail = L.filter((x) => x > cut).length, body = L.length - tail;
  const sizes: number[] = [];
  const cutPool = (m: number) => { for (let i = 0; i < m; i += B) sizes.push(Math.min(B, m - i)); };
  for (let p = 0; p < body; p += B * poolBatches) cutPool(Math.min(B * poolBatches, body - p));
  if (tail > 0) cutPool(tail);
  return sizes.sort((a, b) => a - b);
}

test("bucketing: every sample exactly once, batches sorted, full batches but the last of each pool", () => {
  const L = lengths(5000, 1);
  const batches = bucketBatches(L, { batchSize: 64, poolBatches: 10, seed: 3 });
  const sizes = batches.map((b) => b.length).sort((a, b) => a - b);
  assert.deepEqual(sizes, dealtSizes(L, 64, 10));
  assert.equal(sizes.filter((n) => n < 64).length, 2, "5000 reviews: a short batch closing the body's last pool and the tail pool");
  const seen = new Uint8Array(L.length);
  for (const b of batches) {
    for (let i = 0; i < b.length; i++) {
      assert.equal(seen[b[i]!], 0, `sample ${b[i]} twice`);
      seen[b[i]!] = 1;
      if (i > 0) assert.ok(L[b[i - 1]!]! <= L[b[i]!]!, "batch not sorted by length");
    }
  }
  assert.equal(seen.reduce((s, x) => s + x, 0), L.length);
});

test("bucketing: seeded (same seed same batches, other seed other order)", () => {
  const L = lengths(2000, 2);
  const a = bucketBatches(L, { batchSize: 32, poolBatches: 5, seed: 9 }).map((b) => [...b]);
  const b = bucketBatches(L, { batchSize: 32, poolBatches: 5, seed: 9 }).map((b) => [...b]);
  const c = bucketBatches(L, { batchSize: 32, poolBatches: 5, seed: 10 }).map((b) => [...b]);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test("bucketing: padding <= 5% at batch 64 (pools of 100), far below unsorted batches", () => {
  const L = lengths(22500, 3);
  const bucketed = paddingOf(bucketBatches(L, { batchSize: 64, poolBatches: 100, seed: 1 }), L);
  const random: Int32Array[] = [];
  for (let i = 0; i < L.length; i += 64) random.push(Int32Array.from({ length: Math.min(64, L.length - i) }, (_, k) => i + k));
  const unsorted = paddingOf(random, L);
  assert.ok(bucketed.padding <= 0.05, `padding ${bucketed.padding}`);
  assert.ok(unsorted.padding > 0.3, `unsorted padding ${unsorted.padding}`);
  assert.equal(bucketed.tokens, L.reduce((s, x) => s + x, 0));
});

test("paddingOf counts slots as B x max length", () => {
  const L = Int32Array.of(3, 1, 2, 5);
  const p = paddingOf([Int32Array.of(0, 1), Int32Array.of(2, 3)], L);
  assert.equal(p.tokens, 11);
  assert.equal(p.slots, 2 * 3 + 2 * 5);
  assert.equal(p.padding, 1 - 11 / 16);
});

test("bucketing: reviews of equal length (cut to --max-len) keep their shuffled order, so labels mix in a batch", () => {
  // the archive's order: 500 positive reviews, then 500 negative; most cut to 400 tokens
  const n = 1000, L = Int32Array.from({ length: n }, (_, i) => (i % 10 === 0 ? 100 + i / 10 : 400));
  const label = (i: number) => (i < 500 ? 1 : 0);
  const batches = bucketBatches(L, { batchSize: 32, poolBatches: 100, seed: 9, tailQuantile: 1 });
  const full = batches.filter((b) => b.length === 32 && L[b[0]!] === 400);
  assert.ok(full.length > 20);
  for (const b of full) {
    const pos = Array.from(b).filter((i) => label(i) === 1).length;
    assert.ok(pos > 4 && pos < 28, `a batch of 400-token reviews has ${pos} of 32 positive: ties sorted by index`);
  }
});
