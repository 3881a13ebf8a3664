// A sharded coordinator (--coordinator-shards 3: the coordinator and two shard processes, each owning a slice
// of the parameters) trains to the parameters of an unsharded run, with the default row pull and row gradients
// and with the whole vector both ways: real processes and ZeroMQ sockets.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ingestSmallDataset, trainRun, initialParamsOf, type SmallDataset } from "./helpers/training.js";
import { assertMoved, maxAbsDiff } from "./helpers/params.js";
import { sliceBounds, sliceView } from "../src/protocol/slices.js";
import { sparseBlockOf } from "../src/protocol/gradcodec.js";

let fx: SmallDataset;
// clip 0.05: the global norm is over the clip limit, so every step needs the norm the shards agree on
const SMALL = ["--hidden", "16", "--embed-dim", "8", "--epochs", "1", "--max-steps", "5", "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--clip", "0.05", "--seed", "9", "--max-val-batches", "1"];

before(async () => {
  fx = await ingestSmallDataset("imdb-shards-", { train: 48, test: 8, seed: 17, words: [5, 40] }, { batchSize: 4, vocabSize: 200, maxLen: 30 });
});

after(() => fx?.cleanup());

test("sliceBounds: k balanced slices starting at multiples of 4, covering the vector", () => {
  assert.deepEqual(sliceBounds(10, 1), [{ offset: 0, length: 10 }]);
  const b = sliceBounds(4194, 3);
  assert.deepEqual(b.map((x) => x.offset % 4), [0, 0, 0]);
  assert.equal(b.reduce((n, x) => n + x.length, 0), 4194);
  for (let i = 1; i < b.length; i++) assert.equal(b[i]!.offset, b[i - 1]!.offset + b[i - 1]!.length);
});

async function train(name: string, extra: string[], small = SMALL) {
  const r = await trainRun(fx.dataset, join(fx.root, name), ["--workers", "2", "--backend", "wasm", ...small, ...extra]);
  assert.equal(r.json.steps, 5);
  return r;
}

let one: Awaited<ReturnType<typeof train>> | undefined;
const unsharded = async () => (one ??= await train("one", []));

test("--coordinator-shards 3 with the whole vector both ways ends with the unsharded run's parameters (within 1e-5); no process got the whole gradient", async (t) => {
  const one = await unsharded();
  const three = await train("three", ["--coordinator-shards", "3", "--pull", "dense", "--embedding-grads", "dense"]);
  assert.match(three.stderr, /2 coordinator shard\(s\) at tcp:\/\/127\.0\.0\.1:\d+, tcp:\/\/127\.0\.0\.1:\d+/);
  const max = maxAbsDiff(one.params, three.params);
  t.diagnostic(`max |Δ| = ${max}; gradient bytes at the coordinator: unsharded ${one.json.gradient_bytes}, sharded ${three.json.gradient_bytes}`);
  assert.ok(max < 1e-5, `max |Δ| = ${max}`);
  // not vacuous: the 5 steps moved the parameters, in every process's slice. Clipping does not shrink Adam's
  // steps (they are invariant to the gradient's scale), so the first step alone moves each value that has a
  // gradient by lr = 0.01; the floors are an RMS change of half that in the recurrent weights and the head, and
  // 1% of the initial norm of the whole vector and of each slice
  const init = initialParamsOf(three.model);
  const moved = assertMoved(init, three.params, { minRel: 0.01, layout: three.model.layout, tensors: { "rnn.l0.w_hh": 0.005, "fc.weight": 0.005 } });
  t.diagnostic(moved.summary);
  for (const [k, b] of sliceBounds(init.length, 3).entries()) {
    const slice = (p: Float32Array) => p.subarray(b.offset, b.offset + b.length);
    t.diagnostic(`slice ${k}: ${assertMoved(slice(init), slice(three.params), { minRel: 0.01 }).summary}`);
  }
  const own = sliceBounds(one.params.length, 3)[0]!.length;
  assert.equal(three.json.gradient_bytes, 5 * 2 * own * 4, "the coordinator received only its slice of each gradient");
});

// wider embeddings: the leader's slice and a shard's hold embedding rows (the shard's with dense values after them)
const WIDE = SMALL.map((a, i) => (SMALL[i - 1] === "--embed-dim" ? "48" : a));

test("--coordinator-shards 3 with row pull and row gradients (the default) ends with the unsharded run's parameters; each process got only its slice's touched rows", async (t) => {
  const one = await train("rows1", [], WIDE);
  const three = await train("rows3", ["--coordinator-shards", "3"], WIDE);
  const max = maxAbsDiff(one.params, three.params);
  t.diagnostic(`max |Δ| = ${max}; gradient bytes at the coordinator: unsharded ${one.json.gradient_bytes}, sharded ${three.json.gradient_bytes}`);
  assert.ok(max < 1e-5, `max |Δ| = ${max}`);
  const init = initialParamsOf(three.model);
  const block = sparseBlockOf(three.model.layout)!;
  // the slices as the coordinator cut them (balanced in the bytes a task moves: ../src/protocol/slices.ts)
  const cut = /coordinator shard\(s\) at \S+, \S+: slices \[(\d+), (\d+)\) \[(\d+), (\d+)\) \[(\d+), (\d+)\)/.exec(three.stderr);
  assert.ok(cut, three.stderr);
  const views = [0, 1, 2].map((i) => sliceView({ offset: Number(cut[1 + 2 * i]), length: Number(cut[2 + 2 * i]) - Number(cut[1 + 2 * i]) }, block));
  assert.ok(views[0]!.block, `the coordinator's slice holds embedding rows: ${JSON.stringify(views)}`);
  for (const [k, v] of views.entries()) {
    const slice = (p: Float32Array) => p.subarray(v.offset, v.offset + v.length);
    t.diagnostic(`slice ${k} (${v.block ? `${v.block.rows} rows from ${v.firstRow}` : "no rows"}): ${assertMoved(slice(init), slice(three.params), { minRel: 0.01 }).summary}`);
  }
  // the coordinator's slice is embedding rows only: it received some of them, never the whole slice
  const dense = 5 * 2 * views[0]!.length * 4;
  assert.ok(three.json.gradient_bytes > 0 && three.json.gradient_bytes < dense, `${three.json.gradient_bytes} bytes, a dense slice would be ${dense}`);
});

test("sharded with a clip never reached is the unsharded run bit for bit (the norm's order only decides the clip): row pull, and row gradients with dense pulls, where a shard sums embedding rows", async () => {
  const a = await train("noclip1", ["--clip", "1000"], WIDE);
  const b = await train("noclip3", ["--clip", "1000", "--coordinator-shards", "3"], WIDE);
  assert.equal(maxAbsDiff(a.params, b.params), 0);
  assertMoved(initialParamsOf(b.model), b.params, { minRel: 0.01 });
  // slices balanced in values (dense pulls): the second holds the last rows and dense values
  const c = await train("noclip3dense", ["--clip", "1000", "--coordinator-shards", "3", "--pull", "dense"], WIDE);
  const block = sparseBlockOf(c.model.layout)!;
  const view = sliceView(sliceBounds(c.params.length, 3, block)[1]!, block);
  assert.ok(view.block && view.firstRow > 0 && view.length > view.block.rows * block.width, JSON.stringify(view));
  assert.match(c.stderr, new RegExp(`slices \\[0, ${view.offset}\\) \\[${view.offset}, ${view.offset + view.length}\\)`));
  assert.equal(maxAbsDiff(a.params, c.params), 0);
});
