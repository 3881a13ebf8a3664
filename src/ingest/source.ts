// Reads the Large Movie Review Dataset in its official layout — a directory (`aclImdb/`) or the
// `.tar.gz` archive streamed through gunzip (never extracted to disk):
//   [aclImdb/]{train,test}/{pos,neg}/<id>_<rating>.txt     the labelled splits, read by default
//   [aclImdb/]train/unsup/<id>_0.txt                        the unlabelled reviews: split "unsup", on request
// Anything else in the layout (README, *.feat, imdb.vocab, urls_*.txt) is ignored.
import { createReadStream } from "node:fs";
import { open, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createGunzip } from "node:zlib";
import { InputError } from "../errors.js";
import { DEFAULT_MAX_REVIEW_BYTES, DEFAULT_MAX_UNPACKED_BYTES } from "./options.js";
import { TarFormatError, TarParser } from "./tar.js";

export type SourceSplit = "train" | "test" | "unsup";
/** The labelled splits: what is read unless `splits` says otherwise. */
export const SOURCE_SPLITS: readonly SourceSplit[] = ["train", "test"];
const ALL_SPLITS: readonly SourceSplit[] = ["train", "test", "unsup"];

/** The folders of the layout, in reading order: [split, folder under the split's directory]. */
const FOLDERS: readonly { split: SourceSplit; dir: string; folder: string }[] = [
  { split: "train", dir: "train", folder: "neg" }, { split: "train", dir: "train", folder: "pos" },
  { split: "test", dir: "test", folder: "neg" }, { split: "test", dir: "test", folder: "pos" },
  { split: "unsup", dir: "train", folder: "unsup" },
];

export interface Review {
  split: SourceSplit;
  /** 1 = pos/, 0 = neg/ — and 0 for an unlabelled review (split "unsup"), which has none. */
  label: 0 | 1;
  /** The star rating from the file name (1–4 negative, 7–10 positive, 0 unlabelled). */
  rating: number;
  /** "train/pos/123_8": the folder in the layout and the file name without ".txt" ("train/unsup/123_0"). */
  id: string;
  text: string;
}

/** A review before decoding: what the ingest pipeline hands to its workers. */
export interface RawReview {
  split: SourceSplit;
  label: 0 | 1;
  rating: number;
  id: string;
  /** The file, for messages: "aclImdb/train/pos/123_8.txt" (or its path on disk). */
  file: string;
  /** Serial number within its split and label folder (the <id> of the file name). */
  serial: number;
  bytes: Uint8Array;
}

export interface ReadOptions {
  /** Splits to read: "train", "test", "unsup" (default train and test; an absent split is not an error). */
  splits?: readonly string[];
  /** Called for a file inside pos/, neg/ or unsup/ that is not a review (bad name): it is skipped. */
  onSkip?: (file: string, reason: string) => void;
  /** Called as input bytes are read (compressed bytes for an archive, file bytes for a directory). */
  onRead?: (bytes: number) => void;
  /** A review larger than this (bytes) is skipped without being read into memory (default 256 KiB). */
  maxReviewBytes?: number;
  /** Called for each review skipped for its size. */
  onTooLarge?: (file: string, bytes: number) => void;
  /** A .tar.gz that unpacks to more than this many bytes is an InputError (default 2 GiB). */
  maxUnpackedBytes?: number;
}

const NO_BYTES = new Uint8Array(0);
const REVIEW_NAME = /^(\d+)_(\d+)\.txt$/;
const IN_LAYOUT = /(?:^|\/)(train|test)\/(pos|neg|unsup)\/([^/]+)$/;
const NOT_LAYOUT = "not an aclImdb layout: expected train/{pos,neg}/<id>_<rating>.txt or test/{pos,neg}/... inside";
const ONLY_UNSUP = "holds only unlabelled reviews (train/unsup/), which were not asked for: ingest them with --unsup";

/** The split of a file at <dir>/<folder>/ in the layout (test/unsup/ is not in it). */
function splitOf(dir: string, folder: string): SourceSplit | null {
  if (folder !== "unsup") return dir as SourceSplit;
  return dir === "train" ? "unsup" : null;
}

