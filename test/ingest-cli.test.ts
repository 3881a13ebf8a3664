import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli, SHARED_ARCHIVE } from "./helpers/cli.js";
import { freePort } from "./helpers/nats.js";
import { cleanup, makeLayout, tempDir, writeLayoutDir, writeLayoutTarGz } from "./helpers/fixture.js";
import { openDataset } from "../src/ingest/index.js";

test("ingest --help explains the command and its examples", async () => {
  const r = await runCli(["ingest", "--help"]);
  assert.equal(r.code, 0);
  for (const s of ["--data", "--out", "--vocab-size", "--publish", "--shards", "IMDB_BATCHES", "Examples:"]) assert.ok(r.stdout.includes(s), s);
  const b = await runCli(["bench", "ingest", "--help"]);
  assert.equal(b.code, 0);
  assert.match(b.stdout, /python3/);
});

test("bench ingest --json on a small archive: both sides count the same reviews; best, first run and ratios agree", async () => {
  const dir = tempDir();
  try {
    const data = writeLayoutTarGz(join(dir, "small.tar.gz"), makeLayout({ train: 30, test: 5 }));
    const r = await runCli(["bench", "ingest", "--data", data, "--runs", "2", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.equal(j.bench, "ingest");
    assert.equal(j.reviews, 70);
    assert.equal(j.baseline.reviews, 70, "the python baseline read the same reviews");
    assert.equal(j.runs, 2);
    assert.ok(j.seconds > 0 && j.first_seconds >= j.seconds, `best ${j.seconds} s, first ${j.first_seconds} s`);
    assert.ok(Math.abs(j.ratio - j.baseline_seconds / j.seconds) < 1e-9);
    assert.ok(Math.abs(j.first_ratio - j.baseline_seconds / j.first_seconds) < 1e-9);
    assert.equal(j.tokenize_tasks.pool + j.tokenize_tasks.main, 1, "70 reviews fit one task");
    assert.match(r.stderr, /first run [0-9.]+ s/);
  } finally {
    cleanup(dir);
  }
});

test("ingest without --data offline: fails fast, tells the user to pass --data, caches nothing", async () => {
  const dir = tempDir();
  try {
    const url = `http://127.0.0.1:${await freePort()}/aclImdb_v1.tar.gz`; // nothing listens there
    const started = Date.now();
    const r = await runCli(["ingest", "--out", join(dir, "ds")], { env: { IMDB_TRAIN_DATA_URL: url, IMDB_TRAIN_CACHE: join(dir, "cache") } });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /cannot download the IMDB archive/);
    assert.match(r.stderr, /pass --data/);
    assert.ok(Date.now() - started < 60_000);
    assert.ok(!existsSync(join(dir, "ds")));
    assert.deepEqual(existsSync(join(dir, "cache")) ? readdirSync(join(dir, "cache")) : [], []);
  } finally {
    cleanup(dir);
  }
});

test("ingest of the shared IMDB train archive: 22,500 + 2,500 reviews with the right labels", { skip: !existsSync(SHARED_ARCHIVE) && "no ../shared/data/aclImdb-train.tar.gz" }, async () => {
  const dir = tempDir();
  try {
    const out = join(dir, "imdb");
    const r = await runCli(["ingest", "--data", SHARED_ARCHIVE, "--out", out, "--json"], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.train, 22500);
    assert.equal(r.json.val, 2500);
    assert.equal(r.json.test, 0);
    assert.equal(r.json.vocab, 25002);
    assert.ok(r.json.padding <= 0.05, `padding ${r.json.padding}`);
    const ds = await openDataset(out);
    let pos = 0;
    let n = 0;
    for (const split of ["train", "val"] as const) for (const b of ds.batches(split)) { n += b.size; for (const l of b.labels) pos += l; }
    assert.equal(n, 25000);
    assert.equal(pos, 12500, "12,500 positive reviews in the archive");
    const m = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    assert.equal(m.splits.train.positive + m.splits.val.positive, 12500);
  } finally {
    cleanup(dir);
  }
});

test("ingest --metrics-port: the run's figures on /metrics (role ingest) while it lingers", async () => {
  const dir = tempDir();
  writeLayoutDir(join(dir, "src"), makeLayout({ train: 10 }));
  const child = spawnCli(["ingest", "--data", join(dir, "src"), "--out", join(dir, "ds"), "--metrics-port", "0", "--metrics-linger", "20"]);
  try {
    const url = (await child.waitFor(/serving metrics on (\S+)/))[1]!;
    let text = "";
    for (let i = 0; i < 200 && !/imdb_train_ingest_reviews_total\{[^}]*\} 20\b/.test(text); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = await (await fetch(url)).text();
    }
    assert.match(text, /imdb_train_ingest_reviews_total\{[^}]*role="ingest"[^}]*\} 20\b/);
  } finally {
    await child.stop("SIGTERM");
    cleanup(dir);
  }
});
