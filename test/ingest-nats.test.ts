// --publish against a real nats-server: every batch arrives once, decodes to the same batch as the
// Arrow files, and a re-publish is de-duplicated by message id.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNats } from "./helpers/nats.js";
import { cleanup, makeLayout, tempDir, writeLayoutTarGz } from "./helpers/fixture.js";
import { BATCH_STREAM, DATASET_BUCKET, decodeBatchMessage, openDataset, runIngest } from "../src/ingest/index.js";
import { connectNats, openKv, pullMessages } from "../src/transport/nats.js";
import { ConnectionError } from "../src/errors.js";
import { freePort } from "./helpers/nats.js";

test("ingest --publish: one JetStream message per batch, de-duplicated on re-publish", async () => {
  const dir = tempDir();
  await using nats = await startNats();
  try {
    const tgz = writeLayoutTarGz(join(dir, "src.tar.gz"), makeLayout({ train: 30, test: 5 }));
    const opts = { data: tgz, batchSize: 8, publish: nats.url };
    const r = await runIngest({ ...opts, out: join(dir, "a") });
    const total = r.batches.train + r.batches.val + r.batches.test;
    assert.equal(r.published?.messages, total);
    assert.equal(r.published?.duplicates, 0);
    const again = await runIngest({ ...opts, out: join(dir, "b") });
    assert.equal(again.datasetId, r.datasetId);
    assert.equal(again.published?.duplicates, total, "same ids: nothing stored twice");

    const ds = await openDataset(join(dir, "a"));
    await using client = await connectNats(nats.url);
    const seen = new Map<string, number>();
    for await (const m of pullMessages(client, { stream: BATCH_STREAM, durable: "test-reader", idleMs: 500 })) {
      const b = decodeBatchMessage(m.data);
      assert.equal(m.subject, `imdb.batches.${r.datasetId}.${b.split}`);
      assert.equal(m.headers["Imdb-Batch"], String(b.index));
      assert.equal(b.vocabHash, ds.vocab.hash);
      const ref = ds.batches(b.split)[b.index]!;
      assert.deepEqual([...b.tokens], [...ref.tokens]);
      assert.deepEqual([...b.ids], [...ref.ids]);
      assert.deepEqual([...b.labels], [...ref.labels]);
      const key = `${b.split}/${b.index}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      m.ack();
    }
    assert.equal(seen.size, total);
    assert.ok([...seen.values()].every((n) => n === 1), "each batch exactly once");
    const kv = await openKv(client, DATASET_BUCKET);
    const entry = await kv.get(r.datasetId);
    assert.equal(JSON.parse(entry!.string()).datasetId, r.datasetId);
  } finally {
    cleanup(dir);
  }
});

test("ingest --publish to a server that is not there: ConnectionError, no dataset left", async () => {
  const dir = tempDir();
  try {
    const tgz = writeLayoutTarGz(join(dir, "src.tar.gz"), makeLayout({ train: 5 }));
    const url = `nats://127.0.0.1:${await freePort()}`;
    await assert.rejects(runIngest({ data: tgz, out: join(dir, "ds"), publish: url }), (err: unknown) => {
      assert.ok(err instanceof ConnectionError);
      assert.match((err as Error).message, new RegExp(`cannot connect to NATS at ${url}`));
      return true;
    });
    const { readdirSync } = await import("node:fs");
    assert.deepEqual(readdirSync(dir), ["src.tar.gz"]);
  } finally {
    cleanup(dir);
  }
});
