// A trained model on disk, written atomically as one directory:
//   config.json   format, ModelConfig, parameter layout (names, shapes, offsets), hashes, max length, training summary
//   params.bin    [N] float32 little-endian, layout order
//   vocab.json    the vocabulary the model was trained with (copied from the dataset)
//   tfjs/         the TensorFlow.js LayersModel export (model.json + weights.bin), see ./export.ts
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { removeStaleTemps, replaceDir, tempDirBeside } from "../atomic.js";
import type { KeepSide, ModelConfig } from "../config.js";
import { ImdbTrainError, InputError, OutputError, errorMessage } from "../errors.js";
import { paramLayout, type ParamLayout } from "./layout.js";

export const MODEL_FORMAT = "imdb-train-model/1";

export interface ModelFile {
  format: string;
  model: ModelConfig;
  layout: ParamLayout;
  /** Tokens kept per review at training time (0 = all); eval and predict truncate the same way. */
  maxLen: number;
  /** Which end of a longer review was kept ("first" when absent: models written before the option). */
  keep?: KeepSide;
  vocabHash: string;
  paramsSha256: string;
  training: Record<string, unknown>;
}

export interface LoadedModel extends ModelFile {
  dir: string;
  params: Float32Array;
  vocabPath: string;
}

/**
 * Write the model directory `dir`, never half-written: its files are made in a new private sibling
 * (`.<name>.tmp-<pid>-XXXXXX`, created exclusively: nothing planted there is followed), which then replaces
 * `dir` by rename (see replaceDir).
 */
export function saveModel(dir: string, m: { model: ModelConfig; params: Float32Array; maxLen: number; keep: KeepSide; vocabPath: string; vocabHash: string; training: Record<string, unknown> },
  extra?: (tmpDir: string) => Promise<void>): Promise<ModelFile> {
  return (async () => {
    const layout = paramLayout(m.model);
    if (m.params.length !== layout.size) throw new InputError(`parameters have ${m.params.length} values; the layout needs ${layout.size}`);
    let tmp: string;
    try {
      removeStaleTemps(dir);
      tmp = tempDirBeside(dir);
    } catch (err) {
      throw writeFailure(dir, err);
    }
    try {
      const bytes = Buffer.from(m.params.buffer, m.params.byteOffset, m.params.byteLength);
      writeFileSync(join(tmp, "params.bin"), bytes);
      copyFileSync(m.vocabPath, join(tmp, "vocab.json"));
      const file: ModelFile = {
        format: MODEL_FORMAT, model: m.model, layout, maxLen: m.maxLen, keep: m.keep, vocabHash: m.vocabHash,
        paramsSha256: createHash("sha256").update(bytes).digest("hex"), training: m.training,
      };
      writeFileSync(join(tmp, "config.json"), JSON.stringify(file, null, 2) + "\n");
      if (extra) await extra(tmp);
      chmodSync(tmp, 0o755); // mkdtemp made it private; the model is for others to read
      replaceDir(tmp, dir);
      return file;
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw writeFailure(dir, err);
    }
  })();
}

/** A file-system error while writing the model (a full disk) as an OutputError naming the directory. */
function writeFailure(dir: string, err: unknown): Error {
  if (err instanceof ImdbTrainError) return err;
  return new OutputError(`cannot write the model: ${errorMessage(err)}`, { path: dir, cause: err });
}

/** Read and verify a model directory (format, layout hash, parameter checksum). */
export function loadModel(dir: string): LoadedModel {
  const cfgPath = join(dir, "config.json");
  if (!existsSync(cfgPath)) throw new InputError("not a model directory (no config.json)", { path: dir });
  let file: ModelFile;
  try {
    file = JSON.parse(readFileSync(cfgPath, "utf8")) as ModelFile;
  } catch (err) {
    throw new InputError(`cannot read the model config: ${(err as Error).message}`, { path: cfgPath, cause: err });
  }
  if (file.format !== MODEL_FORMAT) throw new InputError(`not a model config (expected format "${MODEL_FORMAT}")`, { path: cfgPath });
  const layout = paramLayout(file.model);
  if (layout.hash !== file.layout.hash) throw new InputError(`layout hash ${file.layout.hash} does not match the model config (${layout.hash})`, { path: cfgPath });
  const pPath = join(dir, "params.bin");
  let bytes: Buffer;
  try { bytes = readFileSync(pPath); } catch (err) { throw new InputError(`cannot read parameters: ${(err as Error).message}`, { path: pPath, cause: err }); }
  if (bytes.length !== layout.size * 4) throw new InputError(`has ${bytes.length} bytes; the layout needs ${layout.size * 4}`, { path: pPath });
  if (createHash("sha256").update(bytes).digest("hex") !== file.paramsSha256) throw new InputError("parameter checksum mismatch (corrupt file)", { path: pPath });
  const params = new Float32Array(layout.size);
  Buffer.from(params.buffer).set(bytes);
  return { ...file, dir, params, vocabPath: join(dir, "vocab.json") };
}
