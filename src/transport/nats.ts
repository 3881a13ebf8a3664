// The one module that imports @nats-io/*: a thin, typed wrapper over nats.js v3 — connect with a clear
// ConnectionError (credentials may be written in the URL, and are never shown: see redactUrls), JetStream streams (ensure, publish with a message id for de-duplication, pull
// consume), and KV buckets. Others build on these functions; add new ones at the END of this file.
import {
  connect, credsAuthenticator, headers as natsHeaders, nkeyAuthenticator, nkeys, type Authenticator, type NatsConnection,
} from "@nats-io/transport-node";
import {
  AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType,
  type JetStreamClient, type JetStreamManager, type JsMsg,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { AuthError, ConnectionError, ProtocolError, UsageError } from "../errors.js";
import { redactUrls } from "../output.js";

/** Give up connecting after this long (ms). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** A publish not acknowledged by JetStream within this long fails (ms). */
export const DEFAULT_PUBLISH_TIMEOUT_MS = 10_000;
/** JetStream de-duplication window for message ids (ms). */
export const DEFAULT_DUPLICATE_WINDOW_MS = 2 * 60 * 60 * 1000;

export interface NatsClient extends AsyncDisposable {
  /** The server's URL as messages show it (credentials hidden). */
  readonly url: string;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** Largest message payload the server accepts (bytes). */
  readonly maxPayload: number;
  /** Drains and closes; safe to call twice. */
  close(): Promise<void>;
}

/** Credentials for a NATS server with authorization (at most one kind; the texts, not file names). */
export interface NatsAuth {
  /** Token (`authorization { token: ... }` on the server). */
  token?: string;
  /** An nkey user's seed ("SU..."): the server lists the user's public key ("U..."). */
  nkeySeed?: string;
  /** A `.creds` file's text (user JWT + nkey seed, for servers with operator/account JWTs). */
  creds?: string;
  /** User and password (`authorization { user: ..., password: ... }`), from a URL's `user:password@`. */
  user?: string;
  pass?: string;
  /** Where the credentials came from, for messages (e.g. "--nats-token", "$IMDB_TRAIN_NATS_NKEY_SEED"). */
  source?: string;
}

export interface ConnectOptions {
  /** Client name shown by the server (e.g. "imdb-train-ingest"). */
  name?: string;
  timeoutMs?: number;
  auth?: NatsAuth;
}

/**
 * The server address and the credentials written in a URL, apart: `nats://user:password@host:4222` is a user
 * and password, `nats://token@host:4222` a token (percent-escapes decoded). A URL without credentials, or one
 * the URL parser refuses (`host:4222`), is returned as it is.
 */
export function urlCredentials(url: string): { server: string; auth?: NatsAuth } {
  let u: URL;
  try { u = new URL(url); } catch { return { server: url }; }
  if (!u.username && !u.password) return { server: url };
  const decode = (x: string) => { try { return decodeURIComponent(x); } catch { return x; } };
  const user = decode(u.username), pass = decode(u.password);
  u.username = "";
  u.password = "";
  return { server: u.toString(), auth: pass !== "" ? { user, pass, source: "the URL" } : { token: user, source: "the URL" } };
}

function authOptions(auth: NatsAuth | undefined): { token?: string; user?: string; pass?: string; authenticator?: Authenticator } {
  if (!auth) return {};
  if (auth.token !== undefined) return { token: auth.token };
  if (auth.user !== undefined) return { user: auth.user, pass: auth.pass };
  if (auth.nkeySeed !== undefined) return { authenticator: nkeyAuthenticator(new TextEncoder().encode(auth.nkeySeed.trim())) };
  if (auth.creds !== undefined) return { authenticator: credsAuthenticator(new TextEncoder().encode(auth.creds)) };
  return {};
}

function authKind(auth: NatsAuth | undefined): string {
  if (!auth) return "no credentials";
  const kind = auth.token !== undefined ? "token" : auth.user !== undefined ? "user/password" : auth.nkeySeed !== undefined ? "nkey" : auth.creds !== undefined ? "creds" : "no credentials";
  return auth.source ? `${kind} from ${auth.source}` : kind;
}

/** A connect failure caused by credentials (missing, wrong, or not allowed). */
function isAuthFailure(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string };
  return e?.name === "AuthorizationError" || /authori[sz]ation|authentication|auth(?:entication)? (?:required|violation)/i.test(String(e?.message ?? ""));
}

