// Hostile archives (issue 15, item 7): an over-long entry is skipped from its header without being
// buffered, a .tar.gz that unpacks past the limit is refused, and a negative or absurd size field stops
// the read with an error naming the archive and the entry. Memory is checked in a child process whose
// peak RSS is its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { createGzip, gzipSync } from "node:zlib";
import { readRawReviews } from "../src/ingest/source.js";
import { TarFormatError, TarParser, MAX_META_BYTES } from "../src/ingest/tar.js";
import { InputError } from "../src/errors.js";
import { runCli } from "./helpers/cli.js";
import { cleanup, makeLayout, tarBytes, tempDir, writeLayoutDir, type FixtureFile } from "./helpers/fixture.js";

const MiB = 2 ** 20;
/** The over-long entry of the bombs below: far over the 256 KiB review limit, far over what a test may hold. */
const BOMB_BYTES = 256 * MiB;
const BOMB_NAME = "aclImdb/train/pos/999_9.txt";

/** A ustar header; `sizeField` replaces the 12-byte size field (to write base-256 sizes). */
function header(name: string, size: number, opts: { sizeField?: Buffer; type?: string } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100, "latin1");
  h.write("0000000\0", 108, "latin1");
  h.write("0000000\0", 116, "latin1");
  if (opts.sizeField) opts.sizeField.copy(h, 124, 0, 12);
  else h.write(size.toString(8).padStart(11, "0") + "\0", 124, "latin1");
  h.write("14500000000\0", 136, "latin1");
  h.write("        ", 148, "latin1");
  h.write(opts.type ?? "0", 156, "latin1");
  h.write("ustar\0", 257, "latin1");
  h.write("00", 263, "latin1");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return h;
}

/** A GNU base-256 size field: marker byte, then the value's 11 bytes big-endian, two's complement. */
function base256(value: bigint): Buffer {
  const b = Buffer.alloc(12);
  let v = BigInt.asUintN(88, value);
  for (let i = 11; i >= 1; i--) { b[i] = Number(v & 0xffn); v >>= 8n; }
  b[0] = value < 0n ? 0xff : 0x80;
  return b;
}

/** A few real-looking reviews as tar bytes, without the end-of-archive blocks. */
function reviewsTar(files: FixtureFile[]): Buffer {
  const t = tarBytes(files);
  return t.subarray(0, t.length - 1024);
}

/**
 * Writes a .tar.gz: a small layout, `count` entries of `bytes` zero bytes (the first named BOMB_NAME, the
 * others outside the layout), one review after them.
 */
async function writeBomb(path: string, bytes: number, count = 1): Promise<void> {
  const gz = createGzip({ level: 1 });
  const done = once(gz.pipe(createWriteStream(path)), "finish");
  const write = async (b: Buffer) => { if (!gz.write(b)) await once(gz, "drain"); };
  await write(reviewsTar(makeLayout({ train: 3 })));
  const zeros = Buffer.alloc(MiB);
  for (let k = 0; k < count; k++) {
    await write(header(k === 0 ? BOMB_NAME : `aclImdb/padding-${k}.bin`, bytes));
    for (let left = bytes; left > 0; left -= MiB) await write(left >= MiB ? zeros : zeros.subarray(0, left));
    await write(Buffer.alloc((512 - (bytes % 512)) % 512));
  }
  await write(reviewsTar([{ name: "aclImdb/train/neg/998_1.txt", data: new TextEncoder().encode("After the bomb: a dreary plot.") }]));
  gz.end(Buffer.alloc(1024));
  await done;
}

async function readAll(path: string, opts: Parameters<typeof readRawReviews>[1] = {}): Promise<string[]> {
  const ids: string[] = [];
  for await (const r of readRawReviews(path, opts)) ids.push(r.id);
  return ids;
}

async function rejectsNaming(path: string, re: RegExp, opts: Parameters<typeof readRawReviews>[1] = {}): Promise<void> {
  await assert.rejects(readAll(path, opts), (err: unknown) => {
    assert.ok(err instanceof InputError, String(err));
    assert.ok((err as Error).message.startsWith(path + ": "), `names the archive: ${(err as Error).message}`);
    assert.match((err as Error).message, re);
    return true;
  });
}

