// Checkpoint and resume with real processes: the coordinator is killed with SIGKILL mid-epoch and restarted
// with --resume; it continues within the epoch with the same data order and ends with the parameters of an
// uninterrupted run of the same seed. A truncated newest checkpoint is detected and the previous one used.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli } from "./helpers/cli.js";
import { ingestSmallDataset, initialParamsOf, type SmallDataset } from "./helpers/training.js";
import { assertMoved, maxAbsDiff as maxDiff } from "./helpers/params.js";
import { loadCheckpoint } from "../src/coordinator/checkpoint.js";
import { loadModel } from "../src/model/files.js";
import { openTrainingData } from "../src/dataset/training.js";
import { EpochSampler } from "../src/coordinator/sampler.js";

let fx: SmallDataset;
let root = "";
let dataset = "";
// 1 worker, 2 batches per step: 12 steps per epoch over 24 batches; a checkpoint every 2 steps
const RUN = ["--workers", "1", "--batches-per-step", "2", "--epochs", "2", "--checkpoint-every", "2", "--hidden", "8", "--embed-dim", "8",
  "--lr", "0.01", "--warmup-steps", "3", "--decay", "cosine", "--seed", "17", "--max-val-batches", "2"];

before(async () => {
  fx = await ingestSmallDataset("imdb-resume-", { train: 60, seed: 31, words: [5, 30] }, { batchSize: 4, vocabSize: 100 });
  ({ root, dataset } = fx);
});

after(() => fx?.cleanup());

// The "moved" floors: Adam moves each value that has a gradient by about the step's learning rate, which here
// warms up over 3 steps (from lr/3) and then decays (cosine) to lr/10 = 0.001 over the 24 steps: an RMS change
// of 0.0005 (half of what the smallest step moves a value) in the recurrent weights and the head, and 0.5% of
// the initial norm overall (dominated by the N(0, 1) embedding), fail a run that did not apply its steps
const MOVED = { minRel: 0.005, tensors: { "rnn.l0.w_hh": 0.0005, "fc.weight": 0.0005 } };

let crashed = "";
// started in the first test beside its own resume (they need the crashed run), checked in the second
let truncatedRun: Promise<{ dir: string; prevStep: number; prevCursor: number; prevParams: Float32Array; r: Awaited<ReturnType<typeof runCli>> }> | null = null;
let corruptRun: Promise<Awaited<ReturnType<typeof runCli>>> | null = null;

