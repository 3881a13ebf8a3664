// Small synthetic aclImdb layouts for tests: invented text (never real reviews), as a directory or as a
// .tar.gz written by a minimal ustar writer, plus the bad cases the ingest must handle.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { Rng } from "../../src/rng.js";

export interface FixtureFile {
  /** Path inside the archive / directory, e.g. "aclImdb/train/pos/3_9.txt". */
  name: string;
  data: Uint8Array;
}

const GOOD = ["splendid", "moving", "wonderful", "clever", "luminous", "great", "charming", "gripping"];
const BAD = ["dreary", "clumsy", "boring", "awful", "tedious", "muddled", "wooden", "bland"];
const FILLER = ["the", "film", "plot", "actor", "scene", "story", "it", "was", "and", "a", "of", "director", "zorblax", "quintaven"];
const EXTRA = ["don't", "it's", "I'm", "can't", "they're", "well-made", "7.5/10", "...", "!", "?", ",", "café"];

/** An invented review of about `words` words, leaning positive or negative. */
export function inventReview(rng: Rng, positive: boolean, words: number): string {
  const out: string[] = [];
  const lean = positive ? GOOD : BAD;
  for (let i = 0; i < words; i++) {
    const r = rng.next();
    const pick = (a: string[]) => a[rng.int(a.length)]!;
    let w = r < 0.25 ? pick(lean) : r < 0.85 ? pick(FILLER) : pick(EXTRA);
    if (i === 0) w = w[0]!.toUpperCase() + w.slice(1);
    out.push(w);
    if (rng.next() < 0.08) out.push(rng.next() < 0.5 ? "." : "<br /><br />");
  }
  return out.join(" ") + ".";
}

export interface LayoutOptions {
  /** Reviews per label in train (default 20). */
  train?: number;
  /** Reviews per label in test (default 0 = no test split). */
  test?: number;
  seed?: number;
  /** Top folder (default "aclImdb"). */
  root?: string;
  /** Words per review: uniform in [min, max]. */
  words?: [number, number];
}

/** The files of a synthetic aclImdb layout (plus a README and imdb.vocab, which ingest ignores). */
export function makeLayout(opts: LayoutOptions = {}): FixtureFile[] {
  const rng = new Rng(opts.seed ?? 7);
  const root = opts.root ?? "aclImdb";
  const [lo, hi] = opts.words ?? [5, 120];
  const enc = new TextEncoder();
  const files: FixtureFile[] = [
    { name: `${root}/README`, data: enc.encode("Invented test fixture in the aclImdb layout.\n") },
    { name: `${root}/imdb.vocab`, data: enc.encode("the\nfilm\n") },
  ];
  const splits: [string, number][] = [["train", opts.train ?? 20], ["test", opts.test ?? 0]];
  for (const [split, n] of splits) {
    for (const folder of ["neg", "pos"]) {
      for (let i = 0; i < n; i++) {
        const positive = folder === "pos";
        const rating = positive ? 7 + rng.int(4) : 1 + rng.int(4);
        const text = inventReview(rng, positive, lo + rng.int(hi - lo + 1));
        files.push({ name: `${root}/${split}/${folder}/${i}_${rating}.txt`, data: enc.encode(text) });
      }
    }
  }
  return files;
}

/** Adds or replaces a file. */
export function withFile(files: FixtureFile[], name: string, data: Uint8Array | string): FixtureFile[] {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return [...files.filter((f) => f.name !== name), { name, data: bytes }];
}

/** A fresh temporary directory; remove it with `rmSync(dir, { recursive: true, force: true })`. */
export function tempDir(prefix = "imdb-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Writes the files under `dir`; returns `dir`. */
export function writeLayoutDir(dir: string, files: FixtureFile[]): string {
  for (const f of files) {
    const p = join(dir, f.name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.data);
  }
  return dir;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/** An uncompressed ustar archive of `files` (directories implied), ending with two zero blocks. */
export function tarBytes(files: FixtureFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const h = Buffer.alloc(512);
    let name = f.name;
    let prefix = "";
    if (Buffer.byteLength(name) > 100) {
      const cut = name.lastIndexOf("/", 154);
      prefix = name.slice(0, cut);
      name = name.slice(cut + 1);
    }
    h.write(name, 0, 100, "utf8");
    h.write(octal(0o644, 8), 100, "latin1");
    h.write(octal(0, 8), 108, "latin1");
    h.write(octal(0, 8), 116, "latin1");
    h.write(octal(f.data.length, 12), 124, "latin1");
    h.write(octal(1_700_000_000, 12), 136, "latin1");
    h.write("        ", 148, "latin1");
    h.write("0", 156, "latin1");
    h.write("ustar\0", 257, "latin1");
    h.write("00", 263, "latin1");
    h.write(prefix, 345, 155, "utf8");
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += h[i]!;
    h.write(octal(sum, 7) + " ", 148, "latin1");
    parts.push(h, Buffer.from(f.data));
    const pad = (512 - (f.data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Writes `files` as a .tar.gz at `path`; returns `path`. */
export function writeLayoutTarGz(path: string, files: FixtureFile[]): string {
  writeFileSync(path, gzipSync(tarBytes(files)));
  return path;
}

/** Bytes that are not valid UTF-8 inside otherwise readable text. */
export function invalidUtf8Review(): Uint8Array {
  const a = new TextEncoder().encode("A zorblax film, ");
  const b = new TextEncoder().encode(" but the plot was splendid.");
  return new Uint8Array([...a, 0xff, 0xfe, 0xc3, ...b]);
}

/** A review of about `bytes` bytes of invented words. */
export function hugeReview(bytes: number): string {
  const unit = "zorblax quintaven splendid plot. ";
  return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
}
