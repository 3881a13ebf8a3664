// Row-sparse steps equal dense ones bit for bit: the sum, its norm and Adam (run in phases: dense first, then
// the rows the next tasks read, then the rest) against the same gradients folded as dense vectors; with the
// block's rows in quads (the WebAssembly row kernels) and not (the same steps in plain loops), at offset 0 (as
// the models lay it out) and after dense values.
import test from "node:test";
import assert from "node:assert/strict";
import { StepArithmetic, type GradPart } from "../src/optim/step.js";
import { encodeRows, encodeGradient, gatherRows, type SparseBlock } from "../src/protocol/gradcodec.js";
import { Rng } from "../src/rng.js";

const V = 50, DENSE = 37; // a block of 50 rows, then 37 dense values (not a multiple of 4)
const ADAM = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

// rows of E values after O dense ones: 8 at 0 and 4 (the kernels), 6 at 0 and 8 at 5 (the plain loops)
for (const [E, O] of [[8, 0], [6, 0], [8, 4], [8, 5]] as const) suite(E, O);

function suite(E: number, O: number): void {
  const SIZE = O + V * E + DENSE;
  const BLOCK: SparseBlock = { offset: O, rows: V, width: E };
  const rowsOf = ` (rows of ${E} at ${O})`;

  /** A gradient touching `rows` rows (some with values of both signs, one with a -0) and every dense value. */
  function gradient(rng: Rng, rows: number): Float32Array {
    const g = new Float32Array(SIZE);
    const picked = new Set<number>();
    while (picked.size < rows) picked.add(rng.int(V));
    for (const r of picked) for (let j = 0; j < E; j++) g[O + r * E + j] = (rng.next() - 0.5) * (j === 3 ? 0 : 1);
    const any = [...picked][0]!;
    g[O + any * E + 3] = -0;
    for (let i = 0; i < O; i++) g[i] = rng.next() - 0.5;
    for (let i = O + V * E; i < SIZE; i++) g[i] = rng.next() - 0.5;
    return g;
  }

  function bits(a: Float32Array): number[] {
    return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
  }

  for (const f16 of [false, true]) {
    test(`row-sparse steps equal dense steps bit for bit${f16 ? " (fp16 parts)" : ""}: sum, norm, Adam in phases${rowsOf}`, () => {
      const rng = new Rng(7);
      const init = Float32Array.from({ length: SIZE }, () => rng.next() - 0.5);
      const dense = new StepArithmetic(SIZE, ADAM, init, BLOCK);
      const sparse = new StepArithmetic(SIZE, ADAM, init, BLOCK);
      for (let step = 0; step < 6; step++) {
        const parts = [gradient(rng, 3 + step), gradient(rng, 9), gradient(rng, 1)];
        dense.reset(); sparse.reset();
        for (const g of parts) {
          const d = encodeGradient(g, { f16, block: null });
          const s = encodeGradient(g, { f16, block: BLOCK });
          dense.add({ values: d.values, scale: 1 / d.scale, rows: null } satisfies GradPart);
          sparse.add({ values: s.values, scale: 1 / s.scale, rows: s.rows } satisfies GradPart);
        }
        const scale = 1 / 7;
        const a = dense.sumsq(scale), b = sparse.sumsq(scale);
        assert.equal(b, a, `step ${step}: the sparse norm is the dense one`);
        assert.ok(sparse.touchedRows()!.length < V, "the sparse sum knows its rows");
        const coef = step % 2 ? 0.5 : 1; // clipped and unclipped steps
        for (const _ of dense.update(scale, coef, 64)) { /* all chunks */ }
        sparse.begin(scale, coef);
        sparse.ensureRows([4, 2, 4, 40]); // what the next tasks read, first
        assert.deepEqual(bits(sparse.readable.subarray(O + 2 * E, O + 3 * E)), bits(dense.params.subarray(O + 2 * E, O + 3 * E)), "an ensured row is final");
        // a task's parameters as the kernels gather them: those rows and every dense value, the dense step's bits
        const want = Uint32Array.of(2, 4, 40);
        const task = sparse.gatherRows(want, new Float32Array(SIZE - (V - want.length) * E));
        assert.deepEqual(bits(task), bits(gatherRows(dense.params, SIZE, BLOCK, want)), `step ${step}: a task's parameters`);
        // and the rows alone (their dense values travel in a Dense message)
        const alone = sparse.gatherRows(want, new Float32Array(want.length * E));
        assert.deepEqual(bits(alone), bits(task.subarray(O, O + want.length * E)), `step ${step}: a task's rows alone`);
        sparse.finish();
        assert.deepEqual(bits(sparse.params), bits(dense.params), `step ${step}: parameters`);
        assert.deepEqual(bits(sparse.adam.state().m), bits(dense.adam.state().m), `step ${step}: first moment`);
        assert.deepEqual(bits(sparse.adam.state().v), bits(dense.adam.state().v), `step ${step}: second moment`);
      }
      // and the rows were not all touched: the comparison covered rows that only decay
      const moved = dense.params.some((x, i) => x !== init[i]);
      assert.ok(moved);
    });
  }

  test(`a new sum started before the last Adam step finished waits for it (the step still reads its sum)${rowsOf}`, () => {
    const rng = new Rng(11);
    const init = Float32Array.from({ length: SIZE }, () => rng.next() - 0.5);
    const dense = new StepArithmetic(SIZE, ADAM, init, BLOCK);
    const sparse = new StepArithmetic(SIZE, ADAM, init, BLOCK);
    const [g1, g2] = [gradient(rng, 6), gradient(rng, 6)];
    dense.reset(); dense.add(g1);
    const s1 = encodeGradient(g1, { f16: false, block: BLOCK });
    sparse.reset(); sparse.add({ values: s1.values, scale: 1, rows: s1.rows });
    for (const _ of dense.update(1, 1)) { /* all */ }
    sparse.begin(1, 1);
    sparse.ensureRows([1]);
    // the next step's first gradient arrives before finish(): add() must finish the pending step first
    sparse.reset();
    const s2 = encodeGradient(g2, { f16: false, block: BLOCK });
    sparse.add({ values: s2.values, scale: 1, rows: s2.rows });
    assert.deepEqual(bits(sparse.params), bits(dense.params));
  });

  test(`encodeRows and the sparse sum agree on which rows a gradient touches${rowsOf}`, () => {
    const g = gradient(new Rng(3), 5);
    const { rows } = encodeRows(g, BLOCK);
    assert.equal(rows.length, 5);
  });

  /** The rows of a gradient's rows form (what a part touches). */
  function touched(g: Float32Array): Set<number> {
    return new Set(encodeRows(g, BLOCK).rows);
  }

  test(`Adam ahead (rows the step's parts do not touch, updated while the workers compute) changes no bit, and is put back where a part touches a row or the step is not taken${rowsOf}`, () => {
    const rng = new Rng(23);
    const init = Float32Array.from({ length: SIZE }, () => rng.next() - 0.5);
    const dense = new StepArithmetic(SIZE, ADAM, init, BLOCK);
    const sparse = new StepArithmetic(SIZE, ADAM, init, BLOCK);
    let early = 0, putBack = 0;
    for (let step = 0; step < 8; step++) {
      const parts = [gradient(rng, 4), gradient(rng, 7)];
      const hit = new Set(parts.flatMap((g) => [...touched(g)]));
      // the next step's rows, as the coordinator guesses them: mostly rows no part touches; on odd steps also
      // two rows a part does touch (a part that carries rows its batches do not read)
      const guess = Array.from({ length: V }, (_, r) => r).filter((r) => !hit.has(r) && r % 3 !== 0);
      if (step % 2) guess.push(...[...hit].slice(0, 2));
      const m = Float32Array.from(sparse.adam.state().m), v = Float32Array.from(sparse.adam.state().v), p = Float32Array.from(sparse.params);
      sparse.ahead(guess);
      early += sparse.aheadRows;
      if (step === 5) {
        // a step that is not taken (every part refused): nothing moved, not even the rows done ahead
        assert.notDeepEqual(bits(sparse.adam.state().m), bits(m), "the rows done ahead had moved");
        sparse.discardAhead();
        assert.deepEqual(bits(sparse.adam.state().m), bits(m));
        assert.deepEqual(bits(sparse.adam.state().v), bits(v));
        assert.deepEqual(bits(sparse.params), bits(p));
        assert.deepEqual(bits(sparse.adam.state().m), bits(dense.adam.state().m), "moments as before the step");
        assert.equal(sparse.adam.state().t, dense.adam.state().t, "no step counted");
        continue;
      }
      dense.reset(); sparse.reset();
      for (const g of parts) {
        const d = encodeGradient(g, { f16: false, block: null });
        const s = encodeGradient(g, { f16: false, block: BLOCK });
        dense.add({ values: d.values, scale: 1, rows: null });
        sparse.add({ values: s.values, scale: 1, rows: s.rows });
      }
      const scale = 1 / 5, coef = step % 3 ? 1 : 0.5;
      assert.equal(sparse.sumsq(scale), dense.sumsq(scale));
      for (const _ of dense.update(scale, coef, 64)) { /* all chunks */ }
      if (step % 2) putBack += 2;
      sparse.begin(scale, coef);
      sparse.ensureRows(guess); // the next tasks' rows: those done ahead are left alone
      sparse.finish();
      assert.deepEqual(bits(sparse.params), bits(dense.params), `step ${step}: parameters`);
      assert.deepEqual(bits(sparse.adam.state().m), bits(dense.adam.state().m), `step ${step}: first moment`);
      assert.deepEqual(bits(sparse.adam.state().v), bits(dense.adam.state().v), `step ${step}: second moment`);
    }
    assert.ok(early > 8 * 10 && putBack > 0, "rows were done ahead, and some put back");
    assert.ok(dense.params.some((x, i) => x !== init[i]));
  });
}
