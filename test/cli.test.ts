import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "./helpers/cli.js";
import { tempDir, cleanup } from "./helpers/fixture.js";

test("--help lists the program and exits 0", async () => {
  const r = await runCli(["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Usage: imdb-train/);
});

test("an unknown subcommand exits 2 with a message", async () => {
  const r = await runCli(["no-such-command"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command/);
});

test("--workers out of range stops train and coordinator before anything starts (exit 2, the flag named)", async () => {
  const root = tempDir("imdb-cli-");
  try {
    const out = join(root, "run");
    const big = await runCli(["train", "--workers", "100000", "--out", out, "--data", join(root, "no-archive.tar.gz")]);
    assert.equal(big.code, 2, big.stderr);
    assert.match(big.stderr, /--workers must be an integer in \[1, 256\], got 100000/);
    assert.equal(existsSync(out), false, "no output directory, no ingest, no process started");
    const zero = await runCli(["coordinator", "--workers", "0", "--dataset", join(root, "no-dataset"), "--out", out]);
    assert.equal(zero.code, 2, zero.stderr);
    assert.match(zero.stderr, /--workers must be an integer in \[1, 256\], got 0/);
    for (const r of [big, zero]) assert.equal(r.stderr.trim().split("\n").length, 1, `one line, the usage error:\n${r.stderr}`);
    assert.equal(existsSync(out), false);
  } finally {
    cleanup(root);
  }
});
