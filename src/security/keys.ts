// Key material on disk: ZeroMQ CURVE key pairs (Z85 text files) made by `imdb-train keys`, and the NATS
// credentials of every NATS-using role (token, nkey seed file, or .creds file; flags or environment).
//
// A key directory (`imdb-train keys --out <dir>`), every file one line of text, mode 0600, the directory 0700:
//   server.pub  server.key    the coordinator's pair (workers need server.pub only)
//   client.pub  client.key    the workers' pair (the coordinator needs client.pub only)
//   clients/*.pub             more admitted worker keys (optional; one worker key pair per machine, say)
//   nats-user.seed  nats-user.pub   an nkey user for NATS (with --nats-nkey; the .pub goes in the server config)
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { InputError, UsageError } from "../errors.js";
import { writeAtomic } from "../atomic.js";
import { logger } from "../output.js";
import { isZ85Key, newCurveKeyPair, type CurveClientKeys, type CurveServerKeys } from "../transport/zmq/index.js";
import { newNkeyUser, nkeyPublicKey, type NatsAuth } from "../transport/nats.js";
import type { NatsAuthOptions } from "./options.js";

const log = logger("keys");

export const KEY_FILES = {
  serverPublic: "server.pub",
  serverSecret: "server.key",
  clientPublic: "client.pub",
  clientSecret: "client.key",
  moreClients: "clients",
  natsSeed: "nats-user.seed",
  natsPublic: "nats-user.pub",
} as const;

export interface KeysReport {
  dir: string;
  /** Files written (none when --if-missing kept existing keys). */
  files: string[];
  server_public: string;
  client_public: string;
  nats_user_public?: string;
  kept?: boolean;
}

/** Writes `text` to `path` with mode 0600 from its creation, through an exclusive temporary file (never half-written). */
function writeSecret(path: string, text: string): void {
  writeAtomic(path, [Buffer.from(text)], 0o600);
}

/** Makes a server and a client CURVE key pair (and an nkey user with `natsNkey`) in `dir`. */
export function writeKeyDir(dir: string, opts: { force?: boolean; natsNkey?: boolean; ifMissing?: boolean } = {}): KeysReport {
  const out = resolve(dir);
  const names: string[] = [KEY_FILES.serverPublic, KEY_FILES.serverSecret, KEY_FILES.clientPublic, KEY_FILES.clientSecret];
  if (opts.natsNkey) names.push(KEY_FILES.natsSeed, KEY_FILES.natsPublic);
  if (opts.ifMissing && !opts.force && names.every((n) => existsSync(join(out, n)))) {
    // keep them (a one-shot container that runs at every `up`); still check that they read back as keys
    const server = readKey(join(out, KEY_FILES.serverPublic), "CURVE server public key");
    const client = readKey(join(out, KEY_FILES.clientPublic), "CURVE client public key");
    return { dir: out, files: [], server_public: server, client_public: client, kept: true };
  }
  if (!opts.force) {
    const there = names.filter((n) => existsSync(join(out, n)));
    if (there.length) throw new UsageError(`${join(out, there[0]!)} exists: refusing to overwrite keys (pass --force to replace ${there.join(", ")})`);
  }
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const server = newCurveKeyPair();
  const client = newCurveKeyPair();
  const files: [string, string][] = [
    [KEY_FILES.serverPublic, server.publicKey], [KEY_FILES.serverSecret, server.secretKey],
    [KEY_FILES.clientPublic, client.publicKey], [KEY_FILES.clientSecret, client.secretKey],
  ];
  let natsPub: string | undefined;
  if (opts.natsNkey) {
    const u = newNkeyUser();
    natsPub = u.publicKey;
    files.push([KEY_FILES.natsSeed, u.seed], [KEY_FILES.natsPublic, u.publicKey]);
  }
  for (const [name, text] of files) writeSecret(join(out, name), text + "\n");
  return { dir: out, files: files.map(([n]) => join(out, n)), server_public: server.publicKey, client_public: client.publicKey, ...(natsPub ? { nats_user_public: natsPub } : {}) };
}

function readKey(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(code === "ENOENT" ? `missing ${what} (make keys with \`imdb-train keys --out <dir>\`)` : `cannot read ${what}: ${(err as Error).message}`, { path, cause: err });
  }
  const key = text.trim();
  if (!isZ85Key(key)) throw new InputError(`${what} is not a CURVE key (expected 40 characters of Z85 text)`, { path });
  return key;
}

