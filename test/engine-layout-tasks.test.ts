// Parameter layouts of the three tasks: the classifier's stays what it was (names, offsets, hash, init bits),
// the language model shares its embedding and recurrent tensors by name and offset, sgns has two tables.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { ModelConfig } from "../src/config.js";
import { PAD_ID } from "../src/config.js";
import { UnavailableError, UsageError } from "../src/errors.js";
import { exportLayersModel } from "../src/model/export.js";
import { copyByName, initParams, paramLayout, view } from "../src/model/layout.js";

const CLS: ModelConfig = { cell: "lstm", vocabSize: 25_002, embedDim: 100, hidden: 256, layers: 1, bidirectional: false };
const shape = (cfg: ModelConfig) => paramLayout(cfg).entries.map((e) => `${e.name}:${e.shape.join("x")}@${e.offset}${e.rowSparse ? "*" : ""}`);
const sha = (a: Float32Array) => createHash("sha256").update(a).digest("hex").slice(0, 16);

test("classifier layouts, hashes and initial values are those of before tasks existed", () => {
  // Hashes and init checksums recorded from the layout code before the task field was added.
  assert.equal(paramLayout(CLS).hash, "3ff653d3fc55bb3c");
  assert.equal(paramLayout(CLS).size, 2_867_049);
  assert.equal(paramLayout({ ...CLS, task: "classify" }).hash, "3ff653d3fc55bb3c");
  assert.equal(paramLayout({ cell: "gru", vocabSize: 30, embedDim: 6, hidden: 8, layers: 2, bidirectional: true }).hash, "eef791125297cf5e");
  assert.equal(paramLayout({ cell: "lstm", vocabSize: 0, embedDim: 0, hidden: 20, layers: 1, bidirectional: false, inputDim: 1 }).hash, "bcf8cf4be8fcbad5");
  const small = { ...CLS, vocabSize: 2000 };
  assert.equal(sha(initParams(small, 1234)), "1a670389bcd23c82");
  assert.equal(sha(initParams(small, 1234, { forgetBias: 1 })), "713c1a3fda1dbdb0");
  assert.equal(sha(initParams({ ...small, task: "classify" }, 1234, { forgetBias: 1 })), "713c1a3fda1dbdb0");
  assert.deepEqual(shape(CLS), ["embedding.weight:25002x100@0*", "rnn.l0.w_ih:100x1024@2500200", "rnn.l0.w_hh:256x1024@2602600",
    "rnn.l0.b_ih:1024@2864744", "rnn.l0.b_hh:1024@2865768", "fc.weight:256x1@2866792", "fc.bias:1@2867048"]);
});

test("lm layout: the classifier's embedding and recurrent tensors at the same offsets, then lm.weight [V,H] and lm.bias [V]", () => {
  const lm: ModelConfig = { ...CLS, task: "lm" };
  const l = shape(lm), c = shape(CLS);
  assert.deepEqual(l.slice(0, 5), c.slice(0, 5));
  assert.deepEqual(l.slice(5), ["lm.weight:25002x256@2866792*", "lm.bias:25002@9267304*"]);
  assert.notEqual(paramLayout(lm).hash, paramLayout(CLS).hash);
  assert.notEqual(paramLayout({ ...lm, cell: "gru" }).hash, paramLayout(lm).hash);
  // task settings are not part of the layout
  assert.equal(paramLayout({ ...lm, lmSamples: 9, lmSampler: "log-uniform" }).hash, paramLayout(lm).hash);
  assert.deepEqual(shape({ ...lm, layers: 2, cell: "gru" }).slice(-2), ["lm.weight:25002x256@3169896*", "lm.bias:25002@9570408*"]);
  assert.throws(() => paramLayout({ ...lm, bidirectional: true }), (e: unknown) => e instanceof UsageError && /bidirectional/.test((e as Error).message));
  assert.throws(() => paramLayout({ ...lm, inputDim: 3 }), UsageError);
  assert.throws(() => paramLayout({ ...CLS, task: "mlm" as ModelConfig["task"] }), /task must be classify, lm or sgns/);
});

test("sgns layout: input and context tables, both row-sparse; its hash ignores the recurrent settings", () => {
  const sg: ModelConfig = { ...CLS, task: "sgns" };
  assert.deepEqual(shape(sg), ["embedding.weight:25002x100@0*", "context.weight:25002x100@2500200*"]);
  assert.equal(paramLayout({ ...sg, cell: "gru", hidden: 7, layers: 2 }).hash, paramLayout(sg).hash);
  assert.notEqual(paramLayout(sg).hash, paramLayout({ ...sg, embedDim: 50 }).hash);
  assert.notEqual(paramLayout(sg).hash, paramLayout(CLS).hash);
});

