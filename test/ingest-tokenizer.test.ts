import { test } from "node:test";
import assert from "node:assert/strict";
import { tokenize } from "../src/ingest/tokenizer.js";
import { buildVocab, encode, loadVocab, makeVocab, vocabToJson } from "../src/dataset/vocab.js";
import { cleanup, tempDir } from "./helpers/fixture.js";
import { SHARED_ARCHIVE } from "./helpers/cli.js";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const cases: [string, string[]][] = [
  ["I don't like it.", ["i", "do", "n't", "like", "it", "."]],
  ["It's GREAT<br /><br />really", ["it", "'s", "great", "really"]],
  ["<BR/>a<br>b<br />c", ["a", "b", "c"]],
  ["Can't won't shouldn't", ["ca", "n't", "wo", "n't", "should", "n't"]],
  ["I'm sure we'll see they're fine, I've said he'd go", ["i", "'m", "sure", "we", "'ll", "see", "they", "'re", "fine", ",", "i", "'ve", "said", "he", "'d", "go"]],
  ["it’s curly", ["it", "'s", "curly"]],
  ["7.5/10 and 1,000 films; 10.", ["7.5", "/", "10", "and", "1,000", "films", ";", "10", "."]],
  ["Wait... what?!", ["wait", "...", "what", "?", "!"]],
  ["well-made (really)", ["well", "-", "made", "(", "really", ")"]],
  ["\"Quoted\" 'single'", ["\"", "quoted", "\"", "'", "single", "'"]],
  ["Café naïve ÉCOLE", ["café", "naïve", "école"]],
  ["o'clock rock'n'roll", ["o'clock", "rock'n", "'", "roll"]],
  ["", []],
  ["   \n\t ", []],
  ["<br /><br />", []],
  ["$5 & 50% off", ["$", "5", "&", "50", "%", "off"]],
];

test("tokenizer: tricky strings follow the documented rules", () => {
  for (const [text, want] of cases) assert.deepEqual(tokenize(text), want, JSON.stringify(text));
});

test("tokenizer: deterministic and lowercase only", () => {
  const t = "The Movie's PLOT wasn't BAD!! <br />Really.";
  assert.deepEqual(tokenize(t), tokenize(t));
  for (const tok of tokenize(t)) assert.equal(tok, tok.toLowerCase());
});

test("vocab: most frequent first, ties by token, min-freq, <unk>/<pad> ids 0/1", () => {
  const counts = new Map([["b", 3], ["a", 3], ["c", 5], ["d", 1], ["e", 2]]);
  const { vocab, counts: kept } = buildVocab(counts, { maxSize: 3, minFreq: 2 });
  assert.deepEqual(vocab.tokens, ["<unk>", "<pad>", "c", "a", "b"]);
  assert.deepEqual(kept, [3, 0, 5, 3, 3]); // <unk> absorbs d (1) and e (2)
  assert.equal(vocab.id("a"), 3);
  assert.equal(vocab.id("zzz"), 0);
  assert.deepEqual([...encode(["c", "nope", "b"], vocab)], [2, 0, 4]);
  assert.equal(vocab.size, 5);
});

test("vocab: JSON round trip keeps the hash; a tampered file is refused", () => {
  const dir = tempDir();
  try {
    const v = makeVocab(["<unk>", "<pad>", "x", "y"]);
    const p = join(dir, "vocab.json");
    writeFileSync(p, vocabToJson(v, [0, 0, 2, 1]));
    const back = loadVocab(p);
    assert.equal(back.hash, v.hash);
    assert.deepEqual(back.tokens, v.tokens);
    const bad = JSON.parse(vocabToJson(v, [0, 0, 2, 1]));
    bad.tokens[2] = "z";
    writeFileSync(p, JSON.stringify(bad));
    assert.throws(() => loadVocab(p), /hash mismatch/);
  } finally {
    cleanup(dir);
  }
});