test("tar: a wanted entry over the file limit is skipped from its header, nothing of it buffered", () => {
  const big = 50 * MiB;
  const parser = new TarParser(() => true, { maxFileBytes: 1000 });
  const names: string[] = [];
  const take = (chunk: Buffer) => {
    for (const e of parser.push(chunk)) {
      names.push(e.name);
      if (e.name === BOMB_NAME) {
        assert.equal(e.tooLarge, true);
        assert.equal(e.size, big);
        assert.equal(e.data.length, 0);
      } else {
        assert.ok(!e.tooLarge && e.data.length === e.size, e.name);
      }
    }
  };
  take(reviewsTar(makeLayout({ train: 1 })));
  take(header(BOMB_NAME, big));
  const zeros = Buffer.alloc(MiB); // one buffer pushed again and again: only what the parser keeps could grow
  let most = 0;
  for (let left = big; left > 0; left -= MiB) {
    take(zeros);
    most = Math.max(most, parser.buffered);
  }
  assert.equal(most, 0, "no byte of the over-long entry was held");
  take(reviewsTar([{ name: "aclImdb/train/neg/5_2.txt", data: Buffer.from("short") }]));
  take(Buffer.alloc(1024));
  parser.end();
  assert.equal(names.length, 6, "README, imdb.vocab, two reviews, the skipped entry, the review after it");
  assert.deepEqual(names.slice(-2), [BOMB_NAME, "aclImdb/train/neg/5_2.txt"]);
});

test("tar: a negative (base-256 sign bit) or absurd size stops the read, naming the archive and the entry", async () => {
  const dir = tempDir();
  try {
    const cases: [string, Buffer, RegExp][] = [
      ["negative", header("aclImdb/train/pos/1_9.txt", 0, { sizeField: base256(-5n) }), /entry "aclImdb\/train\/pos\/1_9\.txt" has a negative size/],
      ["huge-base256", header("aclImdb/train/pos/2_9.txt", 0, { sizeField: base256(1n << 70n) }), /entry "aclImdb\/train\/pos\/2_9\.txt" claims [\d.e+]+ bytes, over the 2147483648-byte limit on what the archive unpacks to/],
      ["over-limit-octal", header("aclImdb/train/pos/3_9.txt", 0o77777777777), /entry "aclImdb\/train\/pos\/3_9\.txt" claims 8589934591 bytes/],
    ];
    for (const [name, h, re] of cases) {
      const path = join(dir, `${name}.tar.gz`);
      writeFileSync(path, gzipSync(Buffer.concat([reviewsTar(makeLayout({ train: 2 })), h, Buffer.alloc(4096)])));
      await rejectsNaming(path, re);
    }
    // the parser alone: a TarFormatError with the offset of the header
    const p = new TarParser(() => true);
    assert.throws(() => p.push(header("x/y.txt", 0, { sizeField: base256(-1n) })), (e: unknown) => e instanceof TarFormatError && e.offset === 0);
    // a pax header larger than any honest one is refused before it is buffered
    const pax = join(dir, "pax.tar.gz");
    writeFileSync(pax, gzipSync(Buffer.concat([header("PaxHeaders/1_9.txt", MAX_META_BYTES + 1, { type: "x" }), Buffer.alloc(4096)])));
    await rejectsNaming(pax, /pax header of 1048577 bytes/);
  } finally {
    cleanup(dir);
  }
});

