// The ingest role's programmatic API (wiring only): IMDB → tokens → vocabulary → length-bucketed Arrow
// batches (and, with `unsup: true`, the unlabelled reviews as the split "unsup"). `train --data` calls
// runIngest; trainers, eval and predict read with openDataset/readReviews.
export { runIngest, DEFAULT_MAX_REVIEW_BYTES, type IngestOptions, type IngestResult } from "./pipeline.js";
export { DEFAULT_MAX_UNPACKED_BYTES, DEFAULT_VOCAB_FROM } from "./options.js";
export { openDataset, type Dataset } from "../dataset/open.js";
export { bucketBatches, paddingOf, type BucketOptions } from "./bucket.js";
export { tokenize, forEachToken, normalize } from "./tokenizer.js";
export { loadVocab, encode, makeVocab, type Vocab } from "../dataset/vocab.js";
export { readReviews, readRawReviews, sourceKind, type Review, type RawReview } from "./source.js";
export { decodeBatchMessage, decodeArrowFile, ARROW_FORMAT } from "../dataset/arrow.js";
export { BATCH_STREAM, BATCH_SUBJECTS, DATASET_BUCKET, batchSubject, batchMsgId } from "./publish.js";
export { MANIFEST_FORMAT, type Manifest, type VocabFrom } from "../dataset/manifest.js";
export { ensureOfficialArchive, OFFICIAL_URL, OFFICIAL_SHA256 } from "./download.js";
