// Progress where stderr is not a terminal (issue 17): ingest's long phases print plain log lines with the
// phase, the position and the time left; src/output.ts's progress() prints them for any caller that asks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { progress } from "../src/output.js";
import { runCli } from "./helpers/cli.js";
import { cleanup, makeLayout, tempDir, writeLayoutDir, writeLayoutTarGz } from "./helpers/fixture.js";

/** What `fn` writes to stderr, with stderr taken for a pipe and IMDB_TRAIN_PROGRESS_EVERY set to `every`. */
function captureStderr(every: string | undefined, fn: () => void): string {
  const write = process.stderr.write;
  const tty = process.stderr.isTTY;
  const env = process.env.IMDB_TRAIN_PROGRESS_EVERY;
  let out = "";
  process.stderr.write = ((chunk: string | Uint8Array) => { out += String(chunk); return true; }) as typeof process.stderr.write;
  process.stderr.isTTY = false;
  if (every === undefined) delete process.env.IMDB_TRAIN_PROGRESS_EVERY; else process.env.IMDB_TRAIN_PROGRESS_EVERY = every;
  try {
    fn();
  } finally {
    process.stderr.write = write;
    process.stderr.isTTY = tty;
    if (env === undefined) delete process.env.IMDB_TRAIN_PROGRESS_EVERY; else process.env.IMDB_TRAIN_PROGRESS_EVERY = env;
  }
  return out;
}

test("progress: plain lines with position, share and time left where stderr is not a terminal", () => {
  const out = captureStderr("0", () => {
    const bar = progress("read", 40, "MB", { logEvery: 2, component: "ingest" });
    bar.set(10, "100 reviews");
    bar.set(20);
    bar.done("400 reviews");
    const open = progress("scan", 0, "files", { logEvery: 2 });
    open.tick(7);
    open.done();
  });
  const lines = out.trimEnd().split("\n");
  assert.equal(lines.length, 5, out);
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} INFO  \[ingest\] read 10\/40 MB \(25%\), [\d.k]+ MB\/s, [\d.]+s elapsed, [\dhms.]+ left · 100 reviews$/);
  assert.match(lines[1]!, /\[ingest\] read 20\/40 MB \(50%\), .* left · 100 reviews$/);
  assert.match(lines[2]!, /\[ingest\] read done: 20\/40 MB in [\d.]+s · 400 reviews$/);
  assert.match(lines[3]!, /\[scan\] scan 7 files, [\d.k]+ files\/s, [\d.]+s elapsed$/, "no total: no share, no time left");
  assert.match(lines[4]!, /\[scan\] scan done: 7 files in /);
  assert.ok(!out.includes("\r") && !out.includes("\x1b"), "no terminal control characters in a log");
});

test("progress: no plain lines unless asked for, nor within the interval; a short phase ends silently", () => {
  const unasked = captureStderr("0", () => {
    const bar = progress("train", 10, "steps");
    bar.set(5);
    bar.done();
  });
  assert.equal(unasked, "", "callers that do not ask keep today's output");
  const quick = captureStderr(undefined, () => {
    const bar = progress("read", 10, "MB", { logEvery: 3600 });
    for (let i = 1; i <= 10; i++) bar.set(i);
    bar.done();
  });
  assert.equal(quick, "", "nothing before the interval has passed, and no done line then");
});

test("ingest piped (and --json): read, tokenize and write lines with the time left, none with --quiet", async () => {
  const dir = tempDir();
  try {
    const tgz = writeLayoutTarGz(join(dir, "src.tar.gz"), makeLayout({ train: 300, words: [100, 300] }));
    const env = { IMDB_TRAIN_PROGRESS_EVERY: "0" };
    const r = await runCli(["ingest", "--data", tgz, "--out", join(dir, "a"), "--json"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.train + r.json.val, 600, "the result is still the last stdout line");
    assert.match(r.stderr, /INFO {2}\[ingest\] read [\d.]+\/[\d.]+ MB \(\d+%\), .* left · \d+ reviews\n/);
    assert.match(r.stderr, /\[ingest\] read done: ([\d.]+)\/\1 MB in [\d.]+s · 600 reviews\n/);
    assert.match(r.stderr, /\[ingest\] write \d+\/\d+ batches \(\d+%\), .* left · (train|val)\n/);
    assert.match(r.stderr, /\[ingest\] write done: (\d+)\/\1 batches in /);
    assert.ok(!r.stderr.includes("\r"), "no bar drawn in a log");
    const dirInput = writeLayoutDir(join(dir, "srcdir"), makeLayout({ train: 30 }));
    const d = await runCli(["ingest", "--data", dirInput, "--out", join(dir, "b")], { env });
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stderr, /\[ingest\] read \d+ reviews, [\d.]+ reviews\/s, [\d.]+s elapsed\n/, "a directory: reviews read, no total");
    const q = await runCli(["--quiet", "ingest", "--data", tgz, "--out", join(dir, "c")], { env });
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stderr, "", "--quiet: no progress lines");
  } finally {
    cleanup(dir);
  }
});
