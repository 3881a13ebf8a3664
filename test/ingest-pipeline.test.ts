import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { openDataset, runIngest } from "../src/ingest/index.js";
import { readArrowRows } from "../src/dataset/arrow.js";
import { tokenize } from "../src/ingest/tokenizer.js";
import { PAD_ID } from "../src/config.js";
import { cleanup, makeLayout, tempDir, withFile, writeLayoutDir, writeLayoutTarGz } from "./helpers/fixture.js";

test("ingest: directory and .tar.gz inputs give byte-identical datasets", async () => {
  const dir = tempDir();
  try {
    const files = makeLayout({ train: 40, test: 10 });
    writeLayoutDir(join(dir, "src"), files);
    writeLayoutTarGz(join(dir, "src.tar.gz"), files);
    const a = await runIngest({ data: join(dir, "src"), out: join(dir, "a"), batchSize: 8, valFraction: 0.2 });
    const b = await runIngest({ data: join(dir, "src.tar.gz"), out: join(dir, "b"), batchSize: 8, valFraction: 0.2 });
    assert.equal(a.train, 64);
    assert.equal(a.val, 16);
    assert.equal(a.test, 20);
    assert.equal(a.datasetId, b.datasetId);
    // three tokenizer threads with small tasks: their dictionaries merged, the same dataset again
    const c = await runIngest({ data: join(dir, "src.tar.gz"), out: join(dir, "c"), batchSize: 8, valFraction: 0.2, threads: 3, taskReviews: 7 });
    assert.equal(c.datasetId, a.datasetId);
    // tiny tasks and one thread: reading ends with most tasks still waiting and the main thread tokenizes
    // them too (with the merger's dictionary: its ids need no mapping, the pool's are mapped on the pool);
    // twice in this process, each ingest with its own dictionary
    for (const out of ["d", "e"]) {
      const d = await runIngest({ data: join(dir, "src"), out: join(dir, out), batchSize: 8, valFraction: 0.2, threads: 1, taskReviews: 2 });
      assert.ok(d.tokenizeTasks.main > 0 && d.tokenizeTasks.pool > 0, JSON.stringify(d.tokenizeTasks));
      assert.equal(d.tokenizeTasks.main + d.tokenizeTasks.pool, 50);
      assert.equal(d.datasetId, a.datasetId);
    }
    const names = readdirSync(join(dir, "a")).sort();
    assert.deepEqual(names, ["manifest.json", "test.arrow", "train.arrow", "val.arrow", "vocab.json"]);
    for (const n of names.filter((x) => x !== "manifest.json")) {
      assert.ok(readFileSync(join(dir, "a", n)).equals(readFileSync(join(dir, "b", n))), `${n} differs`);
    }
  } finally {
    cleanup(dir);
  }
});

test("ingest: a .tar.gz of several gunzip buffers (some reviews split across two) equals its directory", async () => {
  const dir = tempDir();
  try {
    const files = makeLayout({ train: 700, words: [150, 400], seed: 12 }); // ~4 MB of text: several 1 MiB buffers
    writeLayoutDir(join(dir, "src"), files);
    writeLayoutTarGz(join(dir, "src.tar.gz"), files);
    const a = await runIngest({ data: join(dir, "src"), out: join(dir, "a"), batchSize: 16, valFraction: 0.1 });
    const b = await runIngest({ data: join(dir, "src.tar.gz"), out: join(dir, "b"), batchSize: 16, valFraction: 0.1 });
    assert.equal(b.train + b.val, 1400);
    assert.ok(b.tokenizeTasks.pool + b.tokenizeTasks.main >= 3, JSON.stringify(b.tokenizeTasks));
    assert.equal(b.datasetId, a.datasetId);
  } finally {
    cleanup(dir);
  }
});

