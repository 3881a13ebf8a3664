// `ingest --publish <nats-url>`: every batch as one JetStream message, so workers on other machines can
// consume the dataset without its files.
//   stream   IMDB_BATCHES, subjects imdb.batches.>  (retention: limits, de-duplication window 2 h)
//   subject  imdb.batches.<datasetId>.<split>        (split = train | val | test | unsup)
//   msg id   <datasetId>.<split>.<index>             (re-publishing the same dataset stores nothing new)
//   headers  Imdb-Dataset, Imdb-Split, Imdb-Batch, Imdb-Vocab-Hash
//   payload  an Arrow IPC stream with one record batch (decodeBatchMessage in ./arrow.ts reads it)
// The manifest is also put in the KV bucket `imdb-datasets` under the dataset id.
import { connectNats, ensureStream, openKv, publishJs, type NatsAuth } from "../transport/nats.js";
import { redactUrls } from "../output.js";

export const BATCH_STREAM = "IMDB_BATCHES";
export const BATCH_SUBJECTS = "imdb.batches.>";
export const DATASET_BUCKET = "imdb-datasets";
/** Publishes awaiting their acks at once. */
const WINDOW = 32;

export function batchSubject(datasetId: string, split: string): string {
  return `imdb.batches.${datasetId}.${split}`;
}

export function batchMsgId(datasetId: string, split: string, index: number): string {
  return `${datasetId}.${split}.${index}`;
}

export interface PublishItem {
  split: string;
  index: number;
  payload: Uint8Array;
}

export interface PublishSummary {
  /** The server, credentials hidden. */
  url: string;
  stream: string;
  subjects: string;
  messages: number;
  /** Messages JetStream already held (same id): a re-publish of the same dataset. */
  duplicates: number;
}

export async function publishDataset(
  url: string, datasetId: string, vocabHash: string, manifestJson: string, items: PublishItem[],
  onProgress?: (done: number) => void, auth?: NatsAuth,
): Promise<PublishSummary> {
  const client = await connectNats(url, { name: "imdb-train-ingest", auth });
  try {
    await ensureStream(client, { name: BATCH_STREAM, subjects: [BATCH_SUBJECTS] });
    let duplicates = 0;
    let done = 0;
    for (let i = 0; i < items.length; i += WINDOW) {
      const acks = await Promise.all(items.slice(i, i + WINDOW).map((it) => publishJs(client, batchSubject(datasetId, it.split), it.payload, {
        msgID: batchMsgId(datasetId, it.split, it.index),
        headers: { "Imdb-Dataset": datasetId, "Imdb-Split": it.split, "Imdb-Batch": String(it.index), "Imdb-Vocab-Hash": vocabHash },
      })));
      for (const a of acks) if (a.duplicate) duplicates++;
      done += acks.length;
      onProgress?.(done);
    }
    const kv = await openKv(client, DATASET_BUCKET);
    await kv.put(datasetId, manifestJson);
    return { url: redactUrls(url), stream: BATCH_STREAM, subjects: BATCH_SUBJECTS, messages: items.length, duplicates };
  } finally {
    await client.close();
  }
}
