// The host side of a GPU step (src/engine/gpu/plan.ts), no GPU needed: the compact token table the gather
// and scatter kernels read, the CSR of positions per row, the rows taken from RowParams, and the split-K
// choice of the matmul uniforms.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PAD_ID } from "../src/config.js";
import { InputError } from "../src/errors.js";
import { Rng } from "../src/rng.js";
import { compactRows, compactTokens, tokenPositions, Uniforms } from "../src/engine/gpu/plan.js";
import { MAX_SPLITS } from "../src/engine/gpu/buffers.js";
import { tokenBatch } from "./helpers/rows.js";

test("compact token table: rows in ascending id order, every position maps back to its token, marks restored", () => {
  const V = 50;
  const mark = new Int32Array(V).fill(-1);
  const batch = tokenBatch(new Rng(2), V, [7, 1, 5, 3], true);
  const { size: B, maxLen: T, lengths, tokens } = batch;
  const { ctok, uniq, padU } = compactTokens(batch, V, mark);
  assert.ok(uniq.every((id, i) => i === 0 || id > uniq[i - 1]), "ascending, unique");
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const u = ctok[t * B + b];
      if (t < lengths[b]) assert.equal(uniq[u], tokens![b * T + t], `row of (${b}, ${t})`);
      else assert.equal(u, -1, `past the end of review ${b}`);
    }
  }
  assert.equal(uniq[padU], PAD_ID, "<pad> is read inside the first review");
  assert.ok(mark.every((x) => x === -1));
  const bad = { ...batch, tokens: tokens!.map((x, i) => (i === B * T - T ? V : x)) }; // review 3, position 0
  assert.throws(() => compactTokens(bad, V, mark), (e: Error) => e instanceof InputError && /row 3, position 0/.test(e.message));
  assert.ok(mark.every((x) => x === -1), "a refused batch leaves no marks");
});

test("positions per row (CSR): each row lists exactly its positions, ascending; <pad> has none; none when evaluating", () => {
  const V = 20;
  const batch = tokenBatch(new Rng(4), V, [9, 6, 2], true);
  const { ctok, uniq, padU } = compactTokens(batch, V, new Int32Array(V).fill(-1));
  const { start, pos } = tokenPositions(ctok, uniq.length, padU, true);
  for (let u = 0; u < uniq.length; u++) {
    const listed = [...pos.subarray(start[u], start[u + 1])];
    const want = u === padU ? [] : [...ctok.keys()].filter((r) => ctok[r] === u);
    assert.deepEqual(listed, want, `row ${u} (token ${uniq[u]})`);
  }
  const held = [...ctok].filter((u) => u >= 0 && u !== padU).length;
  assert.equal(start[uniq.length], held);
  assert.ok(tokenPositions(ctok, uniq.length, padU, false).start.every((x) => x === 0));
});

test("compact rows from RowParams: the batch's rows in table order, from exactly those rows or a superset", () => {
  const E = 3, uniq = Int32Array.from([2, 5, 9]);
  const full = Float32Array.from({ length: 12 * E }, (_, i) => i);
  const want = compactRows(full, uniq, E);
  assert.deepEqual([...want], [6, 7, 8, 15, 16, 17, 27, 28, 29]);
  const pick = (rows: number[]) => ({ dense: new Float32Array(0), rows: Int32Array.from(rows), values: Float32Array.from(rows.flatMap((r) => [...full.subarray(r * E, r * E + E)])) });
  assert.deepEqual([...compactRows(pick([2, 5, 9]), uniq, E)], [...want]);
  assert.deepEqual([...compactRows(pick([0, 2, 3, 5, 9, 11]), uniq, E)], [...want]);
  assert.throws(() => compactRows(pick([2, 9, 11]), uniq, E), (e: Error) => e instanceof InputError && /row 5,/.test(e.message));
});

test("matmul uniforms: split-K chunks are multiples of 16 that cover K, at most MAX_SPLITS", () => {
  const uni = new Uniforms();
  const a = { off: 0, rs: 1, cs: 1 }, b = { off: 0, rs: 1, cs: 1 };
  for (const [M, N, K] of [[100, 1024, 17_280], [256, 1024, 64], [1, 1024, 5], [64, 64, 1_000_000]]) {
    const op = uni.matmul(4, M, N, K, a, b, 0, N, true);
    const words = new Uint32Array(uni.bytes, 4 * 256, 16);
    const kChunk = words[3];
    assert.equal(kChunk % 16, 0);
    assert.ok(op.S >= 1 && op.S <= MAX_SPLITS, `S = ${op.S}`);
    assert.ok(kChunk * op.S >= K && kChunk * (op.S - 1) < K, `chunks of ${kChunk} × ${op.S} cover K = ${K} with none empty`);
    assert.deepEqual(op.grid, [Math.ceil(N / 64), Math.ceil(M / 64), op.S]);
  }
  assert.equal(uni.matmul(1, 64, 64, 4096, a, b, 0, 64, false).S, 1, "no split unless asked");
});
