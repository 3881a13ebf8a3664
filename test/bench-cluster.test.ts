// `bench cluster` end to end on a small dataset (real coordinator and synthetic GPU worker processes), and the
// bytes a step moves on real IMDB batches: rows pull and push against the whole vector both ways.
import test, { after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runCli, SHARED_ARCHIVE } from "./helpers/cli.js";
import { ingestSmallDataset, type SmallDataset } from "./helpers/training.js";
import { tempDir, cleanup } from "./helpers/fixture.js";
import { runIngest } from "../src/ingest/index.js";
import { openTrainingData } from "../src/dataset/training.js";
import { batchRows } from "../src/engine/rows.js";
import { paramLayout } from "../src/model/layout.js";
import { DEFAULTS } from "../src/config.js";

let fx: SmallDataset;
before(async () => { fx = await ingestSmallDataset("imdb-cluster-", { train: 170, seed: 5, words: [20, 60] }, { batchSize: 8, vocabSize: 300 }); });
after(() => fx?.cleanup());

test("bench cluster: every variant against the dense baseline, efficiency and bytes as they are defined (remote shards included)", async () => {
  const r = await runCli(["bench", "cluster", "--dataset", fx.dataset, "--workers", "1,2", "--steps", "3", "--warmup", "5", "--tokens-per-s", "20000", "--variants", "rows,rows-fp16,rows-remote", "--json"], { timeoutMs: 240_000 });
  assert.equal(r.code, 0, r.stderr);
  const j = r.json;
  assert.equal(j.bench, "cluster");
  assert.deepEqual(j.rows.map((x: { workers: number; variant: string }) => `${x.workers} ${x.variant}`), ["1 dense", "1 rows", "1 rows-fp16", "1 rows-remote", "2 dense", "2 rows", "2 rows-fp16", "2 rows-remote"]);
  for (const row of j.rows) {
    // efficiency is samples/s over N workers' compute-only rate; a step is never shorter than its compute
    assert.ok(Math.abs(row.efficiency - row.samples_per_s / (row.workers * row.compute_samples_per_s)) < 1e-9, JSON.stringify(row));
    assert.ok(row.step_ms >= row.compute_ms * 0.95, JSON.stringify(row));
    // the worker's own handling of a task beyond its compute (parameters in, gradient encoded) is part of a step
    assert.ok(row.worker_ms > 0 && row.compute_ms + row.worker_ms < row.step_ms, JSON.stringify(row));
    assert.equal(row.bytes_per_step, row.pull_bytes_per_step + row.push_bytes_per_step);
    // push and pull are timed per task from both ends (the workers' lines joined to the coordinator's timeline):
    // each takes some time, and together no longer than the step
    assert.ok(row.push_ms > 0 && row.pull_ms > 0 && row.push_ms + row.pull_ms < row.step_ms, JSON.stringify(row));
    // the coordinator's turnaround (last gradient → next step's first task, its clock alone) is part of a step
    assert.ok(row.turnaround_ms > 0 && row.turnaround_ms < row.step_ms, JSON.stringify(row));
    // the wire's floor (the bare exchange of the same bytes around the same compute) is measured where the bytes
    // take the coordinator's link alone; its rounds last longer than the compute they wait
    if (row.variant === "rows-remote") assert.equal(row.floor_efficiency, null);
    else assert.ok(row.floor_ms > 0 && Math.abs(row.floor_efficiency - row.compute_ms / (row.compute_ms + row.floor_ms)) < 1e-9, JSON.stringify(row));
  }
  for (const n of [1, 2]) {
    const at = (v: string) => j.rows.find((x: { workers: number; variant: string }) => x.workers === n && x.variant === v);
    assert.ok(at("rows").push_bytes_per_step < at("dense").push_bytes_per_step, "rows push less than the whole gradient");
    assert.ok(at("rows-fp16").push_bytes_per_step < at("rows").push_bytes_per_step, "half floats push less still");
    // a shard on each worker's host (found through a nats-server): the coordinator's link carries its slice only
    assert.ok(at("rows-remote").push_bytes_per_step < at("rows").push_bytes_per_step * 0.8, "the coordinator receives its slice of the gradients only");
    assert.equal(j.efficiency[n], at("rows").efficiency);
    assert.equal(j.baseline_efficiency[n], at("dense").efficiency);
    assert.equal(j.floor_efficiency[n], at("rows").floor_efficiency);
  }
  assert.equal(j.link_gbps, null);
  assert.equal(j.warmup_steps, 5);
});

test("on real IMDB batches of 64, rows pull and push move over 3× fewer bytes per worker and step than the whole vector both ways (mean over the epoch)", { skip: existsSync(SHARED_ARCHIVE) ? false : `no ${SHARED_ARCHIVE}` }, async (t) => {
  const dir = tempDir("imdb-bytes-");
  try {
    await runIngest({ data: SHARED_ARCHIVE, out: join(dir, "ds"), batchSize: 64 });
    const data = await openTrainingData(join(dir, "ds"));
    const layout = paramLayout({ cell: "lstm", vocabSize: data.vocabSize, embedDim: DEFAULTS.model.embedDim, hidden: DEFAULTS.model.hidden, layers: 1, bidirectional: false });
    const E = DEFAULTS.model.embedDim, D = layout.size - data.vocabSize * E;
    let worst = Infinity, sum = 0;
    for (let i = 0; i < data.count("train"); i++) {
      const b = data.batch("train", i);
      const R = batchRows({ size: b.size, maxLen: b.maxLen, lengths: b.lengths, tokens: b.tokens, targets: new Float32Array(b.size) }, data.vocabSize).length;
      const rows = 2 * ((R * E + D) * 4 + R * 4); // the task's rows and the dense weights out, the same shape back
      const dense = 2 * layout.size * 4;
      worst = Math.min(worst, dense / rows);
      sum += dense / rows;
    }
    t.diagnostic(`bytes per step and worker, dense fp32 ÷ rows: worst batch ${worst.toFixed(2)}×, mean ${(sum / data.count("train")).toFixed(2)}×`);
    const meanRatio = sum / data.count("train");
    assert.ok(meanRatio >= 3, `mean: ${meanRatio.toFixed(2)}×`);
    assert.ok(worst > 1.5, `worst batch: ${worst.toFixed(2)}×`);
  } finally {
    cleanup(dir);
  }
});