/** The kind of input at `path`: "dir", "tar.gz" or "tar"; InputError when missing or neither. */
export async function sourceKind(path: string): Promise<"dir" | "tar.gz" | "tar"> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(code === "ENOENT" ? "no such file or directory" : `cannot read: ${(err as Error).message}`, { path, cause: err });
  }
  if (st.isDirectory()) return "dir";
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "tar.gz";
    if (bytesRead === 512 && head.toString("latin1", 257, 262) === "ustar") return "tar";
  } finally {
    await fh.close();
  }
  throw new InputError("not a directory, a .tar.gz or a .tar archive of the aclImdb layout", { path });
}

function parseReviewPath(split: SourceSplit, dir: string, folder: string, name: string, file: string, bytes: Uint8Array): RawReview | null {
  const m = REVIEW_NAME.exec(name);
  if (!m) return null;
  return {
    split,
    label: folder === "pos" ? 1 : 0,
    rating: Number(m[2]),
    id: `${dir}/${folder}/${name.slice(0, -4)}`,
    serial: Number(m[1]),
    file,
    bytes,
  };
}

/**
 * Every review under `path` (directory or archive), as raw bytes, in the order they are stored.
 * Throws InputError naming `path` for a missing input, a non-aclImdb layout, or a corrupt/truncated archive.
 */
export async function* readRawReviews(path: string, opts: ReadOptions = {}): AsyncGenerator<RawReview> {
  for await (const group of readRawGroups(path, opts)) yield* group;
}

/** Like readRawReviews, in groups (one per chunk of input): far fewer async steps for the pipeline. */
export async function* readRawGroups(path: string, opts: ReadOptions = {}): AsyncGenerator<RawReview[]> {
  const splits = new Set(opts.splits ?? SOURCE_SPLITS);
  for (const s of splits) if (!(ALL_SPLITS as readonly string[]).includes(s)) throw new InputError(`unknown split "${s}" (train, test or unsup)`, { path });
  const kind = await sourceKind(path);
  const seen = { found: 0, unsup: false };
  // reviews skipped for their size count as found: the input is in the layout
  const counting: ReadOptions = { ...opts, onTooLarge: (file, bytes) => { seen.found++; opts.onTooLarge?.(file, bytes); } };
  const source = kind === "dir" ? readDir(path, splits, counting, seen) : readArchive(path, kind === "tar.gz", splits, counting, seen);
  for await (const group of source) {
    seen.found += group.length;
    if (group.length > 0) yield group;
  }
  if (seen.found > 0) return;
  if (seen.unsup && !splits.has("unsup")) throw new InputError(ONLY_UNSUP, { path });
  throw new InputError(`${NOT_LAYOUT} (no reviews of split ${[...splits].join("/")} found)`, { path });
}

/** What a reader saw: reviews it yielded or skipped for their size, and whether unlabelled reviews were there. */
interface Seen {
  found: number;
  unsup: boolean;
}

