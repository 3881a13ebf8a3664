// `ingest` without --data: fetch the official archive once into a cache directory, verify its
// checksum, reuse it afterwards. Offline, fail fast with a message that says to pass --data.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ConnectionError, InputError } from "../errors.js";
import { logger, progress } from "../output.js";
import { LOG_PROGRESS_EVERY } from "./options.js";
import { openTemp } from "../atomic.js";

/** The Large Movie Review Dataset v1.0 (Maas et al., 2011). Override with IMDB_TRAIN_DATA_URL (tests). */
export const OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz";
export const OFFICIAL_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe";
/** No response headers within this long: give up (ms). */
export const CONNECT_TIMEOUT_MS = 15_000;

const log = logger("ingest");

/** Cache directory: $IMDB_TRAIN_CACHE, else $XDG_CACHE_HOME/imdb-train, else ~/.cache/imdb-train. */
export function cacheDir(): string {
  return process.env.IMDB_TRAIN_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "imdb-train");
}

async function fileSha256(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

/**
 * Path of a verified copy of the official archive, downloading it when the cache lacks it.
 * `url`/`sha256` default to the official ones (IMDB_TRAIN_DATA_URL / IMDB_TRAIN_DATA_SHA256 override).
 */
export async function ensureOfficialArchive(opts: { url?: string; sha256?: string } = {}): Promise<string> {
  const url = opts.url ?? process.env.IMDB_TRAIN_DATA_URL ?? OFFICIAL_URL;
  const want = opts.sha256 ?? process.env.IMDB_TRAIN_DATA_SHA256 ?? OFFICIAL_SHA256;
  const dir = cacheDir();
  const path = join(dir, "aclImdb_v1.tar.gz");
  try {
    await stat(path);
    if ((await fileSha256(path)) === want) {
      log.info(`using the cached archive ${path}`);
      return path;
    }
    log.warn(`${path}: checksum mismatch, downloading again`);
  } catch { /* not cached */ }
  await mkdir(dir, { recursive: true });
  const hint = "pass --data <aclImdb directory or .tar.gz> (a copy of aclImdb_v1.tar.gz)";
  log.info(`no --data: downloading ${url} to ${dir}`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new ConnectionError(`cannot download the IMDB archive from ${url} (${why}); this machine seems offline: ${hint}`, { cause: err });
  }
  if (!res.ok || !res.body) throw new ConnectionError(`cannot download ${url}: HTTP ${res.status}; ${hint}`);
  const total = Number(res.headers.get("content-length") ?? 0);
  const bar = progress("download", Math.round(total / 1e6), "MB", { logEvery: LOG_PROGRESS_EVERY, component: "ingest" });
  const hash = createHash("sha256");
  let got = 0;
  const { tmp, fd } = openTemp(path);
  const body = Readable.fromWeb(res.body as never);
  body.on("data", (c: Buffer) => { hash.update(c); got += c.length; bar.set(Math.round(got / 1e6)); });
  try {
    await pipeline(body, createWriteStream(tmp, { fd }));
  } catch (err) {
    await rm(tmp, { force: true });
    throw new ConnectionError(`download of ${url} failed after ${got} bytes: ${(err as Error).message}; ${hint}`, { cause: err });
  }
  bar.done();
  const got256 = hash.digest("hex");
  if (got256 !== want) {
    await rm(tmp, { force: true });
    throw new InputError(`downloaded archive has sha256 ${got256}, expected ${want}`, { path: url });
  }
  await rename(tmp, path);
  return path;
}
