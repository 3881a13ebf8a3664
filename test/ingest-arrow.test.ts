import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeArrowFile, decodeBatchMessage, encodeBatchMessage, readArrowRows, type BatchRows } from "../src/dataset/arrow.js";
import { encodeArrowFile } from "../src/dataset/arrow-writer.js";
import { InputError } from "../src/errors.js";
import { PAD_ID } from "../src/config.js";

const rows1: BatchRows = {
  tokens: [Int32Array.of(5, 6, 7), Int32Array.of(8)], labels: Uint8Array.of(1, 0), ids: Int32Array.of(10, 11),
  ratings: Int8Array.of(9, 2), names: ["train/pos/1_9", "train/neg/ünïcode_2"],
};
const rows2: BatchRows = {
  tokens: [Int32Array.of(40, 30)], labels: Uint8Array.of(0), ids: Int32Array.of(12), ratings: Int8Array.of(1), names: ["train/neg/3_1"],
};
const meta = { vocabHash: "abc123", split: "train" as const, shard: { index: 1, count: 2 } };

test("arrow: a file round-trips to padded batches, names, ratings and metadata", () => {
  const bytes = encodeArrowFile(meta, [rows1, rows2]);
  const { meta: m, batches } = decodeArrowFile(bytes, "x.arrow");
  assert.equal(m.vocabHash, "abc123");
  assert.deepEqual(m.shard, { index: 1, count: 2 });
  assert.deepEqual(batches.map((b) => b.index), [1, 3], "j-th batch of shard k of N is j*N + k");
  const [a, b] = batches;
  assert.equal(a!.maxLen, 3);
  assert.deepEqual([...a!.tokens], [5, 6, 7, 8, PAD_ID, PAD_ID]);
  assert.deepEqual([...a!.lengths], [3, 1]);
  assert.deepEqual([...a!.labels], [1, 0]);
  assert.deepEqual([...a!.ids], [10, 11]);
  assert.deepEqual([...b!.tokens], [40, 30]);
  const r = readArrowRows(bytes);
  assert.deepEqual(r.review, ["train/pos/1_9", "train/neg/ünïcode_2", "train/neg/3_1"]);
  assert.deepEqual(r.rating, [9, 2, 1]);
});

test("arrow: one batch as a NATS message decodes to the same batch", () => {
  const msg = encodeBatchMessage({ ...meta, index: 7 }, rows1);
  const b = decodeBatchMessage(msg);
  assert.equal(b.index, 7);
  assert.equal(b.vocabHash, "abc123");
  assert.deepEqual([...b.tokens], [5, 6, 7, 8, PAD_ID, PAD_ID]);
});

test("arrow: truncated or foreign bytes are an InputError naming the file", () => {
  const bytes = encodeArrowFile(meta, [rows1]);
  for (const bad of [bytes.subarray(0, 100), bytes.subarray(0, bytes.length - 20), new TextEncoder().encode("not arrow at all")]) {
    assert.throws(() => decodeArrowFile(bad, "damaged.arrow"), (e: unknown) => e instanceof InputError && /damaged\.arrow/.test((e as Error).message));
  }
});

test("arrow: the direct file writer gives the bytes of apache-arrow's writer", async () => {
  const { encodeArrowFileReference } = await import("../src/dataset/arrow.js");
  const { Rng } = await import("../src/rng.js");
  const rng = new Rng(11);
  const names = ["train/pos/1_9", "train/neg/ünïcode_2", "test/neg/日本_3", "x"];
  const batch = (): BatchRows => {
    const B = 1 + rng.int(9);
    const tokens = Array.from({ length: B }, () => Int32Array.from({ length: 1 + rng.int(13) }, () => rng.int(50)));
    return {
      tokens, labels: Uint8Array.from(tokens, () => rng.int(2)), ids: Int32Array.from(tokens, () => rng.int(1e6)),
      ratings: Int8Array.from(tokens, () => 1 + rng.int(10)), names: tokens.map(() => names[rng.int(names.length)]! + rng.int(100)),
    };
  };
  for (const n of [1, 2, 5, 17]) {
    const batches = Array.from({ length: n }, batch);
    assert.deepEqual(Buffer.from(encodeArrowFile(meta, batches)), Buffer.from(encodeArrowFileReference(meta, batches)), `${n} batches`);
  }
});

test("arrow: an unlabelled split's files (label all null) match apache-arrow's writer and read back unlabelled", async () => {
  const { encodeArrowFileReference } = await import("../src/dataset/arrow.js");
  const unlabelled = { vocabHash: "abc123", split: "unsup" as const, shard: { index: 0, count: 1 }, labelled: false };
  const zeros = (r: BatchRows): BatchRows => ({ ...r, labels: new Uint8Array(r.labels.length), ratings: new Int8Array(r.ratings.length) });
  const big: BatchRows = {
    tokens: Array.from({ length: 19 }, (_, i) => Int32Array.of(i + 2, 7)), labels: new Uint8Array(19), ids: Int32Array.from({ length: 19 }, (_, i) => 100 + i),
    ratings: new Int8Array(19), names: Array.from({ length: 19 }, (_, i) => `train/unsup/${i}_0`),
  };
  for (const batches of [[zeros(rows1)], [zeros(rows1), zeros(rows2), big]]) {
    const bytes = encodeArrowFile(unlabelled, batches);
    assert.deepEqual(Buffer.from(bytes), Buffer.from(encodeArrowFileReference(unlabelled, batches)), `${batches.length} batches`);
    const { meta: m, batches: read } = decodeArrowFile(bytes, "unsup.arrow");
    assert.equal(m.labelled, false);
    assert.ok(read.every((b) => b.labelled === false && b.labels.every((l) => l === 0)));
    assert.deepEqual(readArrowRows(bytes).label, new Array(read.reduce((n, b) => n + b.size, 0)).fill(null));
  }
  const msg = decodeBatchMessage(encodeBatchMessage({ ...unlabelled, index: 2 }, zeros(rows1)));
  assert.equal(msg.labelled, false);
  // a labelled file says nothing of it
  const { meta: lm, batches: lb } = decodeArrowFile(encodeArrowFile(meta, [rows1]), "train.arrow");
  assert.equal(lm.labelled, true);
  assert.equal(lb[0]!.labelled, undefined);
  assert.deepEqual(readArrowRows(encodeArrowFile(meta, [rows1])).label, [1, 0]);
});
