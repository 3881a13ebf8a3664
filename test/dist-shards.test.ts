// A sharded coordinator (--coordinator-shards 3: the coordinator and two shard processes, each owning a slice
// of the parameters) trains to the parameters of an unsharded run: real processes and ZeroMQ sockets.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.js";
import { makeLayout, writeLayoutDir, tempDir, cleanup } from "./helpers/fixture.js";
import { runIngest } from "../src/ingest/index.js";
import { sliceBounds } from "../src/coordinator/shards.js";
import { loadModel } from "../src/model/files.js";

let root = "";
let dataset = "";
// clip 0.05: the global norm is over the clip limit, so every step needs the norm the shards agree on
const SMALL = ["--hidden", "16", "--embed-dim", "8", "--epochs", "1", "--max-steps", "5", "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--clip", "0.05", "--seed", "9", "--max-val-batches", "1"];

before(async () => {
  root = tempDir("imdb-shards-");
  const data = writeLayoutDir(join(root, "data"), makeLayout({ train: 48, test: 8, seed: 17, words: [5, 40] }));
  dataset = join(root, "ds");
  await runIngest({ data, out: dataset, batchSize: 4, vocabSize: 200, valFraction: 0.2, seed: 3, maxLen: 30 });
});

after(() => cleanup(root));

test("sliceBounds: k balanced slices starting at multiples of 4, covering the vector", () => {
  assert.deepEqual(sliceBounds(10, 1), [{ offset: 0, length: 10 }]);
  const b = sliceBounds(4194, 3);
  assert.deepEqual(b.map((x) => x.offset % 4), [0, 0, 0]);
  assert.equal(b.reduce((n, x) => n + x.length, 0), 4194);
  for (let i = 1; i < b.length; i++) assert.equal(b[i]!.offset, b[i - 1]!.offset + b[i - 1]!.length);
});

async function train(name: string, extra: string[]): Promise<{ params: Float32Array; json: any; stderr: string }> {
  const out = join(root, name);
  const r = await runCli(["train", "--dataset", dataset, "--out", out, "--workers", "2", "--backend", "wasm", "--json", ...SMALL, ...extra], { timeoutMs: 150_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.steps, 5);
  return { params: loadModel(join(out, "model")).params, json: r.json, stderr: r.stderr };
}

test("--coordinator-shards 3 ends with the unsharded run's parameters (within 1e-5); no process got the whole gradient", async (t) => {
  const one = await train("one", []);
  const three = await train("three", ["--coordinator-shards", "3"]);
  assert.match(three.stderr, /2 coordinator shard\(s\) at tcp:\/\/127\.0\.0\.1:\d+, tcp:\/\/127\.0\.0\.1:\d+/);
  let max = 0;
  for (let i = 0; i < one.params.length; i++) max = Math.max(max, Math.abs(one.params[i]! - three.params[i]!));
  t.diagnostic(`max |Δ| = ${max}; gradient bytes at the coordinator: unsharded ${one.json.gradient_bytes}, sharded ${three.json.gradient_bytes}`);
  assert.ok(max < 1e-5, `max |Δ| = ${max}`);
  const own = sliceBounds(one.params.length, 3)[0]!.length;
  assert.equal(three.json.gradient_bytes, 5 * 2 * own * 4, "the coordinator received only its slice of each gradient");
});
