import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { readRawReviews, readReviews, type Review } from "../src/ingest/source.js";
import { TarParser } from "../src/ingest/tar.js";
import { InputError } from "../src/errors.js";
import { cleanup, makeLayout, tarBytes, tempDir, writeLayoutDir, writeLayoutTarGz } from "./helpers/fixture.js";

async function all(path: string, splits?: string[]): Promise<Review[]> {
  const out: Review[] = [];
  for await (const r of readReviews(path, splits ? { splits } : {})) out.push(r);
  return out.sort((a, b) => (a.id < b.id ? -1 : 1));
}

test("source: directory and .tar.gz give the same reviews, labels and ratings", async () => {
  const dir = tempDir();
  try {
    const files = makeLayout({ train: 6, test: 3 });
    writeLayoutDir(join(dir, "d"), files);
    const tgz = writeLayoutTarGz(join(dir, "a.tar.gz"), files);
    const fromDir = await all(join(dir, "d"));
    const fromDirInner = await all(join(dir, "d", "aclImdb"));
    const fromTar = await all(tgz);
    assert.equal(fromTar.length, 18);
    assert.deepEqual(fromDir, fromTar);
    assert.deepEqual(fromDirInner, fromTar);
    for (const r of fromTar) {
      const [split, folder, name] = r.id.split("/");
      assert.equal(r.split, split);
      assert.equal(r.label, folder === "pos" ? 1 : 0);
      assert.equal(r.rating, Number(name!.split("_")[1]));
      assert.ok(r.label === 1 ? r.rating >= 7 : r.rating <= 4);
      const original = files.find((f) => f.name === `aclImdb/${r.id}.txt`)!;
      assert.equal(r.text, new TextDecoder().decode(original.data));
    }
    const onlyTest = await all(tgz, ["test"]);
    assert.equal(onlyTest.length, 6);
    assert.ok(onlyTest.every((r) => r.split === "test"));
  } finally {
    cleanup(dir);
  }
});

test("tar parser: any chunking gives the same entries", () => {
  const files = makeLayout({ train: 3 });
  const tar = tarBytes(files);
  for (const size of [1, 7, 511, 512, 513, 4096, tar.length]) {
    const p = new TarParser(() => true);
    const names: string[] = [];
    const datas: string[] = [];
    for (let i = 0; i < tar.length; i += size) for (const e of p.push(tar.subarray(i, i + size))) { names.push(e.name); datas.push(e.data.toString()); }
    p.end();
    assert.deepEqual(names, files.map((f) => f.name), `chunk ${size}`);
    assert.deepEqual(datas, files.map((f) => Buffer.from(f.data).toString()), `chunk ${size}`);
  }
});

async function rejects(path: string, re: RegExp): Promise<void> {
  await assert.rejects(async () => { for await (const _ of readRawReviews(path)) { /* drain */ } }, (err: unknown) => {
    assert.ok(err instanceof InputError, String(err));
    assert.match((err as Error).message, re);
    assert.ok((err as Error).message.includes(path), "message names the file");
    return true;
  });
}

test("source: missing path, non-aclImdb layout, corrupt and truncated archives", async () => {
  const dir = tempDir();
  try {
    await rejects(join(dir, "nope.tar.gz"), /no such file or directory/);
    writeLayoutDir(join(dir, "other"), [{ name: "x/readme.txt", data: new TextEncoder().encode("hi") }]);
    await rejects(join(dir, "other"), /not an aclImdb layout/);
    const wrongTar = join(dir, "wrong.tar.gz");
    writeLayoutTarGz(wrongTar, [{ name: "photos/cat.txt", data: new TextEncoder().encode("meow") }]);
    await rejects(wrongTar, /not an aclImdb layout/);
    const text = join(dir, "notes.txt");
    writeFileSync(text, "just some text, not an archive");
    await rejects(text, /not a directory, a \.tar\.gz/);

    const good = writeLayoutTarGz(join(dir, "good.tar.gz"), makeLayout({ train: 30, words: [200, 400] }));
    const bytes = readFileSync(good);
    const truncated = join(dir, "truncated.tar.gz");
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await rejects(truncated, /truncated/);
    const corrupt = join(dir, "corrupt.tar.gz");
    const c = Buffer.from(bytes);
    for (let i = 100; i < 400; i++) c[i] = (c[i]! * 7 + 13) & 0xff;
    writeFileSync(corrupt, c);
    await rejects(corrupt, /corrupt|truncated/);
    // valid gzip around a damaged tar header
    const tar = tarBytes(makeLayout({ train: 2 }));
    tar[1024 + 5] = tar[1024 + 5]! ^ 0x01; // second header (README + its padding fill the first 1024 bytes)
    const badHeader = join(dir, "badheader.tar.gz");
    writeFileSync(badHeader, gzipSync(tar));
    await rejects(badHeader, /corrupt tar header/);
    // tar ending inside a file (gzip itself complete)
    const cut = join(dir, "cut.tar.gz");
    writeFileSync(cut, gzipSync(tarBytes(makeLayout({ train: 2 })).subarray(0, 1500)));
    await rejects(cut, /truncated/);
  } finally {
    cleanup(dir);
  }
});
