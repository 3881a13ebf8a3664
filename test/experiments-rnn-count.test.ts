import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { forwardStates, lossAndGrads, lossOf, trainScalarRnn } from "../src/experiments/scalar-rnn.js";
import { RNN_COUNT_DEFAULTS, SEQUENCE_10, SEQUENCE_40, runRnnCount } from "../src/experiments/rnn-count.js";
import { runCli } from "./helpers/cli.js";

const lossAt = (x: readonly number[], target: number, U: number, W: number) => lossOf(forwardStates(x, { U, W })[x.length]!, target);

test("forward: the last state is U·Σ x_t·W^(T-t) (closed form)", () => {
  const x = [1, 0, 1, 1, 0, 1];
  const U = 0.7, W = -1.3;
  let expected = 0;
  for (let t = 1; t <= x.length; t++) expected += U * x[t - 1]! * W ** (x.length - t);
  const S = forwardStates(x, { U, W });
  assert.equal(S.length, x.length + 1);
  assert.equal(S[0], 0);
  assert.ok(Math.abs(S[x.length]! - expected) < 1e-12, `${S[x.length]} vs ${expected}`);
});

test("BPTT gradients match central finite differences", () => {
  const cases: { x: readonly number[]; target: number; U: number; W: number }[] = [
    { x: SEQUENCE_10, target: 3, U: -2, W: 0 },
    { x: SEQUENCE_10, target: 3, U: -2.05, W: -0.6 },
    { x: SEQUENCE_10, target: 3, U: 1.3, W: 0.9 },
    { x: [1, 1, 0, 1], target: -2, U: 0.4, W: 1.7 },
    { x: SEQUENCE_40, target: 12, U: -2, W: -0.95 },
    { x: SEQUENCE_40, target: 12, U: 0.5, W: 1.02 },
  ];
  for (const c of cases) {
    const g = lossAndGrads(c.x, c.target, { U: c.U, W: c.W });
    const h = 1e-6;
    const numU = (lossAt(c.x, c.target, c.U + h, c.W) - lossAt(c.x, c.target, c.U - h, c.W)) / (2 * h);
    const numW = (lossAt(c.x, c.target, c.U, c.W + h) - lossAt(c.x, c.target, c.U, c.W - h)) / (2 * h);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1, Math.abs(a), Math.abs(b));
    assert.ok(rel(g.dU, numU) < 1e-6, `dU ${g.dU} vs numeric ${numU} at ${JSON.stringify(c)}`);
    assert.ok(rel(g.dW, numW) < 1e-6, `dW ${g.dW} vs numeric ${numW} at ${JSON.stringify(c)}`);
    assert.equal(g.loss, lossAt(c.x, c.target, c.U, c.W));
  }
});

test("run 1 (10 steps, target 3) converges to the chapter's point", () => {
  const [run1] = runRnnCount(RNN_COUNT_DEFAULTS);
  const r = run1!.result;
  assert.equal(r.diverged, false);
  assert.equal(r.history.length, 150);
  assert.ok(r.history[0]!.loss === 9, `initial loss ${r.history[0]!.loss}`);
  assert.ok(r.finalLoss < 0.01, `final loss ${r.finalLoss}`);
  assert.ok(Math.abs(r.final.U - -2.09) < 0.02 && Math.abs(r.final.W - -0.75) < 0.02, JSON.stringify(r.final));
});

test("run 2 (40 steps, target 12) diverges and is reported, not thrown", () => {
  const run2 = runRnnCount(RNN_COUNT_DEFAULTS)[1]!;
  const r = run2.result;
  assert.equal(run2.spec.sequence.length, 40);
  assert.equal(run2.spec.sequence.filter((v) => v === 1).length, 12);
  assert.equal(r.diverged, true);
  assert.ok(r.divergedEpoch !== null && r.divergedEpoch > 1 && r.divergedEpoch < 150, `epoch ${r.divergedEpoch}`);
  assert.equal(r.history.length, r.divergedEpoch);
  assert.ok(!Number.isFinite(r.final.U) || !Number.isFinite(r.final.W));
  assert.ok(Number.isFinite(r.lastFinite.U) && Number.isFinite(r.lastFinite.W));
  // the gradients grew by many orders of magnitude before the blow-up
  assert.ok(Math.abs(r.history[r.history.length - 2]!.dW) > 1e6 * Math.abs(r.history[0]!.dW));
});

test("run 3 (40 steps, clipped by norm) stays finite and learns", () => {
  const run3 = runRnnCount(RNN_COUNT_DEFAULTS)[2]!;
  const r = run3.result;
  assert.equal(r.diverged, false);
  assert.equal(r.history.length, 150);
  for (const e of r.history) assert.ok(Number.isFinite(e.loss) && Number.isFinite(e.U) && Number.isFinite(e.W));
  assert.ok(r.history.some((e) => e.clipped));
  assert.ok(r.finalLoss < r.history[0]!.loss / 10, `final ${r.finalLoss} vs initial ${r.history[0]!.loss}`);
});

test("clipping by norm bounds every step to lr·maxNorm", () => {
  const r = trainScalarRnn(SEQUENCE_40, 12, { U: -2, W: 0 }, { lr: 0.001, epochs: 40, clipNorm: 3 });
  let prev = { U: -2, W: 0 };
  for (const e of r.history) {
    assert.ok(Math.hypot(e.U - prev.U, e.W - prev.W) <= 0.001 * 3 * (1 + 1e-9));
    prev = e;
  }
});

test("CLI: experiment rnn-count --json writes three SVG plots and the runs summary", async () => {
  const out = await mkdtemp(join(tmpdir(), "rnn-count-"));
  try {
    const r = await runCli(["experiment", "rnn-count", "--out", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json;
    assert.deepEqual(j.runs.map((x: any) => x.name), ["10-step", "40-step", "40-step-clipped"]);
    for (const key of ["name", "diverged", "diverged_epoch", "final_loss", "U", "W"]) assert.ok(key in j.runs[0], key);
    assert.equal(j.runs[0].diverged, false);
    assert.equal(j.runs[0].diverged_epoch, null);
    assert.equal(j.runs[1].diverged, true);
    assert.equal(typeof j.runs[1].diverged_epoch, "number");
    assert.equal(j.runs[1].U, null);
    assert.equal(j.runs[1].non_finite.U, "NaN");
    assert.equal(j.runs[2].diverged, false);
    assert.equal(typeof j.runs[2].final_loss, "number");
    assert.equal(j.plots.length, 3);
    for (const p of j.plots) {
      const svg = await readFile(p, "utf8");
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assert.match(svg, /<polyline /);
      assert.doesNotMatch(svg, /="[^"]*(NaN|Infinity)/, "a non-finite coordinate in " + p);
    }
    assert.match(await readFile(j.plots[1], "utf8"), new RegExp(`NaN/Inf at epoch ${j.runs[1].diverged_epoch}<`));
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("CLI: a bad --lr is a usage error", async () => {
  const r = await runCli(["experiment", "rnn-count", "--lr", "-1", "--out", join(tmpdir(), "never-written")]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--lr must be a positive number/);
});