test("a coordinator killed with SIGKILL mid-epoch resumes mid-epoch and ends with the uninterrupted run's parameters", async (t) => {
  const full = join(root, "full");
  crashed = join(root, "crashed");
  // the uninterrupted run and the run that will crash, side by side
  const uninterrupted = runCli(["train", "--dataset", dataset, "--out", full, "--backend", "wasm", ...RUN], { timeoutMs: 90_000 });
  const coord = spawnCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--out", crashed, "--step-timeout", "60", ...RUN], { killAfterMs: 90_000 });
  const [, endpoint] = await coord.waitFor(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/);
  const worker = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w0", "--backend", "wasm"], { killAfterMs: 90_000 });
  try {
    // after the second mid-epoch checkpoint, freeze the worker (the coordinator cannot finish the epoch), then
    // kill the coordinator without warning: no exit checkpoint, a step in flight
    await coord.waitFor(/checkpoint \(step\) at step 4, epoch 1, 8 of 24 batches into it/);
    worker.p.kill("SIGSTOP");
    await new Promise((r) => setTimeout(r, 200));
    coord.p.kill("SIGKILL");
    assert.equal(await coord.done, null);
    worker.p.kill("SIGKILL");
    await worker.done;
  } finally {
    await Promise.all([coord, worker].map((p) => p.stop()));
  }
  assert.doesNotMatch(coord.err(), /checkpoint \(exit\)|checkpoint \(epoch\)/, "killed within epoch 1, before any exit checkpoint");
  const ck = loadCheckpoint(join(crashed, "checkpoints", "last.ckpt"));
  t.diagnostic(`newest checkpoint: step ${ck.meta.step}, epoch ${ck.meta.epoch}, cursor ${ck.meta.cursor} (${ck.meta.reason})`);
  assert.equal(ck.meta.reason, "step");
  assert.equal(ck.meta.epoch, 0);
  assert.ok(ck.meta.cursor > 0 && ck.meta.cursor < 24, "a mid-epoch checkpoint");
  assert.ok(ck.meta.step >= 4, `checkpoint of step ${ck.meta.step}, after the one awaited (step 4)`);
  assert.equal(ck.meta.cursor, 2 * ck.meta.step, "2 batches per step, all from epoch 1: the cursor counts them");
  // restart from the crashed run's directory (its own --out: the checkpoints are rewritten as it goes on)
  const resumed = join(root, "resumed");
  cpSync(crashed, resumed, { recursive: true });
  startFallbackRuns();
  const r = await runCli(["train", "--dataset", dataset, "--out", resumed, "--backend", "wasm", "--resume", resumed, "--json", ...RUN], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`resumed from .*last\\.ckpt: step ${ck.meta.step}, epoch 1, ${ck.meta.cursor} of 24 batches into it`));
  assert.match(r.stderr, new RegExp(`epoch 1: resuming after ${ck.meta.cursor} of 24 batches`));
  assert.equal(r.json.steps, 24);
  const u = await uninterrupted;
  assert.equal(u.code, 0, u.stderr);
  const fullModel = loadModel(join(full, "model")), resumedModel = loadModel(join(resumed, "model"));
  const d = maxDiff(fullModel.params, resumedModel.params);
  t.diagnostic(`max |Δ| resumed vs uninterrupted = ${d}`);
  assert.ok(d < 1e-5, `max |Δ| = ${d}`);
  assert.ok(maxDiff(ck.arrays.params!, resumedModel.params) > 1e-4, "training moved the parameters after the resume (the comparison is not vacuous)");
  // by a meaningful amount: from the initialisation over the whole run, and from the checkpoint after the resume
  const opts = { ...MOVED, layout: fullModel.layout };
  t.diagnostic(`from the initialisation: ${assertMoved(initialParamsOf(fullModel), fullModel.params, opts).summary}`);
  t.diagnostic(`after the resume: ${assertMoved(ck.arrays.params!, resumedModel.params, opts).summary}`);
  assert.equal(r.json.epochs[0].steps, 12, "the resumed epoch's summary counts its steps before the crash too");
});

/** Resume from a copy of the crashed run whose newest checkpoint is truncated, and from a lone corrupt one. */
function startFallbackRuns(): void {
  const dir = join(root, "truncated");
  cpSync(crashed, dir, { recursive: true });
  const last = join(dir, "checkpoints", "last.ckpt");
  const prev = loadCheckpoint(join(dir, "checkpoints", "prev.ckpt"));
  const bytes = readFileSync(last);
  writeFileSync(last, bytes.subarray(0, bytes.length - 1000)); // a torn write
  truncatedRun = runCli(["train", "--dataset", dataset, "--out", dir, "--backend", "wasm", "--resume", last, "--json", ...RUN], { timeoutMs: 90_000 })
    .then((r) => ({ dir, prevStep: prev.meta.step, prevCursor: prev.meta.cursor, prevParams: prev.arrays.params!, r }));
  // a corrupt byte (same length) is caught by the checksum, and with no previous checkpoint it is an error naming the file
  const only = join(root, "corrupt", "checkpoints");
  cpSync(join(crashed, "checkpoints", "last.ckpt"), join(only, "last.ckpt"));
  const bad = readFileSync(join(only, "last.ckpt"));
  bad[Math.floor(bad.length / 2)] ^= 0x40;
  writeFileSync(join(only, "last.ckpt"), bad);
  corruptRun = runCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--out", join(root, "corrupt"), "--resume", join(only, "last.ckpt"), ...RUN], { timeoutMs: 30_000 });
}

