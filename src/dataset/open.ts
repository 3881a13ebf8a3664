// Reading a dataset directory written by `ingest`: manifest, vocabulary and padded batches.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Batch, Split } from "./batch.js";
import { InputError } from "../errors.js";
import { decodeArrowFile } from "./arrow.js";
import { MANIFEST_FORMAT, sha256, type Manifest } from "./manifest.js";
import { loadVocab, type Vocab } from "./vocab.js";

/** The order in which splits are listed. */
const SPLITS: readonly Split[] = ["train", "val", "test", "unsup"];
/** Splits read, checked and decoded on first use rather than at open: only pretraining reads them. */
const ON_DEMAND: ReadonlySet<Split> = new Set(["unsup"]);

export interface Dataset {
  dir: string;
  manifest: Manifest;
  vocab: Vocab;
  /** Splits present, in the order train, val, test, unsup. */
  splits: Split[];
  /**
   * The split's batches in file order (Batch.index = position in the split). With `shard`, only the
   * batches with index % count === shard.index (what data-parallel rank `index` of `count` trains on).
   */
  batches(split: Split, shard?: { index: number; count: number }): Batch[];
  /** Whether the split's reviews have labels (false for unsup). */
  labelled(split: Split): boolean;
}

/**
 * Opens `dir`: checks the manifest's format, every file's sha256, and that each Arrow file was made
 * with this vocabulary. Batches are decoded once, here — those of the unlabelled split (unsup) on the
 * first `batches("unsup")`, which checks its files then (they are as large as the rest together, and
 * only pretraining reads them).
 */
export async function openDataset(dir: string, opts: { verify?: boolean } = {}): Promise<Dataset> {
  dir = resolve(dir);
  const mpath = join(dir, "manifest.json");
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(mpath, "utf8")) as Manifest;
  } catch (err) {
    throw new InputError(`not a dataset directory (cannot read manifest.json: ${(err as Error).message}); run \`imdb-train ingest\` first`, { path: dir, cause: err });
  }
  if (manifest.format !== MANIFEST_FORMAT) throw new InputError(`unsupported dataset format ${manifest.format} (expected ${MANIFEST_FORMAT})`, { path: mpath });
  const verify = opts.verify !== false;
  const splits = SPLITS.filter((s) => manifest.splits[s] !== undefined);
  const later = new Set(splits.filter((s) => ON_DEMAND.has(s)).flatMap((s) => manifest.splits[s]!.files));
  const bytes = new Map<string, Uint8Array>();
  for (const [name, info] of Object.entries(manifest.files)) {
    if (later.has(name)) continue;
    const p = join(dir, name);
    let b: Uint8Array;
    try {
      b = await readFile(p);
    } catch (err) {
      throw new InputError(`missing dataset file: ${(err as Error).message}`, { path: p, cause: err });
    }
    checkFile(p, b, info.sha256, verify);
    bytes.set(name, b);
  }
  const vocab = loadVocab(join(dir, manifest.vocab.file));
  if (vocab.hash !== manifest.vocab.hash) throw new InputError("vocabulary hash differs from the manifest", { path: join(dir, manifest.vocab.file) });
  const decode = (s: Split, read: (name: string) => Uint8Array): Batch[] => {
    const all: Batch[] = [];
    for (const name of manifest.splits[s]!.files) {
      const contents = decodeArrowFile(read(name), join(dir, name));
      if (contents.meta.vocabHash !== vocab.hash) throw new InputError(`made with another vocabulary (${contents.meta.vocabHash})`, { path: join(dir, name) });
      all.push(...contents.batches);
    }
    return all.sort((a, b) => a.index - b.index);
  };
  const readNow = (name: string): Uint8Array => {
    const p = join(dir, name);
    let b: Uint8Array;
    try {
      b = readFileSync(p);
    } catch (err) {
      throw new InputError(`missing dataset file: ${(err as Error).message}`, { path: p, cause: err });
    }
    checkFile(p, b, manifest.files[name]?.sha256, verify);
    return b;
  };
  const bySplit = new Map<Split, Batch[]>();
  for (const s of splits) if (!ON_DEMAND.has(s)) bySplit.set(s, decode(s, (name) => bytes.get(name)!));
  const batchesOf = (split: Split): Batch[] => {
    let all = bySplit.get(split);
    if (!all && splits.includes(split)) bySplit.set(split, (all = decode(split, readNow)));
    if (!all) throw new InputError(`the dataset has no ${split} split`, { path: dir });
    return all;
  };
  return {
    dir, manifest, vocab, splits,
    batches(split, shard) {
      const all = batchesOf(split);
      if (!shard) return all;
      if (!(shard.count >= 1) || shard.index < 0 || shard.index >= shard.count) throw new RangeError(`bad shard ${shard.index}/${shard.count}`);
      return all.filter((b) => b.index % shard.count === shard.index);
    },
    labelled: (split) => manifest.splits[split]?.labelled !== false,
  };
}

function checkFile(path: string, bytes: Uint8Array, want: string | undefined, verify: boolean): void {
  if (verify && sha256(bytes) !== want) throw new InputError(`checksum mismatch (manifest says ${want}): the file was changed or damaged`, { path });
}
