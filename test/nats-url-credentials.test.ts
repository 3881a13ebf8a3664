// Credentials written in a NATS URL (nats://user:password@host, nats://token@host) against real nats-servers
// that require them: they are used to connect, and no log line, error or JSON output of any role that takes a
// NATS URL (coordinator --nats, worker --nats, ingest --publish, the cluster plane) shows them.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli } from "./helpers/cli.js";
import { startNats, type NatsServer } from "./helpers/nats.js";
import { makeLayout, writeLayoutDir, tempDir, cleanup } from "./helpers/fixture.js";
import { runIngest } from "../src/ingest/index.js";
import { redactUrls } from "../src/output.js";
import { connectNats, openKv, urlCredentials } from "../src/transport/nats.js";
import { KV_BUCKET, KV_KEY } from "../src/transport/plane.js";

const USER = "alice";
const PASSWORD = "pw-Zq8@x:y7"; // an "@" and a ":" inside, percent-escaped in the URL
const TOKEN = "tok-Kx93jw";
let root = "";
let data = "";
let dataset = "";
let userServer: NatsServer;
let tokenServer: NatsServer;
const SMALL = ["--hidden", "8", "--embed-dim", "8", "--epochs", "1", "--max-steps", "2", "--warmup-steps", "0", "--max-val-batches", "1", "--seed", "5"];

const withUser = (s: NatsServer, pass = PASSWORD) => `nats://${USER}:${encodeURIComponent(pass)}@127.0.0.1:${s.port}`;
const SECRETS = [PASSWORD, encodeURIComponent(PASSWORD), TOKEN, "wrong-pw-31"];
function assertNoSecret(text: string, what: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${what} shows a secret (${s}):\n${text}`);
}

before(async () => {
  root = tempDir("imdb-natsurl-");
  data = writeLayoutDir(join(root, "data"), makeLayout({ train: 16, seed: 4, words: [5, 30] }));
  dataset = join(root, "ds");
  await runIngest({ data, out: dataset, batchSize: 4, vocabSize: 100, valFraction: 0.25, seed: 3, maxLen: 20 });
  const userConf = join(root, "user.conf");
  writeFileSync(userConf, `authorization { user: "${USER}", password: "${PASSWORD}" }\n`);
  userServer = await startNats({ args: ["-c", userConf] });
  const tokenConf = join(root, "token.conf");
  writeFileSync(tokenConf, `authorization { token: "${TOKEN}" }\n`);
  tokenServer = await startNats({ args: ["-c", tokenConf] });
});

after(async () => {
  await userServer?.stop();
  await tokenServer?.stop();
  cleanup(root);
});

test("redactUrls hides a URL's password or token, wherever the URL sits in the text", () => {
  assert.equal(redactUrls("on nats://alice:s3cret@10.0.0.5:4222 (KV)"), "on nats://alice:***@10.0.0.5:4222 (KV)");
  assert.equal(redactUrls("nats://t0ken@h:4222"), "nats://***@h:4222");
  assert.equal(redactUrls("tls://u:p@ss@h/x?y=1 and https://me:pw@mirror.example/aclImdb.tar.gz"), "tls://u:***@h/x?y=1 and https://me:***@mirror.example/aclImdb.tar.gz");
  assert.equal(redactUrls("NATS at 'nats://u:a:b@h' refused"), "NATS at 'nats://u:***@h' refused");
  for (const plain of ["nats://127.0.0.1:4222", "tcp://0.0.0.0:5555", "http://127.0.0.1:9401/metrics", "mail me@example.com", "see http://h/path@x"]) {
    assert.equal(redactUrls(plain), plain);
  }
  assert.deepEqual(urlCredentials(withUser(userServer)), { server: `nats://127.0.0.1:${userServer.port}`, auth: { user: USER, pass: PASSWORD, source: "the URL" } });
  assert.deepEqual(urlCredentials(`nats://${TOKEN}@h:4222`), { server: "nats://h:4222", auth: { token: TOKEN, source: "the URL" } });
  assert.deepEqual(urlCredentials("h:4222"), { server: "h:4222" });
});

