// Slices of a sharded coordinator in the rows forms: bounds on row bounds, a worker's gradient cut into pieces
// without copying, a task's parameters joined back from the pieces — against the dense vector cut by offsets.
import test from "node:test";
import assert from "node:assert/strict";
import { sliceBounds, sliceView, slicePiece, joinPieces, gradientPieces } from "../src/protocol/slices.js";
import { encodeRows, payloadValues, type SparseBlock } from "../src/protocol/gradcodec.js";
import { TaskPieces } from "../src/protocol/params.js";
import { Kind, encode, decode, WireError } from "../src/protocol/wire.js";

/** A vector [before | V rows of E | after] with a value per index, and a random subset of rows nonzero. */
function vector(before: number, V: number, E: number, after: number, seed: number): { g: Float32Array; block: SparseBlock } {
  const block = { offset: before, rows: V, width: E };
  const g = new Float32Array(before + V * E + after);
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < g.length; i++) g[i] = i + 1;
  for (let r = 0; r < V; r++) if (rnd() < 0.6) g.fill(0, before + r * E, before + (r + 1) * E);
  return { g, block };
}

test("sliceBounds with a block: balanced, covering, multiples of 4, never splitting a row", () => {
  for (const [before, V, E, after, k] of [[0, 200, 8, 1700, 3], [0, 25002, 100, 370_000, 7], [12, 97, 6, 40, 4], [0, 10, 100, 5, 8]] as const) {
    const block = { offset: before, rows: V, width: E };
    const n = before + V * E + after;
    const b = sliceBounds(n, k, block);
    assert.equal(b.length, k);
    assert.equal(b.reduce((s, x) => s + x.length, 0), n);
    for (let i = 1; i < k; i++) assert.equal(b[i]!.offset, b[i - 1]!.offset + b[i - 1]!.length);
    for (const x of b) {
      if (x.length) assert.equal(x.offset % 4, 0, `slice at ${x.offset}`);
      const v = sliceView(x, block); // throws when a bound splits a row
      if (v.block) assert.equal(v.block.offset + v.block.rows * E <= x.length, true);
    }
  }
  assert.throws(() => sliceView({ offset: 0, length: 5 }, { offset: 0, rows: 4, width: 4 }), /splits an embedding row/);
});

test("a rows payload cut into slice pieces and joined again is the payload; each piece is the dense slice without its untouched rows", () => {
  for (const [before, V, E, after, k, seed] of [[0, 54, 48, 2300, 3, 1], [8, 97, 4, 300, 5, 2], [0, 40, 8, 16, 2, 3]] as const) {
    const { g, block } = vector(before, V, E, after, seed);
    const views = sliceBounds(g.length, k, block).map((b) => sliceView(b, block));
    const { rows, values } = encodeRows(g, block);
    const pieces = views.map((v) => slicePiece(values, rows, block, v));
    for (const [i, p] of pieces.entries()) {
      const v = views[i]!;
      assert.equal(p.values.buffer, values.buffer, "a view, not a copy");
      assert.equal(p.values.length, payloadValues(v.length, v.block, v.block ? p.rows.length : null));
      // the piece is the rows form of the dense slice
      const dense = g.subarray(v.offset, v.offset + v.length);
      if (v.block) {
        const own = encodeRows(Float32Array.from(dense), v.block);
        assert.deepEqual(p.rows, own.rows);
        assert.deepEqual(p.values, own.values);
      } else {
        assert.equal(p.rows.length, 0);
        assert.deepEqual(p.values, dense);
      }
    }
    const joined = joinPieces(pieces, views);
    assert.deepEqual(joined.values, values);
    assert.deepEqual(Array.from(joined.rows), Array.from(rows));
    // gradientPieces: the same pieces; the whole vector when it is dense
    const gp = gradientPieces({ rows, values }, views, block, false);
    gp.forEach((p, i) => { assert.deepEqual(p.values, pieces[i]!.values); assert.deepEqual(p.rows ?? new Uint32Array(0), pieces[i]!.rows); });
    const dp = gradientPieces({ rows: null, values: g }, views, null, false);
    dp.forEach((p, i) => assert.deepEqual(p.values, g.subarray(views[i]!.offset, views[i]!.offset + views[i]!.length)));
  }
});

