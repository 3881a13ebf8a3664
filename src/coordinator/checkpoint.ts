// Checkpoints: parameters + Adam state + step/epoch/data cursor in one file, written atomically
// (temp name, fsync, rename) with a SHA-256 of the arrays so that a torn or corrupt file is detected.
//
// File layout: "IMTRCKPT" (8 bytes) | u32 LE meta length | meta JSON (UTF-8) | float32 arrays back to back,
// in the order and lengths listed in meta.arrays.
import { createHash } from "node:crypto";
import { openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { InputError } from "../errors.js";

const MAGIC = Buffer.from("IMTRCKPT", "ascii");

export interface CheckpointMeta {
  format: 1;
  step: number;
  epoch: number;
  /** Batches of `epoch` already consumed (the data cursor). */
  cursor: number;
  paramVersion: number;
  seed: number;
  runId: number;
  layoutHash: string;
  adamT: number;
  savedAt: string;
  /** Anything else the coordinator wants to keep (resolved config). */
  config: Record<string, unknown>;
  arrays: { name: string; length: number }[];
  sha256: string;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  arrays: Record<string, Float32Array>;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Write a file atomically: temp name in the same directory, fsync, rename. */
export function writeAtomic(path: string, parts: readonly Buffer[]): number {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  let n = 0;
  const fd = openSync(tmp, "w");
  try {
    for (const p of parts) { writeSync(fd, p); n += p.length; }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  return n;
}

/** Save; returns the bytes written. */
export function saveCheckpoint(path: string, meta: Omit<CheckpointMeta, "format" | "arrays" | "sha256" | "savedAt">, arrays: Record<string, Float32Array>): number {
  const hash = createHash("sha256");
  const list: { name: string; length: number }[] = [];
  const blobs: Buffer[] = [];
  for (const [name, a] of Object.entries(arrays)) {
    const b = bytesOf(a);
    hash.update(b);
    blobs.push(b);
    list.push({ name, length: a.length });
  }
  const full: CheckpointMeta = { format: 1, ...meta, savedAt: new Date().toISOString(), arrays: list, sha256: hash.digest("hex") };
  const json = Buffer.from(JSON.stringify(full), "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length, 0);
  return writeAtomic(path, [MAGIC, len, json, ...blobs]);
}

/** Load and verify; throws InputError naming the file when it is truncated, corrupt or not a checkpoint. */
export function loadCheckpoint(path: string): Checkpoint {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new InputError(`cannot read checkpoint: ${(err as Error).message}`, { path, cause: err });
  }
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw new InputError("not an imdb-train checkpoint", { path });
  const metaLen = buf.readUInt32LE(8);
  if (12 + metaLen > buf.length) throw new InputError("checkpoint is truncated (metadata)", { path });
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(buf.toString("utf8", 12, 12 + metaLen)) as CheckpointMeta;
  } catch (err) {
    throw new InputError("checkpoint metadata is not valid JSON", { path, cause: err });
  }
  let at = 12 + metaLen;
  const hash = createHash("sha256");
  const arrays: Record<string, Float32Array> = {};
  for (const { name, length } of meta.arrays) {
    const bytes = length * 4;
    if (at + bytes > buf.length) throw new InputError(`checkpoint is truncated (array ${name})`, { path });
    const copy = new Float32Array(length);
    const src = buf.subarray(at, at + bytes);
    Buffer.from(copy.buffer).set(src);
    hash.update(src);
    arrays[name] = copy;
    at += bytes;
  }
  if (hash.digest("hex") !== meta.sha256) throw new InputError("checkpoint checksum mismatch (corrupt file)", { path });
  return { meta, arrays };
}
