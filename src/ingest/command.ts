// Subcommands of the ingest role: `ingest` and `bench ingest`. Each entry is a CommandSpec (see
// src/command.ts); src/cli.ts wires them.
import { JSON_OPTION, KEEP_OPTION, METRICS_PORT_OPTION, defineCommand, type OptionSpec, type OptionsOf } from "../command.js";
import { NATS_AUTH_OPTIONS } from "../security/options.js";
import { DEFAULTS } from "../config.js";
import { DEFAULT_MAX_UNPACKED_BYTES, DEFAULT_VOCAB_FROM } from "./options.js";
import { VOCAB_FROM } from "../dataset/manifest.js";
import { emitJson, logger } from "../output.js";
import type { Telemetry } from "../telemetry.js";

const log = logger("ingest");
const DEFAULT_MAX_UNPACKED_MB = DEFAULT_MAX_UNPACKED_BYTES / 2 ** 20;

async function ingest(o: IngestCliOptions, telemetry?: Telemetry): Promise<void> {
  const { runIngest } = await import("./pipeline.js");
  // NATS credentials are read (and a bad file reported) before any work
  const natsAuth = o.publish ? (await import("../security/keys.js")).natsAuthFrom(o) : undefined;
  const r = await runIngest({
    data: o.data, out: o.out, unsup: o.unsup, vocabFrom: o.vocabFrom,
    vocabSize: o.vocabSize, minFreq: o.minFreq, batchSize: o.batchSize,
    maxLen: o.maxLen, keep: o.keep, valFraction: o.valFraction, seed: o.seed,
    shards: o.shards, publish: o.publish, natsAuth, threads: o.threads,
    maxUnpackedBytes: o.maxUnpackedMb * 2 ** 20, force: o.force, telemetry,
  });
  const unsup = r.unsup > 0 ? ` + ${r.unsup} unsup` : "";
  log.info(`${r.train} train + ${r.val} val + ${r.test} test${unsup} reviews, vocabulary ${r.vocab}, padding ${(r.padding * 100).toFixed(2)}%, ${r.seconds.toFixed(2)} s → ${r.out}`);
  if (o.json) emitJson(r);
}

const INGEST_OPTIONS = [
  { name: "data", value: "<path>", type: "string", repeatable: true, description: "aclImdb directory or .tar.gz; give it again to read several (e.g. the labelled and the unlabelled archives) (default: download the official archive)" },
  { name: "unsup", type: "bool", description: "also ingest the unlabelled reviews (train/unsup/ in any --data input, or in the downloaded archive) as the split unsup (about doubles time and disk)" },
  { name: "vocab-from", value: "<train|train+unsup>", type: "string", choices: VOCAB_FROM, default: DEFAULT_VOCAB_FROM, description: "with --unsup: whose tokens the vocabulary counts (validation reviews never)" },
  { name: "out", value: "<dir>", type: "string", description: "dataset directory to create", required: true },
  { name: "vocab-size", value: "<n>", type: "int", description: "most frequent tokens kept (plus <unk>, <pad>)", default: DEFAULTS.ingest.vocabSize, min: 1 },
  { name: "min-freq", value: "<n>", type: "int", description: "drop tokens seen fewer times in the counted reviews (train; with --unsup, see --vocab-from)", default: DEFAULTS.ingest.minFreq, min: 1 },
  { name: "batch-size", value: "<n>", type: "int", description: "reviews per batch", default: DEFAULTS.ingest.batchSize, min: 1 },
  { name: "max-len", value: "<n>", type: "int", description: "truncate reviews to n tokens (0 = keep whole)", default: DEFAULTS.ingest.maxLen, min: 0 },
  KEEP_OPTION,
  { name: "val-fraction", value: "<f>", type: "float", description: "seeded validation share of train", default: DEFAULTS.ingest.valFraction, min: 0, below: 1 },
  { name: "seed", value: "<n>", type: "int", description: "seed of the split and the bucketing", default: DEFAULTS.seed },
  { name: "shards", value: "<n>", type: "int", description: "split train (and unsup) into n Arrow files", default: 1, min: 1, max: 99999 },
  { name: "publish", value: "<nats-url>", type: "string", description: "also publish every batch to JetStream at this NATS server" },
  ...NATS_AUTH_OPTIONS,
  { name: "threads", value: "<n>", type: "int", description: "tokenizer threads (1 keeps a 2-core machine busiest: main thread reads, one thread tokenizes)", default: 1, min: 1, max: 64 },
  { name: "max-unpacked-mb", value: "<MiB>", type: "int", description: "refuse a .tar.gz that unpacks to more than this (a damaged archive or a decompression bomb; the official archive unpacks to ~500)", default: DEFAULT_MAX_UNPACKED_MB, min: 1 },
  { name: "force", type: "bool", description: "replace --out when it exists" },
  METRICS_PORT_OPTION,
  { name: "metrics-linger", value: "<s>", type: "float", description: "with --metrics-port: keep serving this many seconds after the ingest (a last scrape)", default: 0, min: 0 },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];