test("TaskPieces: a task's pieces from the shards, checked against their slice, taken for the task's version only", async () => {
  const { g, block } = vector(0, 54, 48, 2300, 4);
  const views = sliceBounds(g.length, 3, block).map((b) => sliceView(b, block));
  const { rows, values } = encodeRows(g, block);
  const h = (version: number) => ({ kind: Kind.Params, runId: 1, step: 0, paramVersion: version, slot: 0, layoutHash: "h" });
  const msg = (k: number, version: number, task: number) => {
    const p = slicePiece(values, rows, block, views[k]!);
    return decode(encode(h(version), { offset: views[k]!.offset, task }, Float32Array.from(p.values), p.rows), { maxBytes: 1 << 24, from: `shard ${k}` });
  };
  const tp = new TaskPieces(views);
  assert.equal(tp.put(1, decode(encode(h(3), { offset: 0 }, new Float32Array(4)), { maxBytes: 1 << 20, from: "s" }), "s"), false, "a broadcast chunk is not a piece");
  // a piece that does not fit its slice is refused with the sender named
  const bad = slicePiece(values, rows, block, views[1]!);
  assert.throws(() => tp.put(1, decode(encode(h(3), { offset: views[1]!.offset, task: 7 }, Float32Array.from(bad.values).subarray(1), bad.rows), { maxBytes: 1 << 24, from: "x" }), "shard 1"), (e: unknown) => e instanceof WireError && /shard 1/.test(e.message));
  assert.throws(() => tp.put(1, decode(encode(h(3), { offset: views[1]!.offset, task: 7 }, Float32Array.from(bad.values), Uint32Array.of(5000)), { maxBytes: 1 << 24, from: "x" }), "shard 1"), /out of range/);
  // pieces of an older version do not complete a task
  tp.put(1, msg(1, 2, 7), "shard 1");
  tp.put(2, msg(2, 3, 7), "shard 2");
  assert.equal(await tp.take(7, 3, 20), null);
  const later = tp.take(8, 3, 5000);
  tp.put(2, msg(2, 3, 8), "shard 2");
  tp.put(1, msg(1, 3, 8), "shard 1");
  const got = await later;
  assert.ok(got);
  // a shard whose connection dropped sends nothing more: waiting for its piece ends at once, until it sends again
  const waiting = tp.take(9, 3, 60_000);
  tp.lost(2);
  assert.equal(await waiting, null);
  assert.equal(await tp.take(9, 3, 60_000), null);
  tp.put(2, msg(2, 3, 10), "shard 2");
  tp.put(1, msg(1, 3, 10), "shard 1");
  assert.ok(await tp.take(10, 3, 1000));
  const joined = tp.join(msg(0, 3, 8), got);
  assert.deepEqual(joined.values, values);
  assert.deepEqual(Array.from(joined.rows), Array.from(rows));
});

test("sliceBounds weighted by row traffic: slices carry equal shares of a task's bytes, on row bounds", () => {
  // 1000 rows of 8 (row r read by a task with probability 1/(1 + r/10), as word frequencies fall), 4000 dense values
  const block = { offset: 0, rows: 1000, width: 8 };
  const w = Float64Array.from({ length: 1000 }, (_, r) => 1 / (1 + r / 10));
  const n = 8000 + 4000;
  const cost = (b: { offset: number; length: number }) => {
    let c = 0;
    for (let x = b.offset; x < b.offset + b.length; x++) c += x < 8000 ? w[Math.floor(x / 8)]! : 1;
    return c;
  };
  const total = cost({ offset: 0, length: n });
  for (const k of [2, 3, 5]) {
    const b = sliceBounds(n, k, block, w);
    assert.equal(b.reduce((s, x) => s + x.length, 0), n);
    for (const x of b) sliceView(x, block); // on row bounds
    const costs = b.map(cost);
    for (const c of costs) assert.ok(Math.abs(c - total / k) <= 8 + 4, `k=${k}: ${costs.map((c) => c.toFixed(1)).join(" ")} of ${total.toFixed(1)}`);
    // balanced in values instead, some slice carries far from its share
    assert.ok(sliceBounds(n, k, block).some((x) => Math.abs(cost(x) - total / k) > 0.3 * (total / k)));
  }
});
