// Coordinator shards on other hosts: `coordinator-shard --nats` processes announce themselves on a real NATS
// server, a `coordinator --coordinator-shards 3 --remote-shards` claims two of them, and real workers found
// through NATS train with row pull and row gradients, everything under CURVE. The run equals an unsharded one
// bit for bit. A shard killed mid-run stops the run with its name; the last checkpoint holds the whole state,
// and the resumed run (a new shard, --auto-resume) ends with the uninterrupted run's parameters.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ingestSmallDataset, initialParamsOf, type SmallDataset } from "./helpers/training.js";
import { runCli, spawnCli, type CliProc } from "./helpers/cli.js";
import { startNats, type NatsServer } from "./helpers/nats.js";
import { assertMoved, maxAbsDiff } from "./helpers/params.js";
import { loadModel } from "../src/model/files.js";
import { connectNats, openKv } from "../src/transport/nats.js";
import { KV_BUCKET, SHARD_KEY_PREFIX } from "../src/transport/plane.js";

let fx: SmallDataset;
let nats: NatsServer;
let keys = "";
// a small LSTM beside wide embeddings, so that every slice holds embedding rows; clip 1000: never reached, so the
// norm's order (the only thing sharding changes) decides nothing and the runs compare bit for bit
const SMALL = ["--hidden", "4", "--embed-dim", "64", "--epochs", "6", "--lr", "0.01", "--warmup-steps", "0", "--decay", "none", "--clip", "1000", "--seed", "9", "--max-val-batches", "1", "--checkpoint-every", "2"];

before(async () => {
  fx = await ingestSmallDataset("imdb-remote-shards-", { train: 48, test: 8, seed: 17, words: [5, 40] }, { batchSize: 4, vocabSize: 200, maxLen: 30 });
  nats = await startNats();
  keys = join(fx.root, "keys");
  const k = await runCli(["keys", "--out", keys]);
  assert.equal(k.code, 0, k.stderr);
});

after(async () => {
  await nats?.stop();
  fx?.cleanup();
});

const SECURE = () => ["--nats", nats.url, "--curve-keys", keys];

function shard(): CliProc {
  return spawnCli(["coordinator-shard", ...SECURE()], { killAfterMs: 180_000 });
}

function coordinator(out: string, extra: string[]): CliProc {
  return spawnCli(["coordinator", "--dataset", fx.dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "2", "--out", out, ...SECURE(), "--json", ...SMALL, ...extra], { killAfterMs: 180_000 });
}

function workers(): CliProc[] {
  return ["w0", "w1"].map((name) => spawnCli(["worker", ...SECURE(), "--name", name, "--backend", "wasm"], { killAfterMs: 180_000 }));
}

async function stopAll(procs: CliProc[]): Promise<void> {
  await Promise.all(procs.map((p) => p.stop("SIGTERM")));
}

/** A whole run: the coordinator (with `extra`), two workers; its exit code, log and saved parameters. */
async function run(out: string, extra: string[]): Promise<{ code: number | null; err: string; params: Float32Array }> {
  const c = coordinator(out, extra);
  const w = workers();
  try {
    const code = await c.done;
    const r = await c.result;
    return { code, err: r.stderr, params: code === 0 ? loadModel(join(out, "model")).params : new Float32Array(0) };
  } finally {
    await stopAll([c, ...w]);
  }
}

let plainRun: Promise<Float32Array> | undefined;
/** The unsharded run's parameters (run once). */
const unsharded = () => (plainRun ??= run(join(fx.root, "plain"), []).then((r) => { assert.equal(r.code, 0, r.err); return r.params; }));

test("shards on other hosts, found on NATS, under CURVE: the run is the unsharded run bit for bit", async (t) => {
  const plain = await unsharded();
  const shards = [shard(), shard()];
  try {
    await Promise.all(shards.map((s) => s.waitFor(/shard announced at tcp:\/\/127\.0\.0\.1:\d+ \(control tcp:\/\/127\.0\.0\.1:\d+\)/)));
    const sharded = await run(join(fx.root, "sharded"), ["--coordinator-shards", "3", "--remote-shards"]);
    assert.equal(sharded.code, 0, sharded.err);
    assert.match(sharded.err, /2 coordinator shard\(s\) on other hosts at tcp:\/\/127\.0\.0\.1:\d+, tcp:\/\/127\.0\.0\.1:\d+ \(CURVE\)/);
    // each shard served a slice that holds embedding rows, then waits for the next run
    for (const s of shards) {
      await s.waitFor(/shard of run \d+: values \[\d+, \d+\) of the parameters \(embedding rows \d+ from local 0\)/);
      await s.waitFor(/the run is over: announcing this shard again/);
    }
    assert.equal(maxAbsDiff(sharded.params, plain), 0);
    const init = initialParamsOf(loadModel(join(fx.root, "sharded", "model")));
    t.diagnostic(assertMoved(init, sharded.params, { minRel: 0.01 }).summary);
  } finally {
    await stopAll(shards);
  }
});

