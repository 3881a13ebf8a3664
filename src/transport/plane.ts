// The cluster plane on NATS (through src/transport/nats.ts): the coordinator announces its ZeroMQ endpoint and
// the dataset path in the KV bucket `imdb-train` (key `coordinator`) and publishes run events on
// `imdb-train.run.<runId>.<event>`; a worker started with `--nats` reads the announcement (waiting for it).
import { networkInterfaces } from "node:os";
import { ConnectionError, AbortedError, errorMessage } from "../errors.js";
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

export async function clusterPlane(url: string, dataset: string, auth?: NatsAuth): Promise<{ announce(endpoint: string, runId: number): Promise<void>; withdraw(): Promise<void>; event(e: RunEvent): void; close(): Promise<void> }> {
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
    async withdraw() {
      try { await kv.delete(KV_KEY); } catch { /* gone already */ }
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

const ENDPOINT = /^tcp:\/\/[^\s/]{1,250}:\d{1,5}$/;
/** A coordinator may also bind an ipc:// endpoint (workers on its machine). */
const COORDINATOR_ENDPOINT = /^(tcp:\/\/[^\s/]{1,250}:\d{1,5}|ipc:\/\/\S{1,250})$/;

/** A coordinator's announcement as read from NATS (anyone who may write the bucket wrote it): checked field by
 *  field; null when it is not one (the worker goes on waiting for a real one). */
function coordinatorAnnouncement(text: string): Announcement | null {
  try {
    const a = JSON.parse(text) as Record<string, unknown>;
    if (typeof a.endpoint !== "string" || !COORDINATOR_ENDPOINT.test(a.endpoint) || typeof a.dataset !== "string" || a.dataset.length > 4096) return null;
    if (!Number.isSafeInteger(a.runId) || !Number.isSafeInteger(a.pid) || typeof a.at !== "string") return null;
    return { endpoint: a.endpoint, runId: a.runId as number, dataset: a.dataset, pid: a.pid as number, at: a.at.slice(0, 64) };
  } catch {
    return null;
  }
}

type Bucket = Awaited<ReturnType<typeof openKv>>;

/**
 * Poll the bucket on `url` every 500 ms until `look` finds what the caller waits for, or `timeoutS` ends. A
 * read that fails (a request timing out on a busy server) is tried again at the next poll, and named if the
 * wait ends. `waiting` runs after each poll that found nothing; `late` says what did not come (shown without
 * credentials by the caller).
 */
async function pollBucket<T>(url: string, name: string, opts: { timeoutS: number; signal?: AbortSignal; auth?: NatsAuth }, look: (kv: Bucket) => Promise<T | null>, waiting: () => void, late: () => string): Promise<T> {
  const client = await connectNats(url, { name, auth: opts.auth });
  try {
    const kv = await openBucket(client);
    const deadline = Date.now() + opts.timeoutS * 1000;
    let lastError = "";
    for (;;) {
      if (opts.signal?.aborted) throw new AbortedError();
      let got: T | null = null;
      try {
        got = await look(kv);
        lastError = "";
      } catch (err) {
        lastError = redactUrls(errorMessage(err));
      }
      if (got !== null) return got;
      waiting();
      if (Date.now() > deadline) throw new ConnectionError(`${late()}${lastError ? ` (the last read of the KV failed: ${lastError})` : ""}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await client.close();
  }
}

/**
 * Wait for a coordinator's announcement on `url` (messages show `url` without credentials). `notRun`: ignore the
 * announcement of this run (one that has just stopped, whose key may not be deleted yet) and wait for the next.
 */
export async function discoverCoordinator(url: string, opts: { timeoutS: number; signal?: AbortSignal; auth?: NatsAuth; notRun?: number }): Promise<Announcement> {
  const shown = redactUrls(url);
  let said = false;
  return await pollBucket(url, "imdb-train-worker", opts, async (kv) => {
    const e = await kv.get(KV_KEY);
    const a = e && e.operation === "PUT" ? coordinatorAnnouncement(e.string()) : null;
    return a && a.runId !== opts.notRun ? a : null;
  }, () => {
    if (!said) log.info(`waiting for a coordinator to announce itself on ${shown} (KV ${KV_BUCKET}/${KV_KEY})`);
    said = true;
  }, () => `no coordinator announced itself on ${shown} within ${opts.timeoutS} s`);
}

// ---- coordinator shards on other hosts ------------------------------------------------------------------------

/** KV keys of shards waiting for a coordinator: `shard.<id>` in the bucket `imdb-train`. */
export const SHARD_KEY_PREFIX = "shard.";
/** An announcement older than this is a shard that died without withdrawing it (it refreshes every 2 s). */
const SHARD_FRESH_MS = 10_000;

/** A shard started on its own (`coordinator-shard --nats`), waiting for a coordinator: its two sockets. */
export interface ShardAnnouncement { id: string; endpoint: string; control: string; host: string; pid: number; at: string }

/** An announcement as read from NATS (anyone who may write the bucket wrote it): checked field by field. */
function shardAnnouncement(text: string): ShardAnnouncement | null {
  try {
    const a = JSON.parse(text) as Record<string, unknown>;
    const str = (v: unknown, max: number): string | null => (typeof v === "string" && v.length <= max ? v : null);
    const id = str(a.id, 64), endpoint = str(a.endpoint, 256), control = str(a.control, 256), host = str(a.host, 256), at = str(a.at, 64);
    if (id === null || endpoint === null || control === null || host === null || at === null || !Number.isSafeInteger(a.pid)) return null;
    if (!ENDPOINT.test(endpoint) || !ENDPOINT.test(control)) return null;
    return { id, endpoint, control, host, pid: a.pid as number, at };
  } catch {
    return null;
  }
}

/** A shard's presence on the plane: `announce` (again every 2 s, so that a coordinator can tell a live shard
 *  from a stale key) until `withdraw`. */
export async function shardPlane(url: string, auth?: NatsAuth): Promise<{ announce(a: Omit<ShardAnnouncement, "at" | "pid">): void; withdraw(): Promise<void>; close(): Promise<void> }> {
  const client = await connectNats(url, { name: "imdb-train-shard", auth });
  const kv = await openBucket(client);
  let timer: NodeJS.Timeout | undefined;
  let key = "";
  // puts and the delete run one after another, so that a put still on its way cannot land after the delete
  // and leave a fresh-looking announcement of a shard that is already serving (or about to die)
  let chain: Promise<unknown> = Promise.resolve();
  const withdraw = async () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    const k = key;
    key = "";
    if (k) chain = chain.then(() => kv.delete(k)).catch(() => {});
    await chain;
  };
  return {
    announce(a) {
      const k = (key = `${SHARD_KEY_PREFIX}${a.id}`);
      const put = () => { chain = chain.then(() => (key === k ? kv.put(k, JSON.stringify({ ...a, pid: process.pid, at: new Date().toISOString() })) : undefined)).catch(() => {}); };
      put();
      timer = setInterval(put, 2000);
      log.info(`shard announced at ${a.endpoint} (control ${a.control}) on ${client.url}: waiting for a coordinator`);
    },
    withdraw,
    async close() { await withdraw(); await client.close(); },
  };
}

/** Wait until `n` live shards are announced on `url`; claims n of them (their keys are deleted) and returns them. */
export async function discoverShards(url: string, n: number, opts: { timeoutS: number; signal?: AbortSignal; auth?: NatsAuth }): Promise<ShardAnnouncement[]> {
  const shown = redactUrls(url);
  let found = 0, said = -1;
  return await pollBucket(url, "imdb-train-coordinator-shards", opts, async (kv) => {
    // by key: a key listed twice (put again while the listing ran) is one shard, claimed once
    const byKey = new Map<string, { a: ShardAnnouncement; created: number }>();
    for await (const k of await kv.keys(`${SHARD_KEY_PREFIX}>`)) {
      const e = await kv.get(k);
      if (!e || e.operation !== "PUT") continue;
      const a = shardAnnouncement(e.string());
      if (!a || k !== `${SHARD_KEY_PREFIX}${a.id}` || Date.now() - Date.parse(a.at) > SHARD_FRESH_MS) continue;
      byKey.set(k, { a, created: e.created.getTime() });
    }
    found = byKey.size;
    if (found < n) return null;
    const chosen = [...byKey.values()].sort((x, y) => x.created - y.created).slice(0, n).map((f) => f.a);
    for (const a of chosen) { try { await kv.delete(`${SHARD_KEY_PREFIX}${a.id}`); } catch { /* taken */ } }
    return chosen;
  }, () => {
    if (said !== found) log.info(`waiting for ${n} coordinator shard(s) to announce themselves on ${shown} (${found} so far)`);
    said = found;
  }, () => `only ${found} of ${n} coordinator shards announced themselves on ${shown} within ${opts.timeoutS} s (start them on the workers' hosts: imdb-train coordinator-shard --nats <url>)`);
}
