// The fixture most end-to-end tests start from: a small invented aclImdb layout written to a temporary
// directory and ingested by the real pipeline into an Arrow dataset; then real `imdb-train train` runs on it,
// their saved models, and the parameters those runs started from.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runIngest, type IngestOptions } from "../../src/ingest/index.js";
import { loadModel, type LoadedModel } from "../../src/model/files.js";
import { initParams } from "../../src/model/layout.js";
import { DEFAULTS } from "../../src/config.js";
import { runCli, type CliResult } from "./cli.js";
import { cleanup, makeLayout, tempDir, writeLayoutDir, type LayoutOptions } from "./fixture.js";

export interface SmallDataset {
  /** The temporary directory holding everything (the raw layout, the dataset, the tests' runs). */
  root: string;
  /** The invented aclImdb layout (a directory): `<root>/data`. */
  data: string;
  /** The ingested dataset: `<root>/ds`. */
  dataset: string;
  /** Removes `root`. */
  cleanup(): void;
}

/**
 * Writes `makeLayout(layout)` under a fresh temporary directory and ingests it with `ingest`
 * (valFraction 0.2 and seed 3 unless given).
 */
export async function ingestSmallDataset(prefix: string, layout: LayoutOptions, ingest: Omit<IngestOptions, "data" | "out">): Promise<SmallDataset> {
  const root = tempDir(prefix);
  try {
    const data = writeLayoutDir(join(root, "data"), makeLayout(layout));
    const dataset = join(root, "ds");
    await runIngest({ valFraction: 0.2, seed: 3, ...ingest, data, out: dataset });
    return { root, data, dataset, cleanup: () => cleanup(root) };
  } catch (err) {
    cleanup(root);
    throw err;
  }
}

export interface TrainedRun extends CliResult {
  out: string;
  model: LoadedModel;
  /** The trained parameters (`model.params`). */
  params: Float32Array;
}

/**
 * `imdb-train train --dataset <dataset> --out <out> --json ...args` to its end; asserts that it succeeded and
 * returns its report (`json`), its log and the model it saved.
 */
export async function trainRun(dataset: string, out: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<TrainedRun> {
  const r = await runCli(["train", "--dataset", dataset, "--out", out, "--json", ...args], { timeoutMs: opts.timeoutMs ?? 150_000 });
  assert.equal(r.code, 0, r.stderr);
  const model = loadModel(join(out, "model"));
  return { ...r, out, model, params: model.params };
}

/**
 * The parameters a saved model's run started from: initParams of its model config with the run's --seed and
 * train's default --forget-bias (tests that pass --forget-bias or --glove cannot use this). dist-gradwire
 * checks it against a run whose updates are below float32 resolution.
 */
export function initialParamsOf(model: LoadedModel): Float32Array {
  const seed = model.training.seed;
  assert.equal(typeof seed, "number", `${model.dir}: the training summary records no seed`);
  return initParams(model.model, seed as number, { forgetBias: DEFAULTS.model.forgetBias });
}
