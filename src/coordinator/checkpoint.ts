// Checkpoints: parameters + Adam state + step/epoch/data cursor/seeds in one file, written atomically
// (exclusive temp name, fsync, rename, fsync of the directory: see ../atomic.ts) and ending with a SHA-256 of everything before it,
// so that a torn, truncated or corrupt file is detected. The previous checkpoint is kept beside the newest
// (`last.ckpt`, `prev.ckpt`); resuming from a file that does not verify falls back to the previous one.
//
// File layout (format 2): "IMTRCKP2" (8 bytes) | u32 LE meta length | meta JSON (UTF-8) | float32 arrays back
// to back, in the order and lengths listed in meta.arrays | SHA-256 (32 bytes) of all the bytes before it.
// Format 1 ("IMTRCKPT", no trailer, meta.sha256 over the arrays only) is still read.
import { createHash } from "node:crypto";
import { renameSync, readFileSync, mkdirSync, rmSync, existsSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fsyncDir, removeStaleTemps, writeAtomic, writeTemp } from "../atomic.js";
import { InputError, errorMessage } from "../errors.js";

const MAGIC_V1 = Buffer.from("IMTRCKPT", "ascii");
const MAGIC_V2 = Buffer.from("IMTRCKP2", "ascii");
const DIGEST_BYTES = 32;

/** Names inside a checkpoint directory. */
export const LAST = "last.ckpt";
export const PREV = "prev.ckpt";

