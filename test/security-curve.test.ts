// ZeroMQ CURVE with real sockets and real processes: `keys` writes 0600 key files and never overwrites them
// without --force; a peer with an unadmitted client key, the wrong server key or no CURVE at all cannot get a
// message through, and the coordinator logs and counts the attempt; the right keys train (also `train --secure`).
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync, existsSync, mkdirSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli, until } from "./helpers/cli.js";
import { ingestSmallDataset, type SmallDataset } from "./helpers/training.js";
import { RouterChannel, DealerChannel, newCurveKeyPair, type AuthFailure, type HandshakeTrouble } from "../src/transport/zmq/index.js";
import { loadCurveClientKeys, loadCurveServerKeys } from "../src/security/keys.js";

let fx: SmallDataset;
let root = "";
let dataset = "";
const SMALL = ["--hidden", "8", "--embed-dim", "8", "--epochs", "1", "--max-steps", "3", "--warmup-steps", "0", "--max-val-batches", "1", "--seed", "5"];

before(async () => {
  fx = await ingestSmallDataset("imdb-curve-", { train: 24, seed: 3, words: [5, 30] }, { batchSize: 4, vocabSize: 100, maxLen: 20 });
  ({ root, dataset } = fx);
});

after(() => fx?.cleanup());

test("keys: server and client pairs as 0600 Z85 files; no overwrite without --force; --if-missing keeps them", async () => {
  const dir = join(root, "keys-a");
  const r = await runCli(["keys", "--out", dir, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ["server.pub", "server.key", "client.pub", "client.key"]) {
    const p = join(dir, f);
    assert.equal(statSync(p).mode & 0o777, 0o600, f);
    assert.match(readFileSync(p, "utf8"), /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}\n$/, f);
  }
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(r.json.server_public, readFileSync(join(dir, "server.pub"), "utf8").trim());
  const before = readFileSync(join(dir, "server.key"), "utf8");
  const again = await runCli(["keys", "--out", dir]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /server\.pub exists: refusing to overwrite keys \(pass --force/);
  assert.equal(readFileSync(join(dir, "server.key"), "utf8"), before, "kept");
  const forced = await runCli(["keys", "--out", dir, "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  const replaced = readFileSync(join(dir, "server.key"), "utf8");
  assert.notEqual(replaced, before);
  const kept = await runCli(["keys", "--out", dir, "--if-missing", "--json"]);
  assert.equal(kept.code, 0, kept.stderr);
  assert.equal(kept.json.kept, true);
  assert.equal(readFileSync(join(dir, "server.key"), "utf8"), replaced, "--if-missing keeps a complete set");
  // a damaged key file is named
  const bad = join(root, "keys-bad");
  mkdirSync(bad);
  copyFileSync(join(dir, "server.pub"), join(bad, "server.pub"));
  copyFileSync(join(dir, "client.pub"), join(bad, "client.pub"));
  assert.throws(() => loadCurveClientKeys(bad), /client\.key: missing CURVE client secret key/);
});

test("real sockets: only the admitted client key gets a message through; every refusal is reported", async () => {
  const server = newCurveKeyPair();
  const admitted = newCurveKeyPair();
  const stranger = newCurveKeyPair();
  const failures: AuthFailure[] = [];
  const router = await RouterChannel.bind("tcp://127.0.0.1:*", {
    maxBytes: 1 << 16, curve: { secretKey: server.secretKey, clients: [{ name: "client.pub", publicKey: admitted.publicKey }] },
    onAuthFailure: (f) => failures.push(f),
  });
  assert.equal(router.secure, true);
  const got: string[] = [];
  const loop = (async () => { for await (const m of router.messages()) got.push(`${m.peer}:${m.frames[0]!.toString()}`); })();
  const dealer = (name: string, curve?: { serverKey: string; publicKey: string; secretKey: string }) =>
    DealerChannel.connect(router.endpoint, name, { maxBytes: 1 << 16, sendTimeoutMs: 200, curve });
  const good = dealer("good", { serverKey: server.publicKey, publicKey: admitted.publicKey, secretKey: admitted.secretKey });
  const unadmitted = dealer("unadmitted", { serverKey: server.publicKey, publicKey: stranger.publicKey, secretKey: stranger.secretKey });
  const wrongServer = dealer("wrong-server", { serverKey: stranger.publicKey, publicKey: admitted.publicKey, secretKey: admitted.secretKey });
  const plain = dealer("plain");
  // the sockets are closed however the test ends: an open one would keep the test process alive after a failure
  try {
    const send = (d: DealerChannel, text: string) => d.send([Buffer.from(text)]).catch(() => {});
    await Promise.all([send(good, "gradient"), send(unadmitted, "gradient"), send(wrongServer, "gradient"), send(plain, "gradient")]);
    const waitFor = (cond: () => boolean, what: string) => until(what, cond, 5_000, 25);
    await waitFor(() => got.length >= 1, "the admitted client's message arrives");
    const has = (reason: AuthFailure["reason"]) => failures.some((f) => f.reason === reason);
    await waitFor(() => has("client-key") && has("crypto") && has("mechanism"), `every kind of refusal reported: ${JSON.stringify(failures.map((f) => f.reason))}`);
    const refused = failures.find((f) => f.reason === "client-key")!;
    assert.equal(refused.clientKey, stranger.publicKey, "the refused key is named");
    assert.equal(refused.address, "127.0.0.1");
    const trouble = (d: DealerChannel) => d.handshakeTrouble() as HandshakeTrouble | null;
    await waitFor(() => trouble(unadmitted)?.kind === "auth", "the unadmitted client learns it was refused");
    await waitFor(() => (trouble(wrongServer)?.count ?? 0) >= 1 && (trouble(plain)?.count ?? 0) >= 1, "the other two see failed handshakes");
    assert.equal(trouble(good), null);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(got, ["good:gradient"], "nothing from the refused peers reached the application");
  } finally {
    for (const d of [good, unadmitted, wrongServer, plain]) d.close();
    router.close();
    await loop;
  }
});

/** `text` as a regular expression that matches it literally. */
const literally = (text: string) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));

test("coordinator --curve-keys: a worker with the wrong key is refused, logged and counted; the right key trains", async () => {
  const keys = join(root, "keys-c");
  const other = join(root, "keys-other");
  assert.equal((await runCli(["keys", "--out", keys])).code, 0);
  assert.equal((await runCli(["keys", "--out", other])).code, 0);
  // a worker that knows the server key but holds a key pair the coordinator never admitted
  const intruder = join(root, "keys-intruder");
  mkdirSync(intruder, { mode: 0o700 });
  copyFileSync(join(keys, "server.pub"), join(intruder, "server.pub"));
  for (const f of ["client.pub", "client.key"]) copyFileSync(join(other, f), join(intruder, f));
  assert.equal(loadCurveServerKeys(keys).clients.length, 1);

  const out = join(root, "run-c");
  const coord = spawnCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "1", "--out", out, "--curve-keys", keys, "--metrics-port", "0", "--json", ...SMALL], { killAfterMs: 90_000 });
  const endpoint = (await coord.waitFor(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/, 30_000))[1]!;
  const metricsUrl = (await coord.waitFor(/metrics on (http:\/\/\S+)/, 30_000))[1]!;
  const w = ["--coordinator", endpoint, "--backend", "wasm", "--connect-timeout", "20"];

  const wrongServer = await runCli(["worker", ...w, "--name", "wrong", "--curve-keys", other]);
  assert.equal(wrongServer.code, 5, wrongServer.stderr);
  assert.match(wrongServer.stderr, /CURVE handshake with tcp:\/\/127\.0\.0\.1:\d+ failed \d+ times .*server\.pub in --curve-keys is not this coordinator's key/);
  const unadmitted = await runCli(["worker", ...w, "--name", "intruder", "--curve-keys", intruder]);
  assert.equal(unadmitted.code, 5, unadmitted.stderr);
  assert.match(unadmitted.stderr, /refused this worker's CURVE key/);
  const plain = await runCli(["worker", ...w, "--name", "plain"]);
  assert.equal(plain.code, 5, plain.stderr);
  assert.match(plain.stderr, /the coordinator probably requires CURVE keys \(start the worker with --curve-keys <dir>\)/);

  // the coordinator sees each refusal about when the worker does, but its log line may reach this process
  // after the worker has exited (two processes, a loaded machine): wait for each line rather than race it
  const intruderKey = readFileSync(join(other, "client.pub"), "utf8").trim();
  const refusals = [
    `refused a connection from 127.0.0.1: CURVE client key ${intruderKey} is not among the admitted keys`,
    /refused a connection on tcp:\/\/127\.0\.0\.1:\d+: a CURVE handshake that could not be decrypted/,
    // the plain worker gives up after one failed handshake; which side sees the mismatch first is a race,
    // and the coordinator reports either outcome
    /(refused a connection|a connection) on tcp:\/\/127\.0\.0\.1:\d+(: a peer with another security mechanism| failed: a peer that closed the connection during its handshake \(CURVE on one side only)/,
  ];
  for (const r of refusals) await coord.waitFor(typeof r === "string" ? literally(r) : r, 15_000);
  const metrics = await (await fetch(metricsUrl)).text();
  const counted = Number(/imdb_train_rejected_gradients_total\{reason="auth",role="coordinator"\} (\d+)/.exec(metrics)?.[1]);
  assert.ok(counted >= 3, `auth refusals counted: ${counted}`);
  assert.doesNotMatch(coord.err(), /worker (wrong|intruder|plain) joined/);

  const good = await runCli(["worker", ...w, "--name", "good"], { env: { IMDB_TRAIN_CURVE_KEYS: keys } });
  assert.equal(good.code, 0, good.stderr);
  const c = await coord.result;
  assert.equal(c.code, 0, c.stderr);
  const report = JSON.parse(c.stdout.trim().split("\n").pop()!);
  assert.equal(report.steps, 3);
  assert.ok(report.rejected.auth >= 3, JSON.stringify(report.rejected));
});

test("train --secure: keys made in <out>/keys and the run trains over CURVE", async () => {
  const out = join(root, "run-secure");
  const r = await runCli(["train", "--dataset", dataset, "--out", out, "--workers", "2", "--backend", "wasm", "--secure", "--json", ...SMALL], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.steps, 3);
  assert.ok(existsSync(join(out, "keys", "server.key")));
  assert.match(r.stderr, /CURVE on: admitting 1 client key\(s\)/);
  assert.equal(r.json.rejected.auth ?? 0, 0);
});