test("connectNats uses the URL's credentials; a wrong password is refused without being shown; two sets of credentials are a usage error", async () => {
  const ok = await connectNats(withUser(userServer));
  assert.equal(ok.url, `nats://${USER}:***@127.0.0.1:${userServer.port}`);
  await ok.close();
  const tok = await connectNats(`nats://${TOKEN}@127.0.0.1:${tokenServer.port}`);
  await tok.close();
  await assert.rejects(connectNats(withUser(userServer, "wrong-pw-31")), (e: Error & { code?: string }) => {
    assertNoSecret(e.message, "the error");
    return e.code === "E_AUTH" && /^NATS at nats:\/\/alice:\*\*\*@127\.0\.0\.1:\d+ refused the connection \(user\/password from the URL\): Authorization Violation; check the user and password \(or token\) in the URL$/.test(e.message);
  });
  await assert.rejects(connectNats(withUser(userServer), { auth: { token: "x", source: "--nats-token" } }),
    (e: Error & { code?: string }) => e.code === "E_USAGE" && /credentials given twice: in the URL nats:\/\/alice:\*\*\*@127\.0\.0\.1:\d+ and with --nats-token/.test(e.message));
});

test("coordinator --nats and worker --nats with user:password in the URL: the run works and no log line shows the password", async () => {
  const url = withUser(userServer);
  const coord = spawnCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "1", "--out", join(root, "run"), "--nats", url, "--json", ...SMALL], { killAfterMs: 120_000 });
  const worker = spawnCli(["worker", "--nats", url, "--name", "w0", "--backend", "wasm", "--connect-timeout", "60"], { killAfterMs: 120_000 });
  // a worker that gives up leaves the coordinator waiting: stop it then, so that both logs show at once
  void worker.done.then((code) => { if (code !== 0) coord.kill(); });
  const [c, w] = await Promise.all([coord.done, worker.done]);
  const both = () => `coordinator:\n${coord.err()}\nworker:\n${worker.err()}`;
  assert.equal(c, 0, both());
  assert.equal(w, 0, both());
  assert.match(coord.err(), new RegExp(`announced tcp://127\\.0\\.0\\.1:\\d+ .* on nats://alice:\\*\\*\\*@127\\.0\\.0\\.1:${userServer.port}`));
  assert.match(worker.err(), new RegExp(`found coordinator tcp://127\\.0\\.0\\.1:\\d+ \\(run \\d+\\) through nats://alice:\\*\\*\\*@127\\.0\\.0\\.1:${userServer.port}`));
  for (const [what, text] of [["coordinator log", coord.err()], ["coordinator JSON", coord.out()], ["worker log", worker.err()]] as const) assertNoSecret(text, what);
  // refused: the error names the server, not the password
  const wrong = await runCli(["worker", "--nats", withUser(userServer, "wrong-pw-31"), "--connect-timeout", "5"]);
  assert.equal(wrong.code, 5, wrong.stderr);
  assert.match(wrong.stderr, /NATS at nats:\/\/alice:\*\*\*@127\.0\.0\.1:\d+ refused the connection \(user\/password from the URL\)/);
  assertNoSecret(wrong.stderr, "the refused worker's log");
});

test("ingest --publish and worker discovery with a token in the URL: published, waited for (a forged announcement ignored), and never shown", async () => {
  const url = `nats://${TOKEN}@127.0.0.1:${tokenServer.port}`;
  const pub = await runCli(["ingest", "--data", data, "--out", join(root, "pub"), "--vocab-size", "100", "--batch-size", "4", "--publish", url, "--json"]);
  assert.equal(pub.code, 0, pub.stderr);
  assert.ok(pub.json.published.messages > 0);
  assert.equal(pub.json.published.url, `nats://***@127.0.0.1:${tokenServer.port}`);
  assert.match(pub.stderr, new RegExp(`published \\d+ batches to IMDB_BATCHES .* on nats://\\*\\*\\*@127\\.0\\.0\\.1:${tokenServer.port}`));
  assertNoSecret(pub.stderr + pub.stdout, "ingest --publish");
  // nobody announces on this server, but the key holds what is no announcement (anyone who may write the bucket
  // can put one): the worker connects (the token works), ignores it, waits, and gives up naming the server
  const nc = await connectNats(url);
  const kv = await openKv(nc, KV_BUCKET);
  await kv.put(KV_KEY, "{\"endpoint\": \"tcp://10.0.0.1:1; rm -rf /\", \"runId\": 1, \"dataset\": \"d\", \"pid\": 1, \"at\": \"\"}");
  await nc.close();
  const w = await runCli(["worker", "--nats", url, "--connect-timeout", "1"]);
  assert.equal(w.code, 5, w.stderr);
  assert.match(w.stderr, new RegExp(`waiting for a coordinator to announce itself on nats://\\*\\*\\*@127\\.0\\.0\\.1:${tokenServer.port}`));
  assert.match(w.stderr, new RegExp(`no coordinator announced itself on nats://\\*\\*\\*@127\\.0\\.0\\.1:${tokenServer.port} within 1 s`));
  assertNoSecret(w.stderr, "the worker's log");
});
