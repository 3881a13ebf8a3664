// Word vectors written in GloVe's text format read back through loadGlove, the classifier's GloVe path,
// bit for bit; bad input leaves nothing behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ModelConfig } from "../src/config.js";
import { PAD_ID, UNK_ID } from "../src/config.js";
import { InputError, UsageError } from "../src/errors.js";
import { initParams, loadGlove, paramLayout, view } from "../src/model/layout.js";
import { float32Text, writeGloveText } from "../src/model/vectors.js";
import { Rng } from "../src/rng.js";

test("float32Text: the shortest text that reads back as the same float32", () => {
  assert.equal(float32Text(0.5), "0.5");
  assert.equal(float32Text(0), "0");
  assert.equal(float32Text(-0.25), "-0.25");
  assert.equal(float32Text(100), "100");
  assert.equal(float32Text(1.5e-7), "1.5e-7");
  assert.equal(float32Text(-7.5e-10), "-7.5e-10");
  assert.equal(float32Text(2e20), "2e+20");
  const rng = new Rng(1);
  for (let i = 0; i < 20_000; i++) {
    const x = Math.fround(rng.normal() * 10 ** (rng.int(12) - 8));
    const s = float32Text(x);
    assert.equal(Math.fround(Number(s)), x, `${x} written as ${s}`);
    assert.ok(s.replace(/^-|e.*$|\./g, "").replace(/^0+/, "").length <= 9, s);
  }
});

test("sgns input vectors → GloVe text → loadGlove into a classifier: the same bits; <unk>, <pad> skipped", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "imdb-vectors-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const vocab = ["<unk>", "<pad>", "the", "movie", "great", "didn't", "!", "10/10"];
  const V = vocab.length, E = 6;
  const sgns: ModelConfig = { cell: "lstm", vocabSize: V, embedDim: E, hidden: 4, layers: 1, bidirectional: false, task: "sgns" };
  const params = initParams(sgns, 3);
  const rng = new Rng(2);
  for (let i = 0; i < params.length; i++) params[i] = Math.fround(rng.normal() * 0.3);
  const path = join(dir, "vectors.txt");
  assert.deepEqual(await writeGloveText(path, vocab, params, sgns), { written: V - 2, dim: E });
  const lines = readFileSync(path, "utf8").split("\n");
  assert.equal(lines.pop(), "");
  assert.deepEqual(lines.map((l) => l.split(" ")[0]), vocab.slice(2));
  assert.ok(lines.every((l) => l.split(" ").length === E + 1));
  assert.deepEqual(readdirSync(dir), ["vectors.txt"]);

  const cls: ModelConfig = { ...sgns, task: undefined };
  const target = initParams(cls, 9);
  const { found, total } = await loadGlove(path, vocab, target, cls);
  assert.deepEqual([found, total], [V - 2, V]);
  const got = view(paramLayout(cls), target, "embedding.weight"), want = view(paramLayout(sgns), params, "embedding.weight");
  for (let id = 0; id < V; id++) {
    const row = [...got.subarray(id * E, (id + 1) * E)];
    if (id === UNK_ID || id === PAD_ID) assert.deepEqual(row, new Array(E).fill(0));
    else assert.deepEqual(row, [...want.subarray(id * E, (id + 1) * E)], `row ${id} (${vocab[id]})`);
  }
  // a language model's embedding writes the same way
  const lm: ModelConfig = { ...sgns, task: "lm" };
  assert.equal((await writeGloveText(join(dir, "lm.txt"), vocab, initParams(lm, 1), lm)).written, V - 2);
});

test("writeGloveText refuses what it cannot write and leaves no file", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "imdb-vectors-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sgns: ModelConfig = { cell: "lstm", vocabSize: 4, embedDim: 2, hidden: 4, layers: 1, bidirectional: false, task: "sgns" };
  const params = initParams(sgns, 1);
  await assert.rejects(writeGloveText(join(dir, "a.txt"), ["<unk>", "<pad>", "x"], params, sgns), /3 tokens but the model has 4/);
  await assert.rejects(writeGloveText(join(dir, "b.txt"), ["<unk>", "<pad>", "x", "two words"], params, sgns), UsageError);
  await assert.rejects(writeGloveText(join(dir, "c.txt"), ["<unk>", "<pad>", "x", "y"], params.subarray(1), sgns), UsageError);
  await assert.rejects(writeGloveText(join(dir, "missing", "d.txt"), ["<unk>", "<pad>", "x", "y"], params, sgns), InputError);
  assert.deepEqual(readdirSync(dir), []);
});