test("a .tar.gz that unpacks past --max-unpacked-mb is refused with the archive named; under it, the entry is skipped", async () => {
  const dir = tempDir();
  try {
    // entries each within the limit, together over it
    const many = join(dir, "many.tar.gz");
    await writeBomb(many, 40 * MiB, 3);
    await rejectsNaming(many, /unpacks to more than 64 MiB, the limit .*--max-unpacked-mb/, { maxUnpackedBytes: 64 * MiB });
    const small = await runCli(["ingest", "--data", many, "--out", join(dir, "a"), "--max-unpacked-mb", "64", "--json"]);
    assert.equal(small.code, 3, small.stderr);
    assert.match(small.stderr, /many\.tar\.gz: the archive unpacks to more than 64 MiB/);
    // one entry over the limit: refused from its header
    const bomb = join(dir, "bomb.tar.gz");
    await writeBomb(bomb, BOMB_BYTES);
    assert.ok(readFileSync(bomb).length < 2 * MiB, "a small file");
    await rejectsNaming(bomb, /entry "aclImdb\/train\/pos\/999_9\.txt" claims 268435456 bytes, over the 67108864-byte limit/, { maxUnpackedBytes: 64 * MiB });
    assert.deepEqual(readdirSync(dir).sort(), ["bomb.tar.gz", "many.tar.gz"], "nothing written");
    // the default limit: the over-long review is skipped with a warning and counted, the others kept
    const ok = await runCli(["ingest", "--data", bomb, "--out", join(dir, "b"), "--json"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /999_9\.txt: review of 268435456 bytes is over the 262144-byte limit: skipped/);
    assert.equal(ok.json.skipped.tooLarge, 1);
    assert.equal(ok.json.train + ok.json.val, 7, "6 reviews before the entry and one after it");
  } finally {
    cleanup(dir);
  }
});

test("memory stays bounded: a 256 MiB entry in a .tar.gz and a 256 MiB file in a directory are skipped unread", async () => {
  const dir = tempDir();
  try {
    const bomb = join(dir, "bomb.tar.gz");
    await writeBomb(bomb, BOMB_BYTES);
    const layout = writeLayoutDir(join(dir, "layout"), makeLayout({ train: 3 }));
    writeFileSync(join(layout, BOMB_NAME), "");
    truncateSync(join(layout, BOMB_NAME), BOMB_BYTES); // sparse: no disk, but reading it would fill memory
    const source = new URL("../src/ingest/source.js", import.meta.url).href;
    const script = `
      const { readRawReviews } = await import(${JSON.stringify(source)});
      const out = {};
      for (const path of process.argv.slice(1)) {
        const tooLarge = [];
        let n = 0;
        for await (const r of readRawReviews(path, { onTooLarge: (f, b) => tooLarge.push(b) })) n++;
        out[path] = { n, tooLarge };
      }
      out.maxRss = process.resourceUsage().maxRSS * 1024;
      console.log(JSON.stringify(out));`;
    // the same reading of an archive whose big entry is one byte: what the runtime itself takes (Node 24: ~125 MiB)
    const small = join(dir, "small.tar.gz");
    await writeBomb(small, 1);
    const run = (...paths: string[]) => JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script, ...paths], { encoding: "utf8" }));
    const base = run(small), got = run(bomb, layout);
    assert.deepEqual(base[small], { n: 8, tooLarge: [] }, "the 1-byte entry is read as the review it is named");
    assert.deepEqual(got[bomb], { n: 7, tooLarge: [BOMB_BYTES] });
    assert.deepEqual(got[layout], { n: 6, tooLarge: [BOMB_BYTES] });
    const extra = got.maxRss - base.maxRss;
    assert.ok(extra < BOMB_BYTES / 2, `peak RSS ${(got.maxRss / MiB).toFixed(0)} MiB, ${(extra / MiB).toFixed(0)} MiB over reading a 1-byte entry; the entry is ${BOMB_BYTES / MiB} MiB`);
    assert.ok(existsSync(bomb));
  } finally {
    cleanup(dir);
  }
});

test("a review that is one 200,000-letter word (within the size limit) is one token, on the pool and on the main thread", async () => {
  const { runIngest, openDataset } = await import("../src/ingest/index.js");
  const { withFile } = await import("./helpers/fixture.js");
  const dir = tempDir();
  try {
    let files = makeLayout({ train: 4 });
    files = withFile(files, "aclImdb/train/pos/50_9.txt", "a".repeat(200_000));
    files = withFile(files, "aclImdb/train/neg/50_1.txt", "é".repeat(100_000) + " bland");
    writeLayoutDir(join(dir, "src"), files);
    // one review per task: some tasks run on the pool thread, the last ones on the main thread
    const r = await runIngest({ data: join(dir, "src"), out: join(dir, "ds"), batchSize: 4, valFraction: 0, threads: 1, taskReviews: 1 });
    assert.equal(r.train, 10);
    assert.ok(r.tokenizeTasks.main > 0 && r.tokenizeTasks.pool > 0, JSON.stringify(r.tokenizeTasks));
    const ds = await openDataset(join(dir, "ds"));
    const lengths = ds.batches("train").flatMap((b) => [...b.lengths]);
    assert.ok(lengths.includes(1) && lengths.includes(2), `the long words are single tokens: ${lengths.join(",")}`);
    assert.ok(ds.vocab.id("a".repeat(200_000)) >= 2 && ds.vocab.id("é".repeat(100_000)) >= 2, "both words in the vocabulary");
  } finally {
    cleanup(dir);
  }
});