/** An error's message with any URL credentials in it hidden. */
function said(err: unknown): string {
  return redactUrls((err as Error)?.message ?? String(err));
}

/**
 * Connects to `url` and opens JetStream; ConnectionError naming the URL (credentials hidden) when it cannot.
 * Credentials come from `opts.auth` or from the URL itself (`nats://user:password@host`, `nats://token@host`).
 */
export async function connectNats(url: string, opts: ConnectOptions = {}): Promise<NatsClient> {
  const shown = redactUrls(url);
  const inUrl = urlCredentials(url);
  if (inUrl.auth && opts.auth) throw new UsageError(`NATS credentials given twice: in the URL ${shown} and with ${opts.auth.source ?? "a credentials option"}; give one`);
  const auth = opts.auth ?? inUrl.auth;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: inUrl.server,
      name: opts.name ?? "imdb-train",
      timeout: opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      reconnect: false,
      ...authOptions(auth),
    });
  } catch (err) {
    if (isAuthFailure(err)) {
      const hint = !auth ? "it requires credentials: pass --nats-token, --nats-nkey-seed <file> or --nats-creds <file> (or IMDB_TRAIN_NATS_TOKEN / _NKEY_SEED / _CREDS), or write user:password@ in the URL"
        : auth === inUrl.auth ? "check the user and password (or token) in the URL" : "check the token / nkey seed / creds file";
      throw new AuthError(`NATS at ${shown} refused the connection (${authKind(auth)}): ${said(err)}; ${hint}`, { cause: err });
    }
    throw new ConnectionError(`cannot connect to NATS at ${shown}: ${said(err)}`, { cause: err });
  }
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, { timeout: opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS });
  } catch (err) {
    await nc.close().catch(() => {});
    throw new ConnectionError(`NATS at ${shown} has no JetStream (start nats-server with -js): ${said(err)}`, { cause: err });
  }
  const js = jetstream(nc, { timeout: DEFAULT_PUBLISH_TIMEOUT_MS });
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= nc.drain().catch(() => nc.close()).then(() => {}));
  return { url: shown, nc, js, jsm, maxPayload: nc.info?.max_payload ?? 1024 * 1024, close, [Symbol.asyncDispose]: close };
}

export interface StreamSpec {
  name: string;
  subjects: string[];
  /** "limits" (default) keeps messages for every consumer; "workqueue" deletes them once acked. */
  retention?: "limits" | "workqueue";
  duplicateWindowMs?: number;
  /** Byte limit of the stream (-1 = none). */
  maxBytes?: number;
  storage?: "file" | "memory";
}

/** Creates the stream, or updates its subjects when it exists. */
export async function ensureStream(client: NatsClient, spec: StreamSpec): Promise<void> {
  const config = {
    name: spec.name,
    subjects: spec.subjects,
    retention: spec.retention === "workqueue" ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: spec.storage === "memory" ? StorageType.Memory : StorageType.File,
    duplicate_window: (spec.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS) * 1_000_000, // ns
    max_bytes: spec.maxBytes ?? -1,
  };
  try {
    await client.jsm.streams.info(spec.name);
    await client.jsm.streams.update(spec.name, { subjects: spec.subjects, duplicate_window: config.duplicate_window });
  } catch (err) {
    if (!/not found/i.test((err as Error).message)) throw new ConnectionError(`stream ${spec.name}: ${(err as Error).message}`, { cause: err });
    try {
      await client.jsm.streams.add(config);
    } catch (err2) {
      throw new ConnectionError(`cannot create stream ${spec.name}: ${(err2 as Error).message}`, { cause: err2 });
    }
  }
}

export interface PublishResult {
  stream: string;
  seq: number;
  /** True when JetStream had already stored a message with this id (nothing new was stored). */
  duplicate: boolean;
}

/** Publishes to JetStream with `msgID` (de-duplicated within the stream's window) and waits for the ack. */
export async function publishJs(
  client: NatsClient, subject: string, data: Uint8Array, opts: { msgID: string; headers?: Record<string, string> },
): Promise<PublishResult> {
  if (data.length > client.maxPayload) {
    throw new ProtocolError(`message ${opts.msgID} is ${data.length} bytes, over the server's max_payload of ${client.maxPayload}`, { code: "E_SIZE" });
  }
  let h;
  if (opts.headers) {
    h = natsHeaders();
    for (const [k, v] of Object.entries(opts.headers)) h.set(k, v);
  }
  try {
    const ack = await client.js.publish(subject, data, { msgID: opts.msgID, headers: h });
    return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
  } catch (err) {
    throw new ConnectionError(`publish of ${opts.msgID} to ${subject} failed: ${(err as Error).message}`, { cause: err });
  }
}