test("a shard killed mid-run stops the run, naming it; the last checkpoint is whole, and the resumed run ends as if nothing happened", async (t) => {
  const plain = await unsharded();
  const out = join(fx.root, "killed");
  const shards = [shard(), shard()];
  const procs: CliProc[] = [...shards];
  try {
    await Promise.all(shards.map((s) => s.waitFor(/shard announced at/)));
    const c = coordinator(out, ["--coordinator-shards", "3", "--remote-shards"]);
    const w = workers();
    procs.push(c, ...w);
    const [, step] = await c.waitFor(/checkpoint \(step\) at step (\d+)/, 120_000);
    // the workers freeze, so that the run cannot end meanwhile; a shard dies; they go on
    for (const x of w) x.p.kill("SIGSTOP");
    shards[0]!.p.kill("SIGKILL");
    for (const x of w) x.p.kill("SIGCONT");
    const code = await c.done;
    const err = (await c.result).stderr;
    t.diagnostic(`killed after the checkpoint at step ${step}`);
    assert.notEqual(code, 0, "the run stops");
    assert.match(err, /coordinator shard \d \(tcp:\/\/127\.0\.0\.1:\d+\) went away: the Adam state of its slice since the last checkpoint went with it/);
    assert.match(err, /resume \(--auto-resume/);
    assert.ok(existsSync(join(out, "checkpoints", "last.ckpt")));
    assert.ok(!existsSync(join(out, "model")), "no model from a run that did not end");
    // a new shard beside the survivor; the same workers (they wait for the coordinator to come back)
    const again = shard();
    procs.push(again);
    await again.waitFor(/shard announced at/);
    await shards[1]!.waitFor(/announcing this shard again/, 30_000);
    const c2 = coordinator(out, ["--coordinator-shards", "3", "--remote-shards", "--auto-resume"]);
    procs.push(c2);
    const code2 = await c2.done;
    const err2 = (await c2.result).stderr;
    assert.equal(code2, 0, `${err2}\n--- the workers:\n${w.map((x) => x.err()).join("\n---\n")}`);
    assert.match(err2, /resumed from \S+last\.ckpt: step \d+/);
    const resumed = loadModel(join(out, "model")).params;
    assert.equal(maxAbsDiff(resumed, plain), 0, "the resumed run ends with the uninterrupted run's parameters");
  } finally {
    await stopAll(procs);
  }
});

test("coordinator-shard on its own needs --nats; --remote-shards needs --nats and k ≥ 2; a shard off this machine needs keys", async () => {
  const alone = await runCli(["coordinator-shard"], { timeoutMs: 30_000 });
  assert.equal(alone.code, 2, alone.stderr);
  assert.match(alone.stderr, /needs --nats <url>/);
  const noNats = await runCli(["coordinator", "--dataset", fx.dataset, "--bind", "tcp://127.0.0.1:*", "--coordinator-shards", "3", "--remote-shards"], { timeoutMs: 30_000 });
  assert.equal(noNats.code, 2, noNats.stderr);
  assert.match(noNats.stderr, /--remote-shards finds the shards on the cluster plane: give --nats/);
  const one = await runCli(["coordinator", "--dataset", fx.dataset, "--bind", "tcp://127.0.0.1:*", "--nats", nats.url, "--remote-shards"], { timeoutMs: 30_000 });
  assert.equal(one.code, 2, one.stderr);
  assert.match(one.stderr, /--remote-shards needs --coordinator-shards k ≥ 2/);
  const open = await runCli(["coordinator-shard", "--nats", nats.url, "--bind", "tcp://0.0.0.0:*"], { timeoutMs: 30_000 });
  assert.equal(open.code, 2, open.stderr);
  assert.match(open.stderr, /refusing: binding tcp:\/\/0\.0\.0\.0:\* without CURVE keys/);
  // a coordinator without keys that claims a shard on another host refuses to use it (and names it)
  const nc = await connectNats(nats.url);
  const kv = await openKv(nc, KV_BUCKET);
  await kv.put(`${SHARD_KEY_PREFIX}far`, JSON.stringify({ id: "far", endpoint: "tcp://10.255.255.1:5555", control: "tcp://10.255.255.1:5556", host: "far", pid: 1, at: new Date().toISOString() }));
  await nc.close();
  const far = await runCli(["coordinator", "--dataset", fx.dataset, "--bind", "tcp://127.0.0.1:*", "--nats", nats.url, "--coordinator-shards", "2", "--remote-shards"], { timeoutMs: 60_000 });
  assert.equal(far.code, 2, far.stderr);
  assert.match(far.stderr, /refusing: the coordinator shard at tcp:\/\/10\.255\.255\.1:5555 is off this machine, and without CURVE keys/);
});