test("ingest: reviews with more token ids than bytes (punctuation) read back exactly, from pool and main-thread tasks", async () => {
  const dir = tempDir();
  try {
    let files = makeLayout({ train: 5, words: [3, 12], seed: 4 });
    // one review per task: these two have more than one token per 4 bytes, so their ids need a buffer of their own
    files = withFile(files, "aclImdb/train/pos/100_9.txt", "!?!?!?!?!?,;:()");
    files = withFile(files, "aclImdb/train/neg/100_2.txt", "a-b-c-d-e-f-g !!");
    writeLayoutDir(join(dir, "src"), files);
    const out = join(dir, "ds");
    const r = await runIngest({ data: join(dir, "src"), out, batchSize: 4, threads: 1, taskReviews: 1 });
    assert.equal(r.train + r.val, 12);
    assert.ok(r.tokenizeTasks.main > 0 && r.tokenizeTasks.pool > 0, JSON.stringify(r.tokenizeTasks));
    const ds = await openDataset(out);
    const byName = new Map(files.map((f) => [f.name, new TextDecoder().decode(f.data)]));
    let seen = 0;
    for (const split of ds.splits) {
      const names = readArrowRows(readFileSync(join(out, `${split}.arrow`))).review;
      let k = 0;
      for (const b of ds.batches(split)) {
        for (let i = 0; i < b.size; i++, k++) {
          const want = tokenize(byName.get(`aclImdb/${names[k]}.txt`)!).map((t) => ds.vocab.id(t));
          assert.deepEqual([...b.tokens.subarray(i * b.maxLen, i * b.maxLen + b.lengths[i]!)], want, names[k]);
          if (names[k]!.endsWith("/100_9") || names[k]!.endsWith("/100_2")) seen++;
        }
      }
    }
    assert.equal(seen, 2, "both punctuation reviews were read back");
  } finally {
    cleanup(dir);
  }
});

test("ingest: manifest checksums, counts, labels and tokens read back through openDataset", async () => {
  const dir = tempDir();
  try {
    const files = makeLayout({ train: 50, words: [5, 60] });
    writeLayoutDir(join(dir, "src"), files);
    const out = join(dir, "ds");
    const r = await runIngest({ data: join(dir, "src"), out, batchSize: 16, valFraction: 0.1, seed: 5, vocabSize: 30 });
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    for (const [name, info] of Object.entries(manifest.files) as [string, { sha256: string; bytes: number }][]) {
      const bytes = readFileSync(join(out, name));
      assert.equal(createHash("sha256").update(bytes).digest("hex"), info.sha256, name);
      assert.equal(bytes.length, info.bytes);
    }
    assert.equal(manifest.splits.train.reviews, 90);
    assert.equal(manifest.splits.val.reviews, 10);
    assert.equal(r.vocab, 32);
    assert.equal(manifest.lengthHistogram.counts.train.reduce((s: number, x: number) => s + x, 0), 90);

    const ds = await openDataset(out);
    assert.equal(ds.vocab.size, 32);
    assert.deepEqual(ds.splits, ["train", "val"]);
    const byName = new Map(files.map((f) => [f.name, new TextDecoder().decode(f.data)]));
    const ids = new Set<number>();
    let rows = 0;
    for (const split of ds.splits) {
      const rowsView = readArrowRows(readFileSync(join(out, `${split}.arrow`)));
      let k = 0;
      for (const b of ds.batches(split)) {
        assert.equal(b.tokens.length, b.size * b.maxLen);
        for (let i = 0; i < b.size; i++, k++) {
          assert.ok(!ids.has(b.ids[i]!), "sample ids unique");
          ids.add(b.ids[i]!);
          const name = rowsView.review[k]!;
          assert.equal(b.labels[i], name.split("/")[1] === "pos" ? 1 : 0, "label from the folder");
          const want = tokenize(byName.get(`aclImdb/${name}.txt`)!).map((t) => ds.vocab.id(t));
          assert.equal(b.lengths[i], want.length);
          assert.deepEqual([...b.tokens.subarray(i * b.maxLen, i * b.maxLen + want.length)], want);
          for (let t = want.length; t < b.maxLen; t++) assert.equal(b.tokens[i * b.maxLen + t], PAD_ID);
        }
      }
      rows += k;
    }
    assert.equal(rows, 100);
    // a damaged file is detected by its checksum
    const p = join(out, "val.arrow");
    const bytes = readFileSync(p);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(p, bytes);
    await assert.rejects(openDataset(out), /val\.arrow: checksum mismatch/);
  } finally {
    cleanup(dir);
  }
});