export interface CheckpointMeta {
  format: 1 | 2;
  step: number;
  epoch: number;
  /** Batches of `epoch` already consumed (the data cursor). */
  cursor: number;
  /** The step size `epoch`'s batch order was grouped for (absent: written before grouping, the plain shuffle). */
  orderGroup?: number;
  paramVersion: number;
  /** Seed of the initialisation and of every epoch's batch order (Rng(seed).fork(epoch)). */
  seed: number;
  runId: number;
  layoutHash: string;
  adamT: number;
  savedAt: string;
  /** Why it was written: "step" (every --checkpoint-every steps), "epoch" (epoch end) or "exit". */
  reason?: string;
  /** Running totals of the current epoch (so that a resumed epoch's summary covers the whole epoch). */
  epochStats?: { lossSum: number; correct: number; count: number; steps: number };
  /** Anything else the coordinator wants to keep (resolved config). */
  config: Record<string, unknown>;
  arrays: { name: string; length: number }[];
  /** Format 1 only: SHA-256 of the arrays. */
  sha256?: string;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  arrays: Record<string, Float32Array>;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export type NewMeta = Omit<CheckpointMeta, "format" | "arrays" | "sha256" | "savedAt">;

/** The bytes of a checkpoint file (format 2). */
function encodeCheckpoint(meta: NewMeta, arrays: Record<string, Float32Array>): Buffer[] {
  const list: { name: string; length: number }[] = [];
  const blobs: Buffer[] = [];
  for (const [name, a] of Object.entries(arrays)) {
    blobs.push(bytesOf(a));
    list.push({ name, length: a.length });
  }
  const full: CheckpointMeta = { format: 2, ...meta, savedAt: new Date().toISOString(), arrays: list };
  const json = Buffer.from(JSON.stringify(full), "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length, 0);
  const parts = [MAGIC_V2, len, json, ...blobs];
  const hash = createHash("sha256");
  for (const p of parts) hash.update(p);
  parts.push(hash.digest());
  return parts;
}

/** Save to `path` atomically; returns the bytes written. */
export function saveCheckpoint(path: string, meta: NewMeta, arrays: Record<string, Float32Array>): number {
  return writeAtomic(path, encodeCheckpoint(meta, arrays));
}

/**
 * Save as `<dir>/last.ckpt`, keeping the one it replaces as `<dir>/prev.ckpt`. The new file is complete and
 * fsynced under a temporary name before anything is renamed, so at every moment at least one verified
 * checkpoint exists (a crash between the two renames leaves only `prev.ckpt`, which `loadForResume` uses).
 */
export function saveRotating(dir: string, meta: NewMeta, arrays: Record<string, Float32Array>): { path: string; bytes: number } {
  const path = join(dir, LAST);
  mkdirSync(dir, { recursive: true });
  removeStaleTemps(path); // temp files of a process that died while writing
  const { tmp, bytes } = writeTemp(path, encodeCheckpoint(meta, arrays));
  try {
    if (existsSync(path)) renameSync(path, join(dir, PREV));
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
  return { path, bytes };
}

/** Load and verify; throws InputError naming the file when it is truncated, corrupt or not a checkpoint. */
export function loadCheckpoint(path: string): Checkpoint {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new InputError(`cannot read checkpoint: ${(err as Error).message}`, { path, cause: err });
  }
  const head = buf.subarray(0, 8);
  const v2 = head.equals(MAGIC_V2);
  if (buf.length < 12 || (!v2 && !head.equals(MAGIC_V1))) throw new InputError(`not an imdb-train checkpoint (${buf.length} bytes)`, { path });
  const metaLen = buf.readUInt32LE(8);
  if (12 + metaLen > buf.length) throw new InputError(`checkpoint is truncated (metadata: ${buf.length} bytes)`, { path });
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(buf.toString("utf8", 12, 12 + metaLen)) as CheckpointMeta;
    if (!Array.isArray(meta.arrays)) throw new Error("no array list");
    if (meta.orderGroup !== undefined && !(Number.isInteger(meta.orderGroup) && meta.orderGroup >= 1)) throw new Error(`orderGroup ${JSON.stringify(meta.orderGroup)} is not a positive integer`);
  } catch (err) {
    throw new InputError(`checkpoint metadata is not valid (${errorMessage(err)}): corrupt file`, { path, cause: err });
  }
  const dataBytes = meta.arrays.reduce((n, a) => n + Number(a.length) * 4, 0);
  const expected = 12 + metaLen + dataBytes + (v2 ? DIGEST_BYTES : 0);
  if (buf.length < expected) throw new InputError(`checkpoint is truncated (${buf.length} of ${expected} bytes)`, { path });
  if (v2) {
    if (buf.length > expected) throw new InputError(`checkpoint has ${buf.length - expected} unexpected trailing bytes: corrupt file`, { path });
    const digest = createHash("sha256").update(buf.subarray(0, expected - DIGEST_BYTES)).digest();
    if (!digest.equals(buf.subarray(expected - DIGEST_BYTES, expected))) throw new InputError("checkpoint checksum mismatch (corrupt file)", { path });
  }
  let at = 12 + metaLen;
  const hash = v2 ? null : createHash("sha256");
  const arrays: Record<string, Float32Array> = {};
  for (const { name, length } of meta.arrays) {
    const bytes = length * 4;
    const copy = new Float32Array(length);
    const src = buf.subarray(at, at + bytes);
    Buffer.from(copy.buffer).set(src);
    hash?.update(src);
    arrays[name] = copy;
    at += bytes;
  }
  if (hash && hash.digest("hex") !== meta.sha256) throw new InputError("checkpoint checksum mismatch (corrupt file)", { path });
  return { meta, arrays };
}

export interface ResumeChoice {
  checkpoint: Checkpoint;
  /** The file actually loaded. */
  path: string;
  /** Set when the requested file did not verify and an older one was used instead: why. */
  fallback?: { path: string; problem: string };
}

/**
 * The checkpoint to resume from. `path` is a checkpoint file or a directory holding `last.ckpt` / `prev.ckpt`
 * (a run's `<out>` or `<out>/checkpoints`). When the file is missing, truncated or corrupt and a previous
 * checkpoint sits beside it (`prev.ckpt`), that one is loaded instead and `fallback` says why.
 */
export function loadForResume(path: string): ResumeChoice {
  let file = path;
  if (existsSync(path) && statSync(path).isDirectory()) {
    const dir = existsSync(join(path, "checkpoints")) ? join(path, "checkpoints") : path;
    file = join(dir, LAST);
    if (!existsSync(file) && !existsSync(join(dir, PREV))) throw new InputError(`no checkpoint (${LAST} or ${PREV}) in this directory`, { path: dir });
  }
  try {
    return { checkpoint: loadCheckpoint(file), path: file };
  } catch (err) {
    const older = join(dirname(file), PREV);
    if (!(err instanceof InputError) || basename(file) === PREV || !existsSync(older)) throw err;
    const problem = errorMessage(err);
    let checkpoint: Checkpoint;
    try {
      checkpoint = loadCheckpoint(older);
    } catch (err2) {
      throw new InputError(`${problem}; the previous checkpoint is unusable too (${errorMessage(err2)})`, { path: file, cause: err2 });
    }
    return { checkpoint, path: older, fallback: { path: file, problem } };
  }
}