/** Warns when a secret is readable by every user (group access is left alone: Kubernetes secrets use fsGroup). */
function warnIfOpen(path: string): void {
  try {
    const mode = statSync(path).mode;
    if ((mode & 0o007) !== 0) log.warn(`${path} is readable by every user (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
  } catch { /* read errors are reported by readKey */ }
}

/** The coordinator's CURVE keys: server.key, the admitted client keys (client.pub, clients/*.pub), and server.pub
 *  when it is there (shards on other hosts use the coordinator's pair). */
export function loadCurveServerKeys(dir: string): CurveServerKeys {
  const d = resolve(dir);
  if (!existsSync(d)) throw new InputError("no such key directory (make keys with `imdb-train keys --out <dir>`)", { path: d });
  const secretPath = join(d, KEY_FILES.serverSecret);
  const secretKey = readKey(secretPath, "CURVE server secret key");
  warnIfOpen(secretPath);
  const clients: { name: string; publicKey: string }[] = [];
  const one = join(d, KEY_FILES.clientPublic);
  if (existsSync(one)) clients.push({ name: KEY_FILES.clientPublic, publicKey: readKey(one, "CURVE client public key") });
  const more = join(d, KEY_FILES.moreClients);
  if (existsSync(more)) {
    for (const f of readdirSync(more).filter((n) => n.endsWith(".pub")).sort()) {
      clients.push({ name: `${KEY_FILES.moreClients}/${f}`, publicKey: readKey(join(more, f), "CURVE client public key") });
    }
  }
  if (clients.length === 0) throw new InputError(`no client public key to admit (${KEY_FILES.clientPublic} or ${KEY_FILES.moreClients}/*.pub)`, { path: d });
  const pub = join(d, KEY_FILES.serverPublic);
  return { secretKey, clients, ...(existsSync(pub) ? { publicKey: readKey(pub, "CURVE server public key") } : {}) };
}

/** A worker's CURVE keys: server.pub, client.pub, client.key. */
export function loadCurveClientKeys(dir: string): CurveClientKeys {
  const d = resolve(dir);
  if (!existsSync(d)) throw new InputError("no such key directory (make keys with `imdb-train keys --out <dir>`)", { path: d });
  const secretPath = join(d, KEY_FILES.clientSecret);
  const keys = {
    serverKey: readKey(join(d, KEY_FILES.serverPublic), "CURVE server public key"),
    publicKey: readKey(join(d, KEY_FILES.clientPublic), "CURVE client public key"),
    secretKey: readKey(secretPath, "CURVE client secret key"),
  };
  warnIfOpen(secretPath);
  return keys;
}

/** The key directory when --curve-keys is not given (coordinator and worker). */
export const CURVE_KEYS_ENV = "IMDB_TRAIN_CURVE_KEYS";

/** Environment variables read when the matching flag is absent. */
export const NATS_ENV = { token: "IMDB_TRAIN_NATS_TOKEN", nkeySeed: "IMDB_TRAIN_NATS_NKEY_SEED", creds: "IMDB_TRAIN_NATS_CREDS" } as const;

/**
 * NATS credentials from the parsed options (`natsToken`, `natsNkeySeed` file, `natsCreds` file) or, when no flag
 * is given, from $IMDB_TRAIN_NATS_TOKEN / $IMDB_TRAIN_NATS_NKEY_SEED (a file) / $IMDB_TRAIN_NATS_CREDS (a file).
 * Undefined when there are none. More than one kind is a usage error; an unreadable or malformed file an input error.
 */
export function natsAuthFrom(o: Partial<NatsAuthOptions>, env: NodeJS.ProcessEnv = process.env): NatsAuth | undefined {
  const given: { kind: "token" | "nkeySeed" | "creds"; value: string; source: string }[] = [];
  const flag = (key: keyof NatsAuthOptions, kind: "token" | "nkeySeed" | "creds", name: string) => {
    const v = o[key];
    if (typeof v === "string" && v !== "") given.push({ kind, value: v, source: `--${name}` });
  };
  flag("natsToken", "token", "nats-token");
  flag("natsNkeySeed", "nkeySeed", "nats-nkey-seed");
  flag("natsCreds", "creds", "nats-creds");
  if (given.length === 0) {
    for (const kind of ["token", "nkeySeed", "creds"] as const) {
      const v = env[NATS_ENV[kind]];
      if (v) given.push({ kind, value: v, source: `$${NATS_ENV[kind]}` });
    }
  }
  if (given.length === 0) return undefined;
  if (given.length > 1) throw new UsageError(`give one kind of NATS credentials, not ${given.map((g) => g.source).join(" and ")}`);
  const g = given[0]!;
  if (g.kind === "token") return { token: g.value, source: g.source };
  const path = resolve(g.value);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new InputError(`cannot read the NATS ${g.kind === "creds" ? "credentials" : "nkey seed"} file (${g.source}): ${(err as Error).message}`, { path, cause: err });
  }
  if (g.kind === "nkeySeed") {
    const seed = text.trim();
    try {
      nkeyPublicKey(seed);
    } catch (err) {
      throw new InputError(`not an nkey user seed (expected one line starting with SU): ${(err as Error).message}`, { path, cause: err });
    }
    warnIfOpen(path);
    return { nkeySeed: seed, source: path };
  }
  if (!/-----BEGIN NATS USER JWT-----/.test(text) || !/-----BEGIN USER NKEY SEED-----/.test(text)) {
    throw new InputError("not a NATS .creds file (expected a USER JWT block and a USER NKEY SEED block)", { path });
  }
  warnIfOpen(path);
  return { creds: text, source: path };
}
