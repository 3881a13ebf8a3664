// NATS credentials against real nats-servers started with an authorization config: a token server and an
// nkey-user server. The right credentials work for every NATS-using role (coordinator plane, worker discovery,
// ingest --publish); wrong or missing ones fail with a message that says what was refused and what to pass.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli } from "./helpers/cli.js";
import { startNats, type NatsServer } from "./helpers/nats.js";
import { ingestSmallDataset, type SmallDataset } from "./helpers/training.js";
import { connectNats } from "../src/transport/nats.js";
import { openDataset } from "../src/ingest/index.js";
import { natsAuthFrom } from "../src/security/keys.js";

const TOKEN = "t0ken-for-tests";
let fx: SmallDataset;
let root = "";
let data = "";
let dataset = "";
let keys = "";
let otherKeys = "";
let tokenServer: NatsServer;
let nkeyServer: NatsServer;
const SMALL = ["--hidden", "8", "--embed-dim", "8", "--epochs", "1", "--max-steps", "2", "--warmup-steps", "0", "--max-val-batches", "1", "--seed", "5"];

before(async () => {
  fx = await ingestSmallDataset("imdb-natsauth-", { train: 16, seed: 4, words: [5, 30] }, { batchSize: 4, vocabSize: 100, valFraction: 0.25, maxLen: 20 });
  ({ root, data, dataset } = fx);
  keys = join(root, "keys");
  otherKeys = join(root, "other");
  for (const k of [keys, otherKeys]) assert.equal((await runCli(["keys", "--out", k, "--nats-nkey"])).code, 0);
  const tokenConf = join(root, "token.conf");
  writeFileSync(tokenConf, `authorization { token: "${TOKEN}" }\n`);
  tokenServer = await startNats({ args: ["-c", tokenConf] });
  const nkeyConf = join(root, "nkey.conf");
  writeFileSync(nkeyConf, `authorization { users: [ { nkey: "${readFileSync(join(keys, "nats-user.pub"), "utf8").trim()}" } ] }\n`);
  nkeyServer = await startNats({ args: ["-c", nkeyConf] });
});

after(async () => {
  await tokenServer?.stop();
  await nkeyServer?.stop();
  fx?.cleanup();
});

test("connectNats: right token and nkey connect; wrong or missing credentials are refused with a clear message", async () => {
  const ok = await connectNats(tokenServer.url, { auth: natsAuthFrom({ natsToken: TOKEN }) });
  await ok.close();
  const nk = await connectNats(nkeyServer.url, { auth: natsAuthFrom({ natsNkeySeed: join(keys, "nats-user.seed") }) });
  await nk.close();
  await assert.rejects(connectNats(tokenServer.url, { auth: natsAuthFrom({ natsToken: "wrong" }) }),
    (e: Error & { code?: string }) => e.code === "E_AUTH" && /NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(token from --nats-token\): Authorization Violation; check the token/.test(e.message));
  await assert.rejects(connectNats(tokenServer.url, {}), /refused the connection \(no credentials\).*it requires credentials: pass --nats-token, --nats-nkey-seed <file> or --nats-creds <file>/);
  await assert.rejects(connectNats(nkeyServer.url, { auth: natsAuthFrom({ natsNkeySeed: join(otherKeys, "nats-user.seed") }) }),
    (e: Error & { code?: string }) => e.code === "E_AUTH" && /refused the connection \(nkey from .*other\/nats-user\.seed\)/.test(e.message));
  // the environment is read when no flag is given; flags win; two kinds at once is a usage error
  assert.equal(natsAuthFrom({}, { IMDB_TRAIN_NATS_TOKEN: "from-env" })?.token, "from-env");
  assert.equal(natsAuthFrom({ natsToken: "flag" }, { IMDB_TRAIN_NATS_TOKEN: "from-env" })?.token, "flag");
  assert.throws(() => natsAuthFrom({ natsToken: "a", natsNkeySeed: "b" }), /give one kind of NATS credentials, not --nats-token and --nats-nkey-seed/);
  assert.throws(() => natsAuthFrom({ natsNkeySeed: join(keys, "server.pub") }), /server\.pub: not an nkey user seed/);
});

const child = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnCli(args, { env, killAfterMs: 90_000 }).result;

test("coordinator plane and worker discovery on a token server: $IMDB_TRAIN_NATS_TOKEN and --nats-token work, a wrong token stops the worker", async () => {
  const noCreds = await runCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "1", "--out", join(root, "c0"), "--nats", tokenServer.url, ...SMALL]);
  assert.equal(noCreds.code, 5, noCreds.stderr);
  assert.match(noCreds.stderr, /NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(no credentials\)/);
  const wrong = await runCli(["worker", "--nats", tokenServer.url, "--nats-token", "wrong", "--connect-timeout", "10"]);
  assert.equal(wrong.code, 5, wrong.stderr);
  assert.match(wrong.stderr, /refused the connection \(token from --nats-token\)/);
  const coord = child(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "1", "--out", join(root, "c1"), "--nats", tokenServer.url, "--json", ...SMALL], { IMDB_TRAIN_NATS_TOKEN: TOKEN });
  const worker = child(["worker", "--nats", tokenServer.url, "--nats-token", TOKEN, "--name", "w0", "--backend", "wasm", "--connect-timeout", "60"]);
  const [c, w] = await Promise.all([coord, worker]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(w.code, 0, w.stderr);
  assert.match(w.stderr, /found coordinator tcp:\/\/127\.0\.0\.1:\d+/);
  assert.equal(JSON.parse(c.stdout.trim().split("\n").pop()!).steps, 2);
});

test("ingest --publish on an nkey server: the admitted seed publishes, another seed is refused, a bad file is named", async () => {
  const good = await runCli(["ingest", "--data", data, "--out", join(root, "pub1"), "--vocab-size", "100", "--batch-size", "4", "--publish", nkeyServer.url, "--nats-nkey-seed", join(keys, "nats-user.seed"), "--json"]);
  assert.equal(good.code, 0, good.stderr);
  // every batch of the dataset it wrote (all 32 reviews), once
  const written = await openDataset(join(root, "pub1"));
  const batches = written.splits.flatMap((split) => written.batches(split));
  assert.equal(batches.reduce((n, b) => n + b.size, 0), 32);
  assert.equal(good.json.published.messages, batches.length, JSON.stringify(good.json.published));
  assert.equal(good.json.published.duplicates, 0, JSON.stringify(good.json.published));
  const refused = await runCli(["ingest", "--data", data, "--out", join(root, "pub2"), "--vocab-size", "100", "--batch-size", "4", "--publish", nkeyServer.url], { env: { IMDB_TRAIN_NATS_NKEY_SEED: join(otherKeys, "nats-user.seed") } });
  assert.equal(refused.code, 5, refused.stderr);
  assert.match(refused.stderr, /NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(nkey from .*other\/nats-user\.seed\)/);
  assert.equal(existsSync(join(root, "pub2")), false, "nothing left behind");
  const badFile = await runCli(["ingest", "--data", data, "--out", join(root, "pub3"), "--publish", nkeyServer.url, "--nats-nkey-seed", join(root, "missing.seed")]);
  assert.equal(badFile.code, 3, badFile.stderr);
  assert.match(badFile.stderr, /missing\.seed: cannot read the NATS nkey seed file \(--nats-nkey-seed\)/);
});