test("initialisation of lm and sgns: seeded, word2vec's ranges, log-unigram bias from counts", () => {
  const V = 50, E = 8, H = 16;
  const sg: ModelConfig = { cell: "lstm", vocabSize: V, embedDim: E, hidden: H, layers: 1, bidirectional: false, task: "sgns" };
  const p = initParams(sg, 5), L = paramLayout(sg);
  assert.deepEqual(p, initParams(sg, 5));
  assert.notDeepEqual(p, initParams(sg, 6));
  const inV = view(L, p, "embedding.weight");
  assert.ok(inV.every((x) => Math.abs(x) <= 0.5 / E));
  assert.ok(inV.subarray(PAD_ID * E, (PAD_ID + 1) * E).every((x) => x === 0));
  assert.ok(inV.filter((x) => x !== 0).length > (V - 1) * E - 2, "every other input vector is drawn");
  assert.ok(view(L, p, "context.weight").every((x) => x === 0));

  const lm: ModelConfig = { ...sg, task: "lm" };
  const q = initParams(lm, 5), M = paramLayout(lm);
  const w = view(M, q, "lm.weight");
  assert.ok(w.every((x) => Math.abs(x) <= 1 / Math.sqrt(H)) && new Set(w).size > w.length - 5);
  assert.ok(view(M, q, "lm.bias").every((x) => x === 0));
  // the shared prefix is initialised exactly as the classifier's (same stream, same order)
  const cls = initParams({ ...lm, task: "classify" }, 5);
  const shared = M.entries.find((e) => e.name === "lm.weight")!.offset;
  assert.deepEqual(q.subarray(0, shared), cls.subarray(0, shared));
  const counts = Array.from({ length: V }, (_, i) => (i === PAD_ID ? 0 : 1000 - 10 * i));
  const b = view(M, initParams(lm, 5, { counts }), "lm.bias");
  let total = 0;
  for (const x of b) total += Math.exp(x);
  assert.ok(Math.abs(total - 1) < 1e-5, `exp(bias) sums to ${total}`);
  assert.ok(b[2] > b[3] && Math.abs(b[2] - b[3] - Math.log(980 / 970)) < 1e-5);
  assert.throws(() => initParams(lm, 5, { counts: counts.slice(1) }), UsageError);
});

test("copyByName: a language model's embedding and recurrent layers into a classifier, its head left alone", () => {
  const cls: ModelConfig = { cell: "lstm", vocabSize: 20, embedDim: 4, hidden: 6, layers: 1, bidirectional: false };
  const lm: ModelConfig = { ...cls, task: "lm" };
  const from = { layout: paramLayout(lm), params: initParams(lm, 1) };
  const to = { layout: paramLayout(cls), params: initParams(cls, 2) };
  const before = Float32Array.from(to.params);
  const names = copyByName(from, to);
  assert.deepEqual(names, ["embedding.weight", "rnn.l0.w_ih", "rnn.l0.w_hh", "rnn.l0.b_ih", "rnn.l0.b_hh"]);
  for (const n of names) assert.deepEqual(view(to.layout, to.params, n), view(from.layout, from.params, n));
  for (const n of ["fc.weight", "fc.bias"]) assert.deepEqual(view(to.layout, to.params, n), view(to.layout, before, n));
  assert.throws(() => copyByName(from, { layout: paramLayout({ ...cls, hidden: 5 }), params: initParams({ ...cls, hidden: 5 }, 1) }), /rnn.l0.w_ih is 4x24 in the source model but 4x20/);
});

test("the TensorFlow.js export is for classifiers: a pretraining model is refused before anything is written", async () => {
  for (const task of ["lm", "sgns"] as const) {
    const cfg: ModelConfig = { cell: "lstm", vocabSize: 5, embedDim: 2, hidden: 3, layers: 1, bidirectional: false, task };
    await assert.rejects(exportLayersModel("/nonexistent/tfjs", cfg, initParams(cfg, 1), ["<unk>", "<pad>", "a", "b", "c"]), (e: unknown) => e instanceof UnavailableError && /task is/.test((e as Error).message));
  }
});