test("ingest: shards, max-len truncation, seeded split, existing --out needs force", async () => {
  const dir = tempDir();
  try {
    const files = makeLayout({ train: 40, words: [20, 80] });
    writeLayoutDir(join(dir, "src"), files);
    const out = join(dir, "ds");
    const r = await runIngest({ data: join(dir, "src"), out, batchSize: 4, maxLen: 30, shards: 3 });
    assert.ok(existsSync(join(out, "train-00000-of-00003.arrow")) && existsSync(join(out, "train-00002-of-00003.arrow")));
    assert.ok(!existsSync(join(out, "train.arrow")));
    // exactly the reviews of more than 30 tokens were cut
    const longer = files.filter((f) => f.name.endsWith(".txt") && tokenize(new TextDecoder().decode(f.data)).length > 30).length;
    assert.ok(longer > 0 && longer < 80, `${longer} of the 80 reviews are longer than --max-len: the fixture tests both cases`);
    assert.equal(r.repaired.truncated, longer);
    const ds = await openDataset(out);
    const all = ds.batches("train");
    assert.deepEqual(all.map((b) => b.index), all.map((_, i) => i));
    for (const b of all) assert.ok(b.maxLen <= 30);
    assert.equal(all.length, r.batches.train);
    const s1 = ds.batches("train", { index: 1, count: 3 });
    assert.equal(s1.length, Math.floor((all.length + 1) / 3), `${all.length} batches: indices 1, 4, 7, … in shard 1 of 3`);
    assert.deepEqual(s1.map((b) => b.index), all.filter((b) => b.index % 3 === 1).map((b) => b.index), "shard 1 of 3: every third batch, from the second");
    assert.deepEqual(s1.map((b) => [...b.ids]), all.filter((b) => b.index % 3 === 1).map((b) => [...b.ids]));
    await assert.rejects(runIngest({ data: join(dir, "src"), out }), /already exists; pass --force/);
    const again = await runIngest({ data: join(dir, "src"), out, batchSize: 4, maxLen: 30, shards: 3, force: true });
    assert.equal(again.datasetId, r.datasetId, "same input and options, same dataset");
    const other = await runIngest({ data: join(dir, "src"), out, batchSize: 4, maxLen: 30, shards: 3, force: true, seed: 99 });
    assert.notEqual(other.datasetId, r.datasetId);
    assert.deepEqual(readdirSync(dir).sort(), ["ds", "src"], "no temporary directories left");
    // more shards than batches, and no validation split: empty files read back as no batches
    const tiny = await runIngest({ data: join(dir, "src"), out: join(dir, "tiny"), batchSize: 64, shards: 3, valFraction: 0 });
    assert.equal(tiny.val, 0);
    const tds = await openDataset(join(dir, "tiny"));
    assert.equal(tds.batches("train").length, 2);
    assert.deepEqual(tds.batches("train").map((b) => b.index), [0, 1]);
    assert.equal(tds.batches("val").length, 0);
  } finally {
    cleanup(dir);
  }
});

test("ingest: --keep first|last keeps that end of a review longer than --max-len", async () => {
  const dir = tempDir();
  try {
    const files = makeLayout({ train: 12, words: [5, 40] });
    writeLayoutDir(join(dir, "src"), files);
    const byName = new Map(files.map((f) => [f.name, new TextDecoder().decode(f.data)]));
    let cut = 0;
    for (const keep of ["first", "last"] as const) {
      const out = join(dir, keep);
      await runIngest({ data: join(dir, "src"), out, batchSize: 4, maxLen: 12, valFraction: 0, keep });
      assert.equal(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).options.keep, keep);
      const ds = await openDataset(out);
      const names = readArrowRows(readFileSync(join(out, "train.arrow"))).review;
      let k = 0;
      for (const b of ds.batches("train")) {
        for (let i = 0; i < b.size; i++, k++) {
          const all = tokenize(byName.get(`aclImdb/${names[k]!}.txt`)!).map((t) => ds.vocab.id(t));
          const want = all.length <= 12 ? all : keep === "first" ? all.slice(0, 12) : all.slice(all.length - 12);
          if (all.length > 12) cut++;
          assert.deepEqual([...b.tokens.subarray(i * b.maxLen, i * b.maxLen + b.lengths[i]!)], want, `${keep}: ${names[k]}`);
        }
      }
    }
    assert.ok(cut > 0, "some reviews were longer than --max-len");
    await assert.rejects(runIngest({ data: join(dir, "src"), out: join(dir, "bad"), keep: "middle" as never }), /--keep must be first or last, got middle/);
  } finally {
    cleanup(dir);
  }
});