export interface ReceivedMessage {
  subject: string;
  /** A private copy of the payload (nats.js reuses its buffers). */
  data: Uint8Array;
  headers: Record<string, string>;
  /** Stream sequence number. */
  seq: number;
  /** Times delivered (1 = first). */
  deliveries: number;
  ack(): void;
  nak(delayMs?: number): void;
}

function toReceived(m: JsMsg): ReceivedMessage {
  const hdrs: Record<string, string> = {};
  if (m.headers) for (const [k, v] of m.headers) hdrs[k] = v[0] ?? "";
  return {
    subject: m.subject,
    data: new Uint8Array(m.data), // copy
    headers: hdrs,
    seq: m.seq,
    deliveries: m.info.deliveryCount,
    ack: () => m.ack(),
    nak: (d) => m.nak(d),
  };
}

export interface PullOptions {
  stream: string;
  /** Durable consumer name; created when missing (explicit acks). Omit for an ephemeral ordered read. */
  durable?: string;
  /** Only subjects matching this filter. */
  filterSubject?: string;
  /** Messages per pull request. */
  batch?: number;
  /** Stop when no message arrives for this long (ms). */
  idleMs?: number;
  /** Ack-wait for durable consumers (ms) before redelivery. */
  ackWaitMs?: number;
}

/**
 * Pull-consumes `stream` until it stays idle for `idleMs`: yields each message; the caller acks
 * (durable consumers) — ordered consumers need no acks.
 */
export async function* pullMessages(client: NatsClient, opts: PullOptions): AsyncGenerator<ReceivedMessage> {
  const idleMs = opts.idleMs ?? 1_000;
  let consumer;
  try {
    if (opts.durable) {
      try {
        await client.jsm.consumers.info(opts.stream, opts.durable);
      } catch {
        await client.jsm.consumers.add(opts.stream, {
          durable_name: opts.durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: (opts.ackWaitMs ?? 30_000) * 1_000_000,
          ...(opts.filterSubject ? { filter_subject: opts.filterSubject } : {}),
        });
      }
      consumer = await client.js.consumers.get(opts.stream, opts.durable);
    } else {
      consumer = await client.js.consumers.get(opts.stream, opts.filterSubject ? { filter_subjects: opts.filterSubject } : {});
    }
  } catch (err) {
    throw new ConnectionError(`cannot consume stream ${opts.stream}: ${(err as Error).message}`, { cause: err });
  }
  for (;;) {
    const iter = await consumer.fetch({ max_messages: opts.batch ?? 64, expires: Math.max(idleMs, 1000) });
    let got = 0;
    for await (const m of iter) {
      got++;
      yield toReceived(m);
    }
    if (got === 0) return;
  }
}

/** Opens (creating when missing) the KV bucket `name`. */
export async function openKv(client: NatsClient, name: string, opts: { history?: number; ttlMs?: number } = {}): Promise<KV> {
  try {
    return await new Kvm(client.nc).create(name, { history: opts.history ?? 1, ...(opts.ttlMs ? { ttl: opts.ttlMs } : {}) });
  } catch (err) {
    throw new ConnectionError(`cannot open KV bucket ${name}: ${(err as Error).message}`, { cause: err });
  }
}

/** Deletes a stream (tests, cleanup); true when it existed. */
export async function deleteStream(client: NatsClient, name: string): Promise<boolean> {
  try {
    return await client.jsm.streams.delete(name);
  } catch {
    return false;
  }
}

/** A new nkey user: its seed (keep secret; the client signs with it) and public key (goes in the server's config). */
export function newNkeyUser(): { seed: string; publicKey: string } {
  const kp = nkeys.createUser();
  return { seed: new TextDecoder().decode(kp.getSeed()), publicKey: kp.getPublicKey() };
}

/** The public key of a user nkey seed; throws when `seed` is not one. */
export function nkeyPublicKey(seed: string): string {
  const kp = nkeys.fromSeed(new TextEncoder().encode(seed.trim()));
  const pub = kp.getPublicKey();
  if (!pub.startsWith("U")) throw new Error(`not a user nkey seed (its public key starts with ${pub[0]}, not U)`);
  return pub;
}