test("tokenizer: the fast scanner agrees with the reference expression (fuzz + real text)", async () => {
  const { tokenizeReference } = await import("../src/ingest/tokenizer.js");
  const { Rng } = await import("../src/rng.js");
  const alphabet = ["a", "b", "n", "t", "s", "'", "’", ".", ",", "1", "7", " ", "\n", "-", "!", "é", "ß", "Ω", "ж", "中", "😀", "\u0301", "\u00a0", "\u2003", "<br />", "’s", "n't", "...", "½", "٣"];
  const rng = new Rng(42);
  for (let k = 0; k < 3000; k++) {
    let s = "";
    const len = rng.int(30);
    for (let i = 0; i < len; i++) s += alphabet[rng.int(alphabet.length)];
    assert.deepEqual(tokenize(s), tokenizeReference(s), JSON.stringify(s));
  }
  if (existsSync(SHARED_ARCHIVE)) {
    const { readReviews } = await import("../src/ingest/source.js");
    let n = 0;
    for await (const r of readReviews(SHARED_ARCHIVE)) {
      assert.deepEqual(tokenize(r.text), tokenizeReference(r.text), r.id);
      if (++n === 2000) break;
    }
  }
});

test("tokenizer: the byte path gives the same tokens as the string path (ASCII and UTF-8)", async () => {
  const { tokenizeBytes } = await import("../src/ingest/tokenizer.js");
  const { Rng } = await import("../src/rng.js");
  const enc = new TextEncoder();
  const ascii = ["a", "B", "n", "N", "T", "t", "s", "S", "'", ".", ",", "1", "7", " ", "\n", "\t", "-", "!", "<br />", "<BR>", "<br/>", "<br  />", "< br>", "<b", "<", ">", "/", "'LL", "n'T", "...", "x", "\x1f"];
  const utf8 = [...ascii, "é", "É", "ß", "Ω", "ж", "Ж", "中", "\u0301", "\u00a0", "\u2003", "\ufeff", "’", "‘", "’S", "N’T", "½", "٣", "\u0085", "\u0096",
    "<br\u00a0/>", "<BR\u2003>", "–", "´"];
  const rng = new Rng(7);
  for (const [alphabet, runs] of [[ascii, 3000], [utf8, 3000]] as const) {
    for (let k = 0; k < runs; k++) {
      let s = "";
      const len = rng.int(30);
      for (let i = 0; i < len; i++) s += alphabet[rng.int(alphabet.length)];
      assert.deepEqual(tokenizeBytes(enc.encode(s)), tokenize(s), JSON.stringify(s));
    }
  }
  // left to the string path: characters beyond the BMP, final sigma, İ (lowercase is two units), invalid UTF-8
  for (const s of ["a😀b", "ΟΔΟΣ", "İstanbul"]) assert.equal(tokenizeBytes(enc.encode(s)), null, s);
  for (const bad of [[0x61, 0xff], [0xc3], [0xe2, 0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x80]]) {
    assert.equal(tokenizeBytes(Uint8Array.from(bad)), null, JSON.stringify(bad));
  }
});

test("interner: ids are dense, stable, and the same from strings and code units", async () => {
  const { Interner } = await import("../src/ingest/intern.js");
  const it = new Interner();
  const words = Array.from({ length: 140_000 }, (_, i) => `w${i.toString(36)}`); // past its initial size (131,072)
  for (const w of words) it.intern(` ${w} `, 1, w.length + 1);
  assert.equal(it.size, words.length);
  const units = (s: string) => Uint16Array.from(s, (c) => c.charCodeAt(0));
  for (let i = 0; i < words.length; i += 997) {
    assert.equal(it.intern(words[i]!, 0, words[i]!.length), i);
    assert.equal(it.internUnits(units(`x${words[i]!}`), 1, words[i]!.length + 1), i);
  }
  assert.deepEqual(it.tokens, words);
  // one- and two-character tokens go through direct tables: same ids either way, first seen as units or as strings
  const a = it.internUnits(units("q"), 0, 1);
  assert.equal(it.intern("q", 0, 1), a);
  const b = it.intern("zz", 0, 2);
  assert.equal(it.internUnits(units("xzz"), 1, 3), b);
  assert.equal(it.internUnits(units("zz"), 0, 2), b);
  assert.notEqual(it.internUnits(units("z"), 0, 1), b);
  assert.equal(it.tokens[b], "zz");
  const c = it.internUnits(units("é"), 0, 1); // beyond the direct tables
  assert.equal(it.intern("é", 0, 1), c);
  assert.equal(it.internUnits(units("aé"), 0, 2), it.intern("aé", 0, 2));
  // packed keys (3–8 ASCII characters) and longer tokens, first seen either way
  for (const w of ["abc", "abcd", "abcde", "abcdefg", "abcdefgh", "abcdefghi", "movie's", "zzzzzzzz", "zzzzzzz", "zzzzzzzzz"]) {
    const id = it.internUnits(units(`<${w}>`), 1, w.length + 1);
    assert.equal(it.intern(w, 0, w.length), id, w);
    assert.equal(it.tokens[id], w);
    const v = w.toUpperCase();
    const id2 = it.intern(v, 0, v.length);
    assert.equal(it.internUnits(units(v), 0, v.length), id2, v);
    assert.notEqual(id2, id);
  }
});

