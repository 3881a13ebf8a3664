// Where a dataset is written: a temporary directory beside --out, each file hashed as it is written (the
// manifest lists them), renamed into place at the end. Nothing half-written stays behind: a failure, or
// SIGINT/SIGTERM while it exists, removes the temporary directory.
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, rmSync, writeSync } from "node:fs";
import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { UsageError } from "../errors.js";
import { sha256, type Manifest } from "../dataset/manifest.js";

/** Writes one file piece by piece: `write(sink)` hands each piece to `sink`, which consumes it before returning. */
export type PiecesWriter = (sink: (piece: Uint8Array) => void) => void;

/** The files of a dataset being written, with their sizes and checksums. */
export class DatasetFiles {
  readonly files: Manifest["files"] = {};
  constructor(readonly dir: string) {}

  /** Writes a whole file. */
  async put(name: string, bytes: Uint8Array | string): Promise<void> {
    await writeFile(join(this.dir, name), bytes);
    this.files[name] = { bytes: typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length, sha256: sha256(bytes) };
  }

  /** Writes manifest.json, which lists the other files but not itself. */
  async putManifest(json: string): Promise<void> {
    await writeFile(join(this.dir, "manifest.json"), json);
  }

  /** Writes a file a piece at a time (synchronously: the pieces are reused buffers), hashed as it goes. */
  async putPieces(name: string, write: PiecesWriter): Promise<void> {
    const fd = openSync(join(this.dir, name), "w");
    const hash = createHash("sha256");
    let bytes = 0;
    try {
      write((piece) => {
        hash.update(piece);
        for (let done = 0; done < piece.length;) done += writeSync(fd, piece, done);
        bytes += piece.length;
      });
    } finally {
      closeSync(fd);
    }
    this.files[name] = { bytes, sha256: hash.digest("hex") };
  }
}

/** The resolved --out; UsageError when it exists and `force` is not set. */
export async function checkTarget(out: string, force: boolean | undefined): Promise<{ out: string; exists: boolean }> {
  const path = resolve(out);
  const exists = await stat(path).then(() => true, () => false);
  if (exists && !force) throw new UsageError(`${path} already exists; pass --force to replace it`);
  await mkdir(dirname(path), { recursive: true });
  return { out: path, exists };
}

/**
 * Runs `fill` on a new temporary directory beside `target.out`, then renames it into place (replacing the
 * old dataset when there is one). On failure, or on SIGINT/SIGTERM meanwhile, the directory is removed.
 */
export async function writeInPlace<T>(target: { out: string; exists: boolean }, fill: (files: DatasetFiles) => Promise<T>): Promise<T> {
  const { out } = target;
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  const removeOnSignal = cleanupOnSignal(tmp); // armed before the directory exists
  try {
    await mkdir(tmp);
    const result = await fill(new DatasetFiles(tmp));
    if (target.exists) {
      const old = `${tmp}.old`;
      await rename(out, old);
      await rename(tmp, out);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, out);
    }
    return result;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    removeOnSignal();
  }
}

/**
 * While `dir` exists, SIGINT/SIGTERM remove it first (no half-written dataset stays behind), then the
 * signal takes its usual course: re-raised when nobody else listens. Returns the function that disarms it.
 */
function cleanupOnSignal(dir: string): () => void {
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];
  const handler = (sig: NodeJS.Signals) => {
    disarm();
    // A write still running on libuv's thread pool can add a file while the directory is being removed
    // (ENOTEMPTY): retry until it is gone, and never let the handler throw.
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 10 });
        break;
      } catch { /* try again */ }
    }
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const disarm = () => { for (const s of signals) process.removeListener(s, handler); };
  for (const s of signals) process.on(s, handler);
  return disarm;
}
