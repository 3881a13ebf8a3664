// The unlabelled split (issue 18): train/unsup/ read with --unsup from the official layout or a second input,
// written as unsup.arrow with null labels, counted into the vocabulary (or not), never in validation, and
// nothing changed without --unsup.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openDataset, runIngest } from "../src/ingest/index.js";
import { readArrowRows } from "../src/dataset/arrow.js";
import { openTrainingData } from "../src/dataset/training.js";
import { tokenize } from "../src/ingest/tokenizer.js";
import { InputError } from "../src/errors.js";
import { Rng } from "../src/rng.js";
import { runCli } from "./helpers/cli.js";
import { cleanup, inventReview, makeLayout, tempDir, writeLayoutDir, writeLayoutTarGz, type FixtureFile } from "./helpers/fixture.js";

/** A word that only the unlabelled reviews use. */
const UNSUP_WORD = "glorpfest";

/** `n` invented unlabelled reviews at aclImdb/train/unsup/<i>_0.txt, each with UNSUP_WORD in it. */
function unsupFiles(n: number, seed = 3): FixtureFile[] {
  const rng = new Rng(seed);
  const enc = new TextEncoder();
  return Array.from({ length: n }, (_, i) => ({
    name: `aclImdb/train/unsup/${i}_0.txt`,
    data: enc.encode(`${inventReview(rng, rng.next() < 0.5, 5 + rng.int(60))} ${UNSUP_WORD} again.`),
  }));
}

const decoder = new TextDecoder();
const textOf = (files: FixtureFile[]) => new Map(files.map((f) => [f.name, decoder.decode(f.data)]));
const rowsOf = (dir: string, file: string) => readArrowRows(readFileSync(join(dir, file)));
const manifestOf = (dir: string) => JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));