test("a truncated newest checkpoint is detected; the previous one is used, and the run still ends where it should", async (t) => {
  assert.ok(truncatedRun && corruptRun, "needs the crashed run of the previous test");
  const { dir, prevStep, prevCursor, prevParams, r } = await truncatedRun;
  const prev = { meta: { step: prevStep, cursor: prevCursor } };
  assert.equal(r.code, 0, r.stderr);
  const [line] = r.stderr.match(/[^\n]*checkpoint is truncated[^\n]*using the previous checkpoint[^\n]*/) ?? [""];
  t.diagnostic(line);
  assert.match(line, new RegExp(`last\\.ckpt: checkpoint is truncated .*: using the previous checkpoint .*prev\\.ckpt instead \\(step ${prev.meta.step}\\)`));
  assert.match(r.stderr, new RegExp(`resumed from .*prev\\.ckpt: step ${prev.meta.step}, epoch 1, ${prev.meta.cursor} of 24 batches into it`));
  const model = loadModel(join(dir, "model"));
  const d = maxDiff(loadModel(join(root, "full", "model")).params, model.params);
  t.diagnostic(`max |Δ| vs uninterrupted = ${d}`);
  assert.ok(d < 1e-5, `max |Δ| = ${d}`);
  // not vacuous: the run went on from the previous checkpoint and moved the parameters from there
  t.diagnostic(`after the resume: ${assertMoved(prevParams, model.params, { ...MOVED, layout: model.layout }).summary}`);
  const c = await corruptRun;
  assert.equal(c.code, 3, c.stderr);
  assert.match(c.stderr, /corrupt[\\/]checkpoints[\\/]last\.ckpt: checkpoint checksum mismatch \(corrupt file\)/);
});

test("a run resumed mid-epoch with another step size finishes the epoch in the order it was cut for, each batch once", async (t) => {
  assert.ok(crashed, "needs the crashed run of the first test");
  const ck = loadCheckpoint(join(crashed, "checkpoints", "last.ckpt"));
  assert.equal(ck.meta.orderGroup, 2, "the epoch was cut into steps of 2 (--batches-per-step 2)");
  const dir = join(root, "regrouped");
  cpSync(crashed, dir, { recursive: true });
  const audit = join(dir, "audit.jsonl");
  const three = RUN.map((x, i) => (RUN[i - 1] === "--batches-per-step" ? "3" : x));
  const r = await runCli(["train", "--dataset", dataset, "--out", dir, "--backend", "wasm", "--resume", dir, "--audit", audit, "--json", ...three], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  // the sampler's order for epoch 1, as the crashed run cut it: its first `cursor` batches were done before the crash
  const data = await openTrainingData(dataset);
  const cost = (b: number) => { const x = data.batch("train", b); return x.size * x.maxLen; };
  const order = new EpochSampler(24, 0, 17, { group: 2, cost }).order;
  const after = readFileSync(audit, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; epoch: number; parts: { batches: number[] }[] })
    .filter((a) => a.epoch === 1 && a.step > ck.meta.step);
  const rest = after.flatMap((a) => a.parts.flatMap((p) => p.batches));
  t.diagnostic(`resumed after ${ck.meta.cursor} batches; then steps of ${after.map((a) => a.parts.flatMap((p) => p.batches).length).join(", ")} batches`);
  assert.deepEqual(rest, order.slice(ck.meta.cursor), "the rest of epoch 1, in the order it was cut for steps of 2");
  assert.ok(after.some((a) => a.parts.flatMap((p) => p.batches).length === 3), "steps of 3 batches after the resume");
  assert.equal(loadCheckpoint(join(dir, "checkpoints", "last.ckpt")).meta.orderGroup, 3, "epoch 2 was cut for steps of 3");
});