test("vocab: the partial sort keeps exactly what a full sort keeps", async () => {
  const { buildVocabFromArrays } = await import("../src/dataset/vocab.js");
  const { Rng } = await import("../src/rng.js");
  const rng = new Rng(3);
  const tokens = Array.from({ length: 5000 }, (_, i) => `t${(i * 7919) % 5003}`);
  const counts = Int32Array.from(tokens, () => 1 + Math.floor(Math.exp(rng.next() * 6)));
  for (const [maxSize, minFreq] of [[100, 1], [1000, 3], [4999, 1], [6000, 2], [0, 1]] as const) {
    const got = buildVocabFromArrays(tokens, counts, { maxSize, minFreq }).vocab.tokens.slice(2);
    const want = tokens.map((t, i) => [t, counts[i]!] as const).filter((e) => e[1] >= minFreq)
      .sort((a, b) => (b[1] - a[1]) || (a[0] < b[0] ? -1 : 1)).slice(0, maxSize).map((e) => e[0]);
    assert.deepEqual(got, want, `maxSize ${maxSize} minFreq ${minFreq}`);
  }
});

test("tokenizer: the ASCII path gives the same tokens as the string path, and the interner the same ids", async () => {
  const { tokenizeAscii, forEachTokenAscii } = await import("../src/ingest/tokenizer.js");
  const { Interner } = await import("../src/ingest/intern.js");
  const { Rng } = await import("../src/rng.js");
  const enc = new TextEncoder();
  const ascii = ["a", "B", "n", "N", "T", "t", "s", "S", "M", "d", "D", "'", ".", ",", "1", "7", " ", "\n", "\t", "-", "!", "<br />", "<BR>", "<br/>",
    "<br  />", "< br>", "<b", "<", ">", "/", "'LL", "'Re", "'VE", "n'T", "...", "x", "\x1f", "Incomprehensibly", "ABCDEFGH", "abcdefghi"];
  const rng = new Rng(11);
  const viaStrings = new Interner();
  const viaBytes = new Interner();
  for (let k = 0; k < 4000; k++) {
    let s = "";
    const len = rng.int(30);
    for (let i = 0; i < len; i++) s += ascii[rng.int(ascii.length)];
    const want = tokenize(s);
    assert.deepEqual(tokenizeAscii(enc.encode(s)), want, JSON.stringify(s));
    // the interner: lowercasing bytes as it reads gives the id the lowercase string gets
    const bytes = enc.encode(`  ${s}`);
    const got: number[] = [];
    forEachTokenAscii(bytes, 2, bytes.length, (a, b) => got.push(viaBytes.internAscii(bytes, a, b)));
    assert.deepEqual(got, want.map((t) => viaStrings.intern(t, 0, t.length)), JSON.stringify(s));
  }
  assert.deepEqual(viaBytes.tokens, viaStrings.tokens);
  assert.equal(tokenizeAscii(enc.encode("café")), null, "not ASCII: left to the byte path");
  if (existsSync(SHARED_ARCHIVE)) {
    const { readRawReviews } = await import("../src/ingest/source.js");
    let n = 0;
    for await (const r of readRawReviews(SHARED_ARCHIVE)) {
      const got = tokenizeAscii(r.bytes);
      if (got) assert.deepEqual(got, tokenize(new TextDecoder().decode(r.bytes)), r.id);
      if (++n === 3000) break;
    }
  }
});
