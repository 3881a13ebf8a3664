// Reading a dataset directory written by `ingest`: manifest, vocabulary and padded batches.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Batch, Split } from "./batch.js";
import { InputError } from "../errors.js";
import { decodeArrowFile } from "./arrow.js";
import { MANIFEST_FORMAT, sha256, type Manifest } from "./manifest.js";
import { loadVocab, type Vocab } from "./vocab.js";

export interface Dataset {
  dir: string;
  manifest: Manifest;
  vocab: Vocab;
  /** Splits present, in the order train, val, test. */
  splits: Split[];
  /**
   * The split's batches in file order (Batch.index = position in the split). With `shard`, only the
   * batches with index % count === shard.index (what data-parallel rank `index` of `count` trains on).
   */
  batches(split: Split, shard?: { index: number; count: number }): Batch[];
}

/**
 * Opens `dir`: checks the manifest's format, every file's sha256, and that each Arrow file was made
 * with this vocabulary. Batches are decoded once, here.
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
  const bytes = new Map<string, Uint8Array>();
  for (const [name, info] of Object.entries(manifest.files)) {
    const p = join(dir, name);
    let b: Uint8Array;
    try {
      b = await readFile(p);
    } catch (err) {
      throw new InputError(`missing dataset file: ${(err as Error).message}`, { path: p, cause: err });
    }
    if (opts.verify !== false && sha256(b) !== info.sha256) throw new InputError(`checksum mismatch (manifest says ${info.sha256}): the file was changed or damaged`, { path: p });
    bytes.set(name, b);
  }
  const vocab = loadVocab(join(dir, manifest.vocab.file));
  if (vocab.hash !== manifest.vocab.hash) throw new InputError("vocabulary hash differs from the manifest", { path: join(dir, manifest.vocab.file) });
  const splits = (["train", "val", "test"] as Split[]).filter((s) => manifest.splits[s] !== undefined);
  const bySplit = new Map<Split, Batch[]>();
  for (const s of splits) {
    const all: Batch[] = [];
    for (const name of manifest.splits[s]!.files) {
      const contents = decodeArrowFile(bytes.get(name)!, join(dir, name));
      if (contents.meta.vocabHash !== vocab.hash) throw new InputError(`made with another vocabulary (${contents.meta.vocabHash})`, { path: join(dir, name) });
      all.push(...contents.batches);
    }
    all.sort((a, b) => a.index - b.index);
    bySplit.set(s, all);
  }
  return {
    dir, manifest, vocab, splits,
    batches(split, shard) {
      const all = bySplit.get(split);
      if (!all) throw new InputError(`the dataset has no ${split} split`, { path: dir });
      if (!shard) return all;
      if (!(shard.count >= 1) || shard.index < 0 || shard.index >= shard.count) throw new RangeError(`bad shard ${shard.index}/${shard.count}`);
      return all.filter((b) => b.index % shard.count === shard.index);
    },
  };
}
