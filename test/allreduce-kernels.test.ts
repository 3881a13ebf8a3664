// The coordinator's WebAssembly SIMD kernels against their plain-JS twins (bit for bit), and the chunked step
// (fold in task order → norm → Adam from one buffer into the other) against the straightforward sequence
// mean → clip → Adam written out here with plain loops.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Arena, Kernels, adamJs, foldJs, sumsqJs, sumsqLanes, type AdamHyper } from "../src/optim/kernels.js";
import { Adam, clipCoefficient } from "../src/optim/adam.js";
import { StepArithmetic } from "../src/optim/step.js";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; };
}
function fill(a: Float32Array, r: () => number, scale: number): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = r() * scale;
  return a;
}
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}: index ${i} differs: ${a[i]} vs ${b[i]}`);
}

test("SIMD kernels equal their JS twins bit for bit (odd length, chunk ranges, clip factor, weight decay)", () => {
  const n = 1031; // not a multiple of 4: the tail goes through the JS twin
  const arena = new Arena(Arena.floatsFor(n, n, n, n, n, n));
  const k = new Kernels(arena);
  const r = rng(7);
  const [p, q, acc, part, m, v] = [0, 1, 2, 3, 4, 5].map(() => arena.alloc(n)) as Float32Array[] as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  fill(p, r, 1); fill(acc, r, 0.05); fill(part, r, 0.05); fill(m, r, 1e-3);
  for (let i = 0; i < n; i++) v[i] = Math.abs(r()) * 1e-5;
  acc[3] = -0; part[9] = 0; acc[17] = 1e-42; // signed zero and a subnormal
  const J = { p: Float32Array.from(p), q: new Float32Array(n), acc: Float32Array.from(acc), part: Float32Array.from(part), m: Float32Array.from(m), v: Float32Array.from(v) };

  k.fold(acc, part); foldJs(J.acc, J.part, 0, n);
  sameBits(acc, J.acc, "fold");
  assert.ok(Object.is(k.sumsq(acc, 1 / 96), sumsqJs(J.acc, 0, n, 1 / 96)), "sumsq");
  assert.ok(Object.is(k.sumsq(acc, 1 / 96, 8, 500), sumsqJs(J.acc, 8, 500, 1 / 96)), "sumsq of a range");

  for (const [wd, coef] of [[0, 1], [0, 0.37], [0.01, 1], [0.01, 0.5]] as const) {
    const h: AdamHyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, stepSize: 2e-3 / (1 - 0.9 ** 3), sqrtBc2: Math.sqrt(1 - 0.999 ** 3), weightDecay: wd };
    for (const [s, e] of [[0, 256], [256, 1028], [1028, n]]) { // chunks, the last one a partial quad
      k.adam(p, q, acc, m, v, s, e, 1 / 96, coef, h);
      adamJs(J.p, J.q, J.acc, J.m, J.v, s, e, 1 / 96, coef, h);
    }
    sameBits(q, J.q, `adam params (wd ${wd}, coef ${coef})`);
    sameBits(m, J.m, "adam m");
    sameBits(v, J.v, "adam v");
    p.set(q); J.p.set(J.q);
  }
  assert.throws(() => k.fold(acc, new Float32Array(n)), /not an array of this arena/);
  assert.throws(() => k.sumsq(acc, 1, 2), /multiple of 4/);
});

test("a chunked step (fold in task order, norm, Adam into the other buffer) equals mean → clip → Adam with plain loops", () => {
  const n = 4099;
  const r = rng(11);
  const init = fill(new Float32Array(n), r, 0.5);
  const opts = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  const arith = new StepArithmetic(n, opts, init);
  const ref = Float32Array.from(init);
  const refAdam = new Adam(n, opts); // no arena: the JS loop
  for (let step = 0; step < 4; step++) {
    const parts = [0, 1, 2].map(() => fill(new Float32Array(n), r, step === 1 ? 400 : 0.5)); // step 1 is clipped
    const count = 96;
    arith.reset();
    for (const g of parts) arith.add(g);
    const norm = Math.sqrt(arith.sumsq(1 / count));
    const coef = clipCoefficient(norm, 5);
    assert.equal(coef < 1, step === 1, `clipped only at step 1 (norm ${norm})`);
    const before = arith.params;
    let last = 0;
    for (const c of arith.update(1 / count, coef, 1000)) { assert.equal(c.start, last); last = c.end; }
    assert.equal(last, n);
    assert.notEqual(arith.params, before, "the new parameters are in the other buffer");
    // reference: s = f32(f32(0 + g1) + g2) + g3, mean = f32(s / count), clipped = f32(mean · coef), Adam.step
    const mean = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (const g of parts) s = Math.fround(s + g[i]!);
      mean[i] = s * (1 / count);
    }
    let sq = 0;
    for (let i = 0; i < n; i++) sq += mean[i]! * mean[i]!;
    assert.ok(Math.abs(Math.sqrt(sq) - norm) <= 1e-12 * norm, "the norm is the mean's L2 norm");
    if (coef !== 1) for (let i = 0; i < n; i++) mean[i] *= coef;
    refAdam.step(ref, mean);
    sameBits(arith.params, ref, `parameters after step ${step + 1}`);
  }
  assert.equal(arith.adam.state().t, 4);
});

test("sumsqLanes over the nonzero ranges equals the full pass bit for bit (aligned and unaligned ranges, a tail)", () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (const n of [1003, 4096, 10_001]) {
    for (let trial = 0; trial < 20; trial++) {
      const acc = new Float32Array(n);
      const ranges: [number, number][] = [];
      for (let at = Math.floor(rnd() * 9); at < n; ) {
        const len = 1 + Math.floor(rnd() * 40), end = Math.min(n, at + len);
        ranges.push([at, end]);
        for (let i = at; i < end; i++) acc[i] = (rnd() - 0.5) * (rnd() < 0.1 ? 1e4 : 1);
        at = end + Math.floor(rnd() * 30);
      }
      const scale = 1 / (1 + trial);
      assert.ok(Object.is(sumsqLanes(acc, ranges, scale), sumsqJs(acc, 0, n, scale)), `n ${n}, trial ${trial}`);
    }
  }
});

test("row kernels (scatter add and copy, gather, lane sums over rows, Adam over rows) equal the plain loops bit for bit", () => {
  const W = 12, ROWS = 40, n = ROWS * W + 9; // rows of 12 values, then a dense tail that is no whole quad
  const arena = new Arena(Arena.floatsFor(n, n, n, n, n, n, n, n, ROWS, 8));
  const k = new Kernels(arena);
  const r = rng(23);
  const [acc, part, p, q, m, v] = [0, 1, 2, 3, 4, 5].map(() => arena.alloc(n)) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  const starts = arena.allocInt(ROWS), lanes = arena.allocDouble(4);
  const rows = [1, 2, 7, 19, 20, 39];
  rows.forEach((row, i) => { starts[i] = row * W; });
  fill(part, r, 0.5); part[5] = -0;
  // scatter adds row i of part into its row (f32), as fold does: into zeros (a -0 becomes +0), then again
  const J = new Float32Array(n);
  for (const what of ["scatter into zeros", "scatter add"]) {
    k.scatterAdd(acc, part, starts, rows.length, W);
    rows.forEach((row, i) => { for (let j = 0; j < W; j++) J[row * W + j] = Math.fround(J[row * W + j]! + part[i * W + j]!); });
    sameBits(acc, J, what);
  }
  // scatter copy puts every bit of a row where it goes (a -0 stays -0), over what was there
  const C = Float32Array.from(acc);
  k.scatterCopy(acc, part, starts, rows.length, W);
  rows.forEach((row, i) => { for (let j = 0; j < W; j++) C[row * W + j] = part[i * W + j]!; });
  sameBits(acc, C, "scatter copy");
  assert.ok(Object.is(acc[rows[0]! * W + 5], -0), "a -0 copied as -0");
  // gather takes the rows back out, contiguous, every bit, and writes nothing past them
  const out = arena.alloc(n);
  out.fill(7);
  k.gatherRows(out, acc, starts, rows.length, W);
  sameBits(out.subarray(0, rows.length * W), part.subarray(0, rows.length * W), "gather");
  assert.ok(out.subarray(rows.length * W).every((x) => x === 7), "gather writes only the rows");
  acc.set(J);
  // the lane sums over the rows (the rest is zero) are the full pass's
  for (let i = ROWS * W; i < n; i++) acc[i] = 0;
  lanes.fill(0);
  k.sumsqRows(acc, starts, rows.length, W, 1 / 3, lanes);
  assert.ok(Object.is((lanes[0]! + lanes[2]!) + (lanes[1]! + lanes[3]!), sumsqJs(J, 0, ROWS * W, 1 / 3)), "sumsq over rows");
  // Adam over the rows in one call is Adam over each row's range
  fill(p, r, 1); fill(m, r, 1e-3); for (let i = 0; i < n; i++) v[i] = Math.abs(r()) * 1e-5;
  const ref = { p: Float32Array.from(p), q: Float32Array.from(q), m: Float32Array.from(m), v: Float32Array.from(v) };
  for (const wd of [0, 0.01]) {
    const h: AdamHyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, stepSize: 1e-3 / (1 - 0.9 ** 2), sqrtBc2: Math.sqrt(1 - 0.999 ** 2), weightDecay: wd };
    k.adamRows(p, q, acc, m, v, starts, rows.length, W, 1 / 3, 0.75, h);
    for (const row of rows) adamJs(ref.p, ref.q, J, ref.m, ref.v, row * W, (row + 1) * W, 1 / 3, 0.75, h);
    sameBits(q, ref.q, `adamRows params (wd ${wd})`);
    sameBits(m, ref.m, "adamRows m");
    sameBits(v, ref.v, "adamRows v");
  }
  // Adam over rows whose sum is +0 without reading it: the bits of Adam with that zero sum (also weight decay)
  const zeros = arena.alloc(n), R = ROWS * W;
  for (let row = 0; row < ROWS; row++) starts[row] = row * W;
  for (const wd of [0, 0.01]) {
    const h: AdamHyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, stepSize: 1e-3 / (1 - 0.9 ** 3), sqrtBc2: Math.sqrt(1 - 0.999 ** 3), weightDecay: wd };
    const m0 = Float32Array.from(m), v0 = Float32Array.from(v);
    m[4] = -1e-45; // b1·m rounds to -0: the zero gradient's +0 added makes it +0, as the full kernel does
    k.adamRows(p, q, zeros, m, v, starts, ROWS, W, 1 / 3, 0.75, h, true);
    const ref0 = { q: new Float32Array(n), m: Float32Array.from(m0), v: Float32Array.from(v0) };
    ref0.m[4] = -1e-45;
    adamJs(p, ref0.q, new Float32Array(n), ref0.m, ref0.v, 0, R, 1 / 3, 0.75, h);
    sameBits(q.subarray(0, R), ref0.q.subarray(0, R), `adamRows with a zero sum, params (wd ${wd})`);
    sameBits(m, ref0.m, "adamRows with a zero sum, m");
    sameBits(v, ref0.v, "adamRows with a zero sum, v");
  }
  // rows are checked before any kernel runs
  starts[0] = 3;
  assert.throws(() => k.scatterAdd(acc, part, starts, rows.length, W), /multiple of 4/);
  starts[0] = ROWS * W;
  assert.throws(() => k.adamRows(p, q, acc, m, v, starts, rows.length, W, 1, 1, { beta1: 0.9, beta2: 0.999, eps: 1e-8, stepSize: 1, sqrtBc2: 1, weightDecay: 0 }), /inside the arrays/);
  assert.throws(() => k.sumsqRows(acc, new Int32Array(4), 1, W, 1, lanes), /not an array of this arena/);
});

test("the cheaper forms of the gradient's products (a float32 scale, a clip factor of 1) give the general form's bits", () => {
  // each Adam and sumsq kernel picks its form by the values (kernels.ts): they must all be adamJs and sumsqJs
  const W = 8, ROWS = 64, n = ROWS * W + 5;
  const arena = new Arena(Arena.floatsFor(n, n, n, n, n, ROWS, 8));
  const k = new Kernels(arena);
  const r = rng(31);
  const [acc, p, q, m, v] = [0, 1, 2, 3, 4].map(() => arena.alloc(n)) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  const starts = arena.allocInt(ROWS), lanes = arena.allocDouble(4);
  // values whose products round: subnormal results, values near the float32 limit, signed zeros
  for (let i = 0; i < n; i++) acc[i] = r() * [1, 1e-36, 3e38, 1e-3][i % 4]!;
  acc[6] = -0; acc[11] = 1e-45; acc[13] = -3.4e38;
  const rows = [0, 3, 4, 9, 33, 63];
  rows.forEach((row, i) => { starts[i] = row * W; });
  for (const scale of [1 / 64, 1 / 96, 0.1, 3, Math.fround(1e-40), 1]) {
    assert.ok(Object.is(k.sumsq(acc, scale), sumsqJs(acc, 0, n, scale)), `sumsq, scale ${scale}`);
    lanes.fill(0);
    k.sumsqRows(acc, starts, rows.length, W, scale, lanes);
    const only = new Float32Array(n);
    for (const row of rows) only.set(acc.subarray(row * W, (row + 1) * W), row * W);
    assert.ok(Object.is((lanes[0]! + lanes[2]!) + (lanes[1]! + lanes[3]!), sumsqJs(only, 0, ROWS * W, scale)), `sumsqRows, scale ${scale}`);
    for (const coef of [1, 0.37, 0.5]) {
      for (const wd of [0, 0.01]) {
        const h: AdamHyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, stepSize: 1e-3 / (1 - 0.9 ** 2), sqrtBc2: Math.sqrt(1 - 0.999 ** 2), weightDecay: wd };
        fill(p, r, 1); fill(m, r, 1e-3); for (let i = 0; i < n; i++) v[i] = Math.abs(r()) * 1e-5;
        const J = { q: new Float32Array(n), m: Float32Array.from(m), v: Float32Array.from(v) };
        k.adam(p, q, acc, m, v, 0, n, scale, coef, h);
        adamJs(p, J.q, acc, J.m, J.v, 0, n, scale, coef, h);
        const what = `scale ${scale}, coef ${coef}, wd ${wd}`;
        sameBits(q, J.q, `adam params (${what})`); sameBits(m, J.m, `adam m (${what})`); sameBits(v, J.v, `adam v (${what})`);
        k.adamRows(p, q, acc, m, v, starts, rows.length, W, scale, coef, h);
        for (const row of rows) adamJs(p, J.q, acc, J.m, J.v, row * W, (row + 1) * W, scale, coef, h);
        sameBits(q, J.q, `adamRows params (${what})`); sameBits(m, J.m, `adamRows m (${what})`); sameBits(v, J.v, `adamRows v (${what})`);
      }
    }
  }
});

test("zeroRows sets the rows to +0 and nothing else", () => {
  const W = 8, n = 10 * W + 3;
  const arena = new Arena(Arena.floatsFor(n, 10));
  const k = new Kernels(arena);
  const acc = arena.alloc(n), starts = arena.allocInt(10);
  acc.fill(-0.5);
  [1, 4, 9].forEach((row, i) => { starts[i] = row * W; });
  k.zeroRows(acc, starts, 3, W);
  for (let i = 0; i < n; i++) {
    const row = Math.floor(i / W), zeroed = i < 10 * W && [1, 4, 9].includes(row);
    assert.ok(Object.is(acc[i], zeroed ? 0 : -0.5), `index ${i}`);
  }
  starts[0] = 2;
  assert.throws(() => k.zeroRows(acc, starts, 1, W), /multiple of 4/);
});