type IngestCliOptions = OptionsOf<typeof INGEST_OPTIONS>;

export const commands = [
  defineCommand({
    path: ["ingest"],
    summary: "tokenize IMDB into length-bucketed Arrow batches (+ vocabulary, manifest)",
    help: [
      "Reads the Large Movie Review Dataset (aclImdb/ directory or .tar.gz, streamed, never extracted),",
      "tokenizes it on a worker thread while it reads, builds the vocabulary from the training reviews (<unk>=0,",
      "<pad>=1, then the most frequent tokens), holds out a seeded validation split, buckets reviews of similar length into",
      "batches and writes to --out: manifest.json (counts, length histogram, padding, sha256 of every file),",
      "vocab.json, train.arrow (or train-0000k-of-0000N.arrow with --shards N), val.arrow, test.arrow when the",
      "input has test/. Columns: tokens List<Int32>, length Int32, label Uint8, id Int32, rating Int8, review Utf8;",
      "one record batch per training batch. Everything is written to a temporary name and renamed at the end.",
      "",
      "Unlabelled reviews (for pretraining): --unsup also reads train/unsup/<id>_0.txt from every input (the",
      "official archive has them beside train/pos and train/neg; or pass a second --data holding them) and",
      "writes unsup.arrow, bucketed and truncated like train, with the label column all null (nullable field,",
      "schema metadata imdb_train.labelled=false; the manifest's splits.unsup says labelled: false). Validation",
      "is never drawn from them. The vocabulary counts their tokens too (--vocab-from train+unsup): they are",
      "reviews of the same kind, never used to validate or evaluate, so counting them leaks nothing, and the",
      "vocabulary then covers the words pretraining learns from them; --vocab-from train counts the training",
      "reviews alone. Without --unsup, train/unsup/ is ignored and the dataset is the same as without it; the",
      "default download leaves it out too (it about doubles ingest time and disk): add --unsup to include it.",
      "",
      "Without --data the official archive is downloaded once to ~/.cache/imdb-train (IMDB_TRAIN_CACHE) and",
      "checked against its sha256. Bad reviews (invalid UTF-8, empty, over 256 KiB, bad file names) are",
      "repaired or skipped with a warning naming the file and counted in the manifest (a review over the size",
      "limit is skipped from its tar header or file size, never read into memory); a missing input, a",
      "non-aclImdb layout, a corrupt/truncated archive, an entry with a negative or absurd size, or a .tar.gz",
      "that unpacks to more than --max-unpacked-mb stops with exit status 3 and leaves nothing behind.",
      "",
      "Progress: on a terminal, a bar per phase (read, tokenize, write, publish) with its ETA; where stderr is",
      "not a terminal (piped, --json, a container's log) a plain line per phase every 2 s instead, with the",
      "position, the rate and the time left (IMDB_TRAIN_PROGRESS_EVERY=<seconds> changes the interval).",
      "",
      "--publish <nats-url> also sends every batch to the JetStream stream IMDB_BATCHES, subject",
      "imdb.batches.<datasetId>.<split>, message id <datasetId>.<split>.<index> (de-duplicated), and puts the",
      "manifest in the KV bucket imdb-datasets.",
    ].join("\n"),
    options: INGEST_OPTIONS,
    examples: [
      "imdb-train ingest --out data/imdb                  # downloads the official archive once",
      "imdb-train ingest --data aclImdb/ --out data/imdb --vocab-size 10000 --max-len 400 --shards 2",
      "imdb-train ingest --data aclImdb-train.tar.gz --data aclImdb-unsup.tar.gz --unsup --out data/imdb-unsup",
      "imdb-train ingest --out data/imdb-unsup --unsup          # the official archive, its unlabelled reviews too",
      "imdb-train ingest --data aclImdb_v1.tar.gz --out data/imdb --publish nats://127.0.0.1:4222 --json",
    ],
    async run(o) {
      const metrics = o.metricsPort === undefined ? undefined
        : await (await import("../metrics/index.js")).startMetrics({ role: "ingest", port: o.metricsPort });
      if (metrics) log.info(`serving metrics on ${metrics.url}`);
      try {
        await ingest(o, metrics?.telemetry);
        const linger = o.metricsLinger;
        if (metrics && linger > 0) await new Promise((r) => setTimeout(r, linger * 1000));
      } finally {
        await metrics?.close();
      }
    },
  }),
];