/** Every review, decoded as UTF-8 (invalid bytes become U+FFFD). Used by eval/predict. */
export async function* readReviews(path: string, opts: ReadOptions = {}): AsyncGenerator<Review> {
  const dec = new TextDecoder("utf-8");
  for await (const r of readRawReviews(path, opts)) {
    const { bytes, file: _file, serial: _serial, ...rest } = r;
    yield { ...rest, text: dec.decode(bytes) };
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function* readDir(path: string, splits: Set<string>, opts: ReadOptions, seen: Seen): AsyncGenerator<RawReview[]> {
  let root = path;
  const hasSplit = async (r: string) => (await isDir(join(r, "train"))) || (await isDir(join(r, "test")));
  if (!(await hasSplit(root))) {
    if (await hasSplit(join(path, "aclImdb"))) root = join(path, "aclImdb");
    else throw new InputError(`${NOT_LAYOUT} (no train/ or test/ folder)`, { path });
  }
  const WINDOW = 64; // files read concurrently
  for (const { split, dir: splitDir, folder } of FOLDERS) {
    const dir = join(root, splitDir, folder);
    if (!splits.has(split)) {
      if (split === "unsup" && (await isDir(dir))) seen.unsup = true;
      continue;
    }
    if (!(await isDir(dir))) continue;
    const items: RawReview[] = [];
    for (const name of (await readdir(dir)).sort()) {
      const file = join(dir, name);
      const r = parseReviewPath(split, splitDir, folder, name, file, NO_BYTES);
      if (r) items.push(r);
      else opts.onSkip?.(file, "not a review file name (<id>_<rating>.txt)");
    }
    items.sort((a, b) => a.serial - b.serial);
    for (let i = 0; i < items.length; i += WINDOW) {
      const win = await readWindow(items.slice(i, i + WINDOW), opts);
      if (win.length > 0) yield win;
    }
  }
}

/** Reads the files of `win` at once, except those over the size limit (told from their size on disk). */
async function readWindow(win: RawReview[], opts: ReadOptions): Promise<RawReview[]> {
  const limit = opts.maxReviewBytes ?? DEFAULT_MAX_REVIEW_BYTES;
  const cannotRead = (file: string) => (err: Error) => { throw new InputError(`cannot read: ${err.message}`, { path: file, cause: err }); };
  const sizes = await Promise.all(win.map((it) => stat(it.file).then((st) => st.size, cannotRead(it.file))));
  const kept = win.filter((it, k) => {
    if (sizes[k]! <= limit) return true;
    opts.onTooLarge?.(it.file, sizes[k]!);
    return false;
  });
  const datas = await Promise.all(kept.map((it) => readFile(it.file).catch(cannotRead(it.file))));
  if (opts.onRead) for (const d of datas) opts.onRead(d.length);
  kept.forEach((it, k) => { it.bytes = datas[k]!; });
  return kept;
}

async function* readArchive(path: string, gzip: boolean, splits: Set<string>, opts: ReadOptions, seen: Seen): AsyncGenerator<RawReview[]> {
  const maxUnpacked = opts.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES;
  /** The split of an entry in the layout that was asked for, or null. */
  const wanted = (m: RegExpExecArray | null): SourceSplit | null => {
    const split = m === null ? null : splitOf(m[1]!, m[2]!);
    if (split === "unsup" && !splits.has(split)) seen.unsup = true;
    return split !== null && splits.has(split) ? split : null;
  };
  const parser = new TarParser((name) => wanted(IN_LAYOUT.exec(name)) !== null,
    { maxFileBytes: opts.maxReviewBytes ?? DEFAULT_MAX_REVIEW_BYTES, maxEntryBytes: maxUnpacked });
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  if (opts.onRead) file.on("data", (c) => opts.onRead!(c.length));
  let stream: NodeJS.ReadableStream = file;
  if (gzip) {
    const gunzip = createGunzip({ chunkSize: 1 << 20 }); // 1 MiB pieces: a quarter of the calls into zlib of 256 KiB ones
    file.on("error", (e) => gunzip.destroy(e));
    file.pipe(gunzip);
    stream = gunzip;
  }
  let unpacked = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      unpacked += chunk.length;
      if (gzip && unpacked > maxUnpacked) throw new InputError(unpackedTooLarge(maxUnpacked), { path });
      const group: RawReview[] = [];
      for (const e of parser.push(chunk)) {
        if (e.type !== "file") continue;
        const m = IN_LAYOUT.exec(e.name);
        const split = wanted(m);
        if (split === null) continue;
        const file = `${path}:${e.name}`;
        const r = parseReviewPath(split, m![1]!, m![2]!, m![3]!, file, e.data);
        if (!r) opts.onSkip?.(file, "not a review file name (<id>_<rating>.txt)");
        else if (e.tooLarge) opts.onTooLarge?.(file, e.size);
        else group.push(r);
      }
      yield group;
    }
    parser.end();
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    let why: string;
    if (err instanceof TarFormatError) why = `${err.message} at byte ${err.offset} of the uncompressed stream`;
    else if (code === "Z_BUF_ERROR") why = "archive is truncated (unexpected end of the gzip stream)";
    else if (typeof code === "string" && code.startsWith("Z_")) why = `corrupt gzip data (${(err as Error).message})`;
    else why = `cannot read the archive: ${(err as Error).message}`;
    throw new InputError(why, { path, cause: err });
  } finally {
    file.destroy();
  }
}

function unpackedTooLarge(limit: number): string {
  const mib = Math.round(limit / 2 ** 20);
  return `the archive unpacks to more than ${mib} MiB, the limit (a damaged archive or a decompression bomb); ` +
    `if it is genuine, raise the limit with --max-unpacked-mb`;
}
