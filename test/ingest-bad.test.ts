// Every bad input of issue 8 through the real CLI: message naming the file, manifest count, exit status,
// and no partial dataset left behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli } from "./helpers/cli.js";
import { cleanup, hugeReview, invalidUtf8Review, makeLayout, tempDir, withFile, writeLayoutDir, writeLayoutTarGz } from "./helpers/fixture.js";

function onlyInputs(dir: string, inputs: string[]): void {
  assert.deepEqual(readdirSync(dir).sort(), [...inputs].sort(), "no dataset or temporary directory left behind");
}

test("bad input that cannot be trusted: exit 3, the file named, nothing written", async () => {
  const dir = tempDir();
  try {
    const good = writeLayoutTarGz(join(dir, "good.tar.gz"), makeLayout({ train: 20, words: [100, 300] }));
    const bytes = readFileSync(good);
    writeFileSync(join(dir, "truncated.tar.gz"), bytes.subarray(0, bytes.length - 300));
    const corrupt = Buffer.from(bytes);
    for (let i = 200; i < 260; i++) corrupt[i] = 0x55;
    writeFileSync(join(dir, "corrupt.tar.gz"), corrupt);
    writeLayoutDir(join(dir, "photos"), [{ name: "holiday/beach.txt", data: new TextEncoder().encode("sand") }]);
    const cases: [string, RegExp][] = [
      [join(dir, "missing.tar.gz"), /missing\.tar\.gz: no such file or directory/],
      [join(dir, "photos"), /photos: not an aclImdb layout/],
      [join(dir, "truncated.tar.gz"), /truncated\.tar\.gz: archive is truncated/],
      [join(dir, "corrupt.tar.gz"), /corrupt\.tar\.gz: (corrupt gzip data|archive is truncated|corrupt tar header)/],
    ];
    for (const [data, re] of cases) {
      const r = await runCli(["ingest", "--data", data, "--out", join(dir, "out"), "--json"]);
      assert.equal(r.code, 3, `${data}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.json, undefined, "no result line");
      onlyInputs(dir, ["good.tar.gz", "truncated.tar.gz", "corrupt.tar.gz", "photos"]);
    }
  } finally {
    cleanup(dir);
  }
});

test("bad reviews are repaired or skipped with a warning naming the file and counted in the manifest", async () => {
  const dir = tempDir();
  try {
    let files = makeLayout({ train: 10 });
    files = withFile(files, "aclImdb/train/pos/100_9.txt", invalidUtf8Review());
    files = withFile(files, "aclImdb/train/neg/101_2.txt", "");
    files = withFile(files, "aclImdb/train/neg/102_3.txt", "<br /><br />  ");
    files = withFile(files, "aclImdb/train/pos/103_8.txt", hugeReview(1024 * 1024));
    files = withFile(files, "aclImdb/train/pos/notes.txt", "a stray file");
    const tgz = writeLayoutTarGz(join(dir, "bad.tar.gz"), files);
    const out = join(dir, "ds");
    const r = await runCli(["ingest", "--data", tgz, "--out", out, "--batch-size", "4", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /train\/pos\/100_9\.txt: invalid UTF-8/);
    assert.match(r.stderr, /train\/neg\/101_2\.txt: empty review/);
    assert.match(r.stderr, /train\/neg\/102_3\.txt: empty review/);
    assert.match(r.stderr, /train\/pos\/103_8\.txt: review of 1048576 bytes is over/);
    assert.match(r.stderr, /train\/pos\/notes\.txt: not a review file name/);
    const m = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    assert.deepEqual(m.skipped, { empty: 2, tooLarge: 1, badName: 1 });
    assert.equal(m.repaired.invalidUtf8, 1);
    assert.equal(r.json.train + r.json.val, 21, "20 good reviews + the repaired one");
    assert.deepEqual(r.json.skipped, m.skipped);
    assert.ok(existsSync(join(out, "train.arrow")));
  } finally {
    cleanup(dir);
  }
});

test("bad options: exit 2 with the flag named", async () => {
  const dir = tempDir();
  try {
    writeLayoutDir(join(dir, "src"), makeLayout({ train: 2 }));
    const r = await runCli(["ingest", "--data", join(dir, "src"), "--out", join(dir, "o"), "--val-fraction", "1.5"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--val-fraction must be in \[0, 1\), got 1\.5/);
    onlyInputs(dir, ["src"]);
  } finally {
    cleanup(dir);
  }
});

test("SIGTERM during an ingest leaves either nothing or the whole dataset, never a temporary directory", async () => {
  const dir = tempDir();
  try {
    // large enough that the write phase lasts a while: 3,000 reviews of 300-600 words
    writeLayoutTarGz(join(dir, "src.tar.gz"), makeLayout({ train: 1500, words: [300, 600] }));
    const out = join(dir, "ds");
    const child = spawnCli(["ingest", "--data", join(dir, "src.tar.gz"), "--out", out]);
    let killed = false;
    for (let i = 0; i < 3000 && child.p.exitCode === null; i++) {
      if (readdirSync(dir).some((n) => n.startsWith(".ds.tmp-"))) {
        killed = child.kill("SIGTERM");
        break;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await child.done;
    const left = readdirSync(dir).sort();
    assert.ok(!left.some((n) => n.includes(".tmp-")), `temporary directory left: ${left.join(", ")}`);
    if (left.includes("ds")) {
      assert.ok(existsSync(join(out, "manifest.json")) && existsSync(join(out, "train.arrow")), "a dataset is complete or absent");
    } else {
      assert.ok(killed, "not killed, yet no dataset");
    }
  } finally {
    cleanup(dir);
  }
});
