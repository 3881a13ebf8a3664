// The options of `ingest` (what the CLI flags and the programmatic API share), their defaults and checks,
// and the result it reports.
import { DEFAULTS, KEEP_SIDES, type KeepSide } from "../config.js";
const D = DEFAULTS.ingest;
import { UsageError } from "../errors.js";
import { VOCAB_FROM, type Manifest, type VocabFrom } from "../dataset/manifest.js";
import type { PublishSummary } from "./publish.js";
import type { Telemetry } from "../telemetry.js";
import type { NatsAuth } from "../transport/nats.js";

export interface IngestOptions {
  /** aclImdb directory or .tar.gz, or several (their reviews together); omitted: the official archive,
   *  downloaded once into a cache. */
  data?: string | readonly string[];
  /** Also ingest the unlabelled reviews (train/unsup/ in any input) as the split `unsup`. */
  unsup?: boolean;
  /** With `unsup`: count the unlabelled reviews' tokens into the vocabulary too (default "train+unsup"). */
  vocabFrom?: VocabFrom;
  out: string;
  vocabSize?: number;
  minFreq?: number;
  batchSize?: number;
  /** Truncate reviews to this many tokens (0 = none). */
  maxLen?: number;
  /** Which --max-len tokens of a longer review to keep (default last). */
  keep?: KeepSide;
  valFraction?: number;
  seed?: number;
  /** Split train into N Arrow files (train-0000k-of-0000N.arrow). */
  shards?: number;
  /** NATS URL: also publish every batch to JetStream (see publish.ts). */
  publish?: string;
  /** Credentials for that NATS server (src/security/keys.ts natsAuthFrom). */
  natsAuth?: NatsAuth;
  /** Replace `out` when it exists. */
  force?: boolean;
  /** Tokenizer threads (default 1: with the main thread reading, that fills two cores; each more thread
   *  compiles the tokenizer again and splits the dictionary, which the main thread then merges). */
  threads?: number;
  /** Reviews per tokenizer task (default 512; small values spread a small input over several threads in tests). */
  taskReviews?: number;
  poolBatches?: number;
  /** Reviews larger than this are skipped with a warning, without being read into memory (bytes). */
  maxReviewBytes?: number;
  /** A .tar.gz input that unpacks to more than this is refused (bytes; default 2 GiB). */
  maxUnpackedBytes?: number;
  telemetry?: Telemetry;
}

export interface IngestResult {
  train: number;
  val: number;
  test: number;
  /** Unlabelled reviews (0 without --unsup). */
  unsup: number;
  vocab: number;
  padding: number;
  out: string;
  datasetId: string;
  vocabHash: string;
  batches: { train: number; val: number; test: number; unsup: number };
  tokens: number;
  skipped: Manifest["skipped"];
  repaired: Manifest["repaired"];
  seconds: number;
  /** Seconds of each phase (read+tokenize overlap: `tokenize` ends when the last task returns). */
  phases: { read: number; tokenize: number; vocab: number; bucket: number; write: number; publish: number };
  /** CPU seconds of the whole process (all threads) in each phase: reading and tokenizing overlap, so they are one. */
  cpuPhases: { readTokenize: number; vocab: number; bucket: number; write: number; publish: number };
  /** Tokenizer tasks run by the pool's threads and by the main thread (which takes some once reading ends). */
  tokenizeTasks: { pool: number; main: number };
  published?: PublishSummary;
}

/**
 * Which reviews the vocabulary counts when the unlabelled ones are ingested: those too. They are reviews of
 * the same kind, carry no label and are never used for validation or evaluation, so counting them leaks
 * nothing; and the vocabulary then covers the words that pretraining learns from them — words rare in the
 * labelled reviews are where pretrained vectors help the classifier most. Validation reviews are never
 * counted. Without --unsup nothing changes: the training reviews alone.
 */
export const DEFAULT_VOCAB_FROM: VocabFrom = "train+unsup";

/** Where stderr is not a terminal (piped, --json, a container's log): a progress line with the position and
 *  the time left at most this often, in seconds (IMDB_TRAIN_PROGRESS_EVERY overrides it). */
export const LOG_PROGRESS_EVERY = 2;

/** A review larger than this is not a movie review (the largest in IMDB is ~14 KB). */
export const DEFAULT_MAX_REVIEW_BYTES = 256 * 1024;
/** A .tar.gz may unpack to this much: 4× the official archive with everything in it (~500 MB). */
export const DEFAULT_MAX_UNPACKED_BYTES = 2 * 2 ** 30;

/** The options with defaults filled in; UsageError naming the flag when one is out of range. */
export function resolveOptions(o: IngestOptions) {
  const r = {
    vocabSize: o.vocabSize ?? D.vocabSize,
    minFreq: o.minFreq ?? D.minFreq,
    batchSize: o.batchSize ?? D.batchSize,
    maxLen: o.maxLen ?? D.maxLen,
    keep: o.keep ?? D.keep,
    valFraction: o.valFraction ?? D.valFraction,
    seed: o.seed ?? DEFAULTS.seed,
    shards: o.shards ?? 1,
    poolBatches: o.poolBatches ?? D.poolBatches,
    threads: o.threads ?? 1,
    maxReviewBytes: o.maxReviewBytes ?? DEFAULT_MAX_REVIEW_BYTES,
    maxUnpackedBytes: o.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES,
    unsup: o.unsup ?? false,
    vocabFrom: o.vocabFrom ?? DEFAULT_VOCAB_FROM,
  };
  const check = (ok: boolean, msg: string) => { if (!ok) throw new UsageError(msg); };
  check(Number.isInteger(r.vocabSize) && r.vocabSize >= 1, `--vocab-size must be an integer >= 1, got ${r.vocabSize}`);
  check(Number.isInteger(r.minFreq) && r.minFreq >= 1, `--min-freq must be an integer >= 1, got ${r.minFreq}`);
  check(Number.isInteger(r.batchSize) && r.batchSize >= 1, `--batch-size must be an integer >= 1, got ${r.batchSize}`);
  check(Number.isInteger(r.maxLen) && r.maxLen >= 0, `--max-len must be an integer >= 0 (0 = no truncation), got ${r.maxLen}`);
  check(KEEP_SIDES.includes(r.keep), `--keep must be first or last, got ${String(r.keep)}`);
  check(VOCAB_FROM.includes(r.vocabFrom), `--vocab-from must be ${VOCAB_FROM.join(" or ")}, got ${String(r.vocabFrom)}`);
  check(r.valFraction >= 0 && r.valFraction < 1, `--val-fraction must be in [0, 1), got ${r.valFraction}`);
  check(Number.isInteger(r.seed), `--seed must be an integer, got ${r.seed}`);
  check(Number.isInteger(r.shards) && r.shards >= 1 && r.shards <= 99999, `--shards must be an integer in 1..99999, got ${r.shards}`);
  check(Number.isInteger(r.threads) && r.threads >= 1, `threads must be >= 1, got ${r.threads}`);
  check(r.maxReviewBytes >= 1, `maxReviewBytes must be >= 1, got ${r.maxReviewBytes}`);
  check(r.maxUnpackedBytes >= 1, `--max-unpacked-mb must be >= 1 (MiB), got ${r.maxUnpackedBytes / 2 ** 20}`);
  return r;
}

