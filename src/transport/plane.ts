// The cluster plane on NATS (through src/transport/nats.ts): the coordinator announces its ZeroMQ endpoint and
// the dataset path in the KV bucket `imdb-train` (key `coordinator`) and publishes run events on
// `imdb-train.run.<runId>.<event>`; a worker started with `--nats` reads the announcement (waiting for it).
import { networkInterfaces } from "node:os";
import { ConnectionError, AbortedError } from "../errors.js";
import { logger, redactUrls } from "../output.js";
import { connectNats, openKv, type NatsAuth } from "./nats.js";
/** A run event as the coordinator reports it (published as JSON on `imdb-train.run.<runId>.<type>`). */
export interface RunEvent { type: string }

export const KV_BUCKET = "imdb-train";
export const KV_KEY = "coordinator";
export const EVENTS_PREFIX = "imdb-train.run";

const log = logger("cluster");

export interface Announcement { endpoint: string; runId: number; dataset: string; pid: number; at: string }

/** A bind endpoint as others can dial it: 0.0.0.0 / * replaced by this host's first external IPv4 address. */
export function dialable(endpoint: string): string {
  const m = /^tcp:\/\/(0\.0\.0\.0|\*):(\d+)$/.exec(endpoint);
  if (!m) return endpoint;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return `tcp://${a.address}:${m[2]}`;
  }
  return `tcp://127.0.0.1:${m[2]}`;
}

/** openKv, retried a few times: two processes creating the bucket at once may race. */
async function openBucket(client: Awaited<ReturnType<typeof connectNats>>): Promise<Awaited<ReturnType<typeof openKv>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await openKv(client, KV_BUCKET);
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

export async function clusterPlane(url: string, dataset: string, auth?: NatsAuth): Promise<{ announce(endpoint: string, runId: number): Promise<void>; event(e: RunEvent): void; close(): Promise<void> }> {
  const client = await connectNats(url, { name: "imdb-train-coordinator", auth });
  const kv = await openBucket(client);
  let runId = 0;
  return {
    async announce(endpoint, id) {
      runId = id;
      const a: Announcement = { endpoint: dialable(endpoint), runId: id, dataset, pid: process.pid, at: new Date().toISOString() };
      await kv.put(KV_KEY, JSON.stringify(a));
      log.info(`announced ${a.endpoint} (run ${id}, dataset ${dataset}) on ${client.url}`);
    },
    event(e) {
      try { client.nc.publish(`${EVENTS_PREFIX}.${runId}.${e.type}`, JSON.stringify(e)); } catch { /* best effort */ }
    },
    async close() {
      try { await kv.delete(KV_KEY); } catch { /* gone already */ }
      await client.close();
    },
  };
}

/**
 * Wait for a coordinator's announcement on `url` (polls every 500 ms; messages show `url` without credentials). `notRun`: ignore the announcement of
 * this run (one that has just stopped, whose key may not be deleted yet) and wait for the next.
 */
export async function discoverCoordinator(url: string, opts: { timeoutS: number; signal?: AbortSignal; auth?: NatsAuth; notRun?: number }): Promise<Announcement> {
  const client = await connectNats(url, { name: "imdb-train-worker", auth: opts.auth });
  const shown = redactUrls(url);
  try {
    const kv = await openBucket(client);
    const deadline = Date.now() + opts.timeoutS * 1000;
    let said = false;
    for (;;) {
      if (opts.signal?.aborted) throw new AbortedError();
      const e = await kv.get(KV_KEY);
      if (e && e.operation === "PUT") {
        const a = JSON.parse(e.string()) as Announcement;
        if (a.runId !== opts.notRun) return a;
      }
      if (!said) { log.info(`waiting for a coordinator to announce itself on ${shown} (KV ${KV_BUCKET}/${KV_KEY})`); said = true; }
      if (Date.now() > deadline) throw new ConnectionError(`no coordinator announced itself on ${shown} within ${opts.timeoutS} s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await client.close();
  }
}
