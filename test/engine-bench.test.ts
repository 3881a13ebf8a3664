// `bench engine` end to end through the real CLI, on a tiny model (the contract of its --json line).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { runCli, SHARED_ARCHIVE } from "./helpers/cli.js";

test("bench engine --json: engine vs tf.layers on real batches, ratio and reference check", { skip: !existsSync(SHARED_ARCHIVE) && `no archive at ${SHARED_ARCHIVE}` }, async () => {
  const r = await runCli(["bench", "engine", "--data", SHARED_ARCHIVE, "--backend", "wasm", "--hidden", "8", "--embed-dim", "4",
    "--vocab-size", "2000", "--batch-size", "16", "--quantiles", "0.5", "--steps", "1", "--baseline-steps", "1", "--json"], { timeoutMs: 180_000 });
  assert.equal(r.code, 0, r.stderr);
  const j = r.json;
  assert.equal(j.bench, "engine");
  assert.equal(j.backend, "wasm");
  assert.equal(j.batch_size, 16);
  assert.equal(j.cases.length, 1);
  const c = j.cases[0];
  assert.ok(c.length >= 150 && c.length <= 260, `median-length batch, T=${c.length}`);
  for (const k of ["samples_per_s", "baseline_samples_per_s", "ratio"]) assert.ok(j[k] > 0, `${k} = ${j[k]}`);
  assert.ok(Math.abs(j.ratio - j.samples_per_s / j.baseline_samples_per_s) < 1e-9 * j.ratio);
  // the figures are the batch over the timed step of each side (one case: the totals are that case's)
  const near = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.abs(b);
  assert.ok(near(j.samples_per_s, 16 / c.engine_step_s) && near(c.samples_per_s, j.samples_per_s), `${j.samples_per_s} samples/s, step ${c.engine_step_s} s`);
  assert.ok(near(j.baseline_samples_per_s, 16 / c.baseline_step_s) && near(c.baseline_samples_per_s, j.baseline_samples_per_s), `baseline ${j.baseline_samples_per_s} samples/s, step ${c.baseline_step_s} s`);
  assert.ok(c.loss_rel_diff < 1e-5 && c.correct_agrees === true);
});

test("bench engine refuses bad options with a usage error", async () => {
  const r = await runCli(["bench", "engine", "--quantiles", "2"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /quantiles/);
});