test("--unsup: train/unsup/ of one input becomes the unsup split, labels null, never in validation", async () => {
  const dir = tempDir();
  try {
    const labelled = makeLayout({ train: 30, test: 5 });
    const files = [...labelled, ...unsupFiles(40)];
    writeLayoutDir(join(dir, "src"), files);
    const tgz = writeLayoutTarGz(join(dir, "src.tar.gz"), files);
    const opts = { batchSize: 8, valFraction: 0.2, unsup: true };
    const r = await runIngest({ ...opts, data: join(dir, "src"), out: join(dir, "a") });
    const t = await runIngest({ ...opts, data: tgz, out: join(dir, "b") });
    assert.deepEqual([r.train, r.val, r.test, r.unsup], [48, 12, 10, 40]);
    assert.equal(t.datasetId, r.datasetId, "directory and archive give the same dataset");
    assert.equal(r.batches.unsup, 5);

    const out = join(dir, "a");
    const unsup = rowsOf(out, "unsup.arrow");
    assert.equal(unsup.review.length, 40);
    assert.ok(unsup.review.every((n) => n.startsWith("train/unsup/")), "unsup rows are the unlabelled reviews");
    assert.ok(unsup.label.every((l) => l === null), "every label is null");
    assert.ok(unsup.rating.every((x) => x === 0));
    for (const split of ["train", "val", "test"]) {
      const rows = rowsOf(out, `${split}.arrow`);
      assert.ok(rows.review.every((n) => /^(train|test)\/(pos|neg)\//.test(n)), `${split}: labelled reviews only`);
      assert.ok(rows.label.every((l) => l === 0 || l === 1), `${split}: labels present`);
    }
    const m = manifestOf(out);
    assert.equal(m.splits.unsup.labelled, false);
    assert.equal(m.splits.unsup.positive, 0);
    assert.equal(m.splits.train.labelled, undefined, "labelled splits say nothing");
    assert.deepEqual([m.options.unsup, m.options.vocabFrom], [true, "train+unsup"]);
    assert.equal(m.lengthHistogram.counts.unsup.reduce((a: number, b: number) => a + b, 0), 40);

    // the readers: unsup batches unlabelled, tokens as the tokenizer gives them, sample ids unique
    const ds = await openDataset(out);
    assert.deepEqual(ds.splits, ["train", "val", "test", "unsup"]);
    assert.equal(ds.labelled("unsup"), false);
    assert.equal(ds.labelled("train"), true);
    const text = textOf(files);
    const sids = new Set<number>();
    let k = 0;
    for (const b of ds.batches("unsup")) {
      assert.equal(b.labelled, false);
      assert.deepEqual([...b.labels], new Array(b.size).fill(0));
      for (let i = 0; i < b.size; i++, k++) {
        const want = tokenize(text.get(`aclImdb/${unsup.review[k]}.txt`)!).map((w) => ds.vocab.id(w));
        assert.deepEqual([...b.tokens.subarray(i * b.maxLen, i * b.maxLen + b.lengths[i]!)], want, unsup.review[k]);
      }
    }
    assert.equal(k, 40);
    for (const s of ds.splits) for (const b of ds.batches(s)) for (const id of b.ids) { assert.ok(!sids.has(id)); sids.add(id); }
    assert.equal(sids.size, 110);
    for (const b of ds.batches("train")) assert.equal(b.labelled, undefined);
    const td = await openTrainingData(out);
    assert.equal(td.count("unsup"), 5);
    assert.equal(td.samples("unsup"), 40);

    // the labelled reviews keep their sample ids: the unlabelled ones come after them
    const plain = join(dir, "plain");
    await runIngest({ ...opts, unsup: false, data: join(dir, "src"), out: plain });
    for (const split of ["train", "val", "test"]) {
      const a = rowsOf(out, `${split}.arrow`);
      const b = rowsOf(plain, `${split}.arrow`);
      const sid = new Map(b.review.map((n, i) => [n, b.id[i]]));
      assert.equal(a.review.length, b.review.length);
      a.review.forEach((n, i) => assert.equal(a.id[i], sid.get(n), n));
    }
  } finally {
    cleanup(dir);
  }
});

test("the vocabulary counts train (and unsup with train+unsup), never validation", async () => {
  const dir = tempDir();
  try {
    writeLayoutDir(join(dir, "src"), [...makeLayout({ train: 40, words: [5, 80] }), ...unsupFiles(30)]);
    for (const vocabFrom of ["train+unsup", "train"] as const) {
      const out = join(dir, vocabFrom);
      await runIngest({ data: join(dir, "src"), out, batchSize: 8, valFraction: 0.25, unsup: true, vocabFrom });
      const vocab = JSON.parse(readFileSync(join(out, "vocab.json"), "utf8")) as { tokens: string[]; counts: number[] };
      const ds = await openDataset(out);
      const seen = (splits: ("train" | "val" | "unsup")[]) => {
        const n = new Int32Array(vocab.tokens.length);
        for (const s of splits) for (const b of ds.batches(s)) for (let i = 0; i < b.size; i++) for (let t = 0; t < b.lengths[i]!; t++) n[b.tokens[i * b.maxLen + t]!]!++;
        return n;
      };
      const counted = seen(vocabFrom === "train" ? ["train"] : ["train", "unsup"]);
      const withVal = seen(vocabFrom === "train" ? ["train", "val"] : ["train", "val", "unsup"]);
      let differs = 0;
      for (let id = 2; id < vocab.tokens.length; id++) {
        assert.equal(vocab.counts[id], counted[id], `${vocabFrom}: count of "${vocab.tokens[id]}"`);
        if (withVal[id] !== counted[id]) differs++;
      }
      assert.ok(differs > 0, "validation reviews hold tokens the counts leave out");
      assert.equal(vocab.tokens.includes(UNSUP_WORD), vocabFrom === "train+unsup", `${vocabFrom}: the unlabelled-only word`);
    }
  } finally {
    cleanup(dir);
  }
});

test("without --unsup an input with train/unsup/ gives the same dataset as one without it", async () => {
  const dir = tempDir();
  try {
    const labelled = makeLayout({ train: 20, test: 4 });
    writeLayoutTarGz(join(dir, "with.tar.gz"), [...labelled, ...unsupFiles(25)]);
    writeLayoutTarGz(join(dir, "without.tar.gz"), labelled);
    const a = await runIngest({ data: join(dir, "with.tar.gz"), out: join(dir, "a"), batchSize: 8 });
    const b = await runIngest({ data: join(dir, "without.tar.gz"), out: join(dir, "b"), batchSize: 8 });
    assert.equal(a.datasetId, b.datasetId);
    assert.equal(a.unsup, 0);
    const m = manifestOf(join(dir, "a"));
    assert.deepEqual(Object.keys(m.splits), ["train", "val", "test"]);
    assert.equal(m.options.unsup, undefined);
    assert.equal(m.inputs, undefined);
  } finally {
    cleanup(dir);
  }
});

test("a second input with the unlabelled reviews equals one input holding both; errors name what is wrong", async () => {
  const dir = tempDir();
  try {
    const labelled = makeLayout({ train: 20 });
    const unlabelled = unsupFiles(30);
    const a = writeLayoutTarGz(join(dir, "labelled.tar.gz"), labelled);
    const b = writeLayoutTarGz(join(dir, "unsup.tar.gz"), unlabelled);
    writeLayoutDir(join(dir, "both"), [...labelled, ...unlabelled]);
    const opts = { batchSize: 8, unsup: true, maxLen: 20, shards: 2 };
    const two = await runIngest({ ...opts, data: [a, b], out: join(dir, "two") });
    const one = await runIngest({ ...opts, data: join(dir, "both"), out: join(dir, "one") });
    assert.equal(two.datasetId, one.datasetId);
    assert.equal(two.unsup, 30);
    const m = manifestOf(join(dir, "two"));
    assert.deepEqual(m.inputs.map((i: { path: string }) => i.path), [a, b]);
    assert.deepEqual(m.splits.unsup.files, ["unsup-00000-of-00002.arrow", "unsup-00001-of-00002.arrow"]);
    const ds = await openDataset(join(dir, "two"));
    assert.ok(ds.batches("unsup").every((x) => x.maxLen <= 20), "--max-len applies to unsup");
    assert.ok(Math.max(...rowsOf(join(dir, "two"), "unsup-00000-of-00002.arrow").length) <= 20);

    // a damaged unsup file: the labelled splits open; the unsup split fails when first read
    const p = join(dir, "two", "unsup-00001-of-00002.arrow");
    const bytes = readFileSync(p);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(p, bytes);
    const damaged = await openDataset(join(dir, "two"));
    assert.ok(damaged.batches("train").length > 0);
    assert.throws(() => damaged.batches("unsup"), /unsup-00001-of-00002\.arrow: checksum mismatch/);

    const fails = async (o: Parameters<typeof runIngest>[0], re: RegExp) => {
      await assert.rejects(runIngest(o), (e: unknown) => { assert.ok(e instanceof InputError, String(e)); assert.match((e as Error).message, re); return true; });
    };
    await fails({ data: [a, b], out: join(dir, "x") }, /unsup\.tar\.gz: holds only unlabelled reviews \(train\/unsup\/\), which were not asked for: ingest them with --unsup/);
    await fails({ data: a, out: join(dir, "x"), unsup: true }, /labelled\.tar\.gz: --unsup: no unlabelled reviews/);
    await fails({ data: b, out: join(dir, "x"), unsup: true }, /no training reviews/);
    const copy = writeLayoutTarGz(join(dir, "copy.tar.gz"), labelled);
    await fails({ data: [a, copy], out: join(dir, "x") }, /review train\/neg\/0_\d is in two inputs \(.*labelled\.tar\.gz:aclImdb\/train\/neg\/0_\d\.txt and .*copy\.tar\.gz:/);
    await assert.rejects(runIngest({ data: [a, a], out: join(dir, "x") }), /--data .*labelled\.tar\.gz is given twice/);
  } finally {
    cleanup(dir);
  }
});

test("ingest --data A --data B --unsup on the command line; --help says how unsup is stored and counted", async () => {
  const dir = tempDir();
  try {
    const a = writeLayoutTarGz(join(dir, "labelled.tar.gz"), makeLayout({ train: 10 }));
    const b = writeLayoutTarGz(join(dir, "unsup.tar.gz"), unsupFiles(12));
    const r = await runCli(["ingest", "--data", a, "--data", b, "--unsup", "--vocab-from", "train", "--out", join(dir, "ds"), "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.train + r.json.val, r.json.unsup], [20, 12]);
    assert.match(r.stderr, /18 train \+ 2 val \+ 0 test \+ 12 unsup reviews/);
    assert.equal(manifestOf(join(dir, "ds")).options.vocabFrom, "train");
    const bad = await runCli(["ingest", "--data", a, "--unsup", "--vocab-from", "all", "--out", join(dir, "x")]);
    assert.equal(bad.code, 2);
    const help = await runCli(["ingest", "--help"]);
    for (const s of ["--unsup", "--vocab-from", "train/unsup/", "label column all null", "leaks nothing", "--max-unpacked-mb"]) assert.ok(help.stdout.includes(s), s);
  } finally {
    cleanup(dir);
  }
});
