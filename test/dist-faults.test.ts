// Faults with real processes: a worker killed with SIGKILL mid-run is noticed, named, and the run finishes
// without it; Ctrl-C (SIGINT) on the `train` launcher stops every child and leaves an exit checkpoint.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli } from "./helpers/cli.js";
import { freePort } from "./helpers/nats.js";
import { ingestSmallDataset, type SmallDataset } from "./helpers/training.js";

let fx: SmallDataset;
let root = "";
let dataset = "";
const SMALL = ["--hidden", "8", "--embed-dim", "4", "--lr", "0.01", "--warmup-steps", "0", "--seed", "9"];

before(async () => {
  fx = await ingestSmallDataset("imdb-faults-", { train: 60, seed: 12, words: [5, 30] }, { batchSize: 4, vocabSize: 100 });
  ({ root, dataset } = fx);
});

after(() => fx?.cleanup());

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

test("a worker killed with SIGKILL is noticed, named and evicted; the run finishes on the other worker", async (t) => {
  const out = join(root, "kill");
  const coord = spawnCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "2", "--out", out,
    "--epochs", "6", "--step-timeout", "30", "--heartbeat-timeout", "30", "--json", ...SMALL]);
  const [, endpoint] = await coord.waitFor(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/);
  const w0 = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w0", "--backend", "wasm"]);
  const w1 = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w1", "--backend", "wasm"]);
  await coord.waitFor(/worker w1 ready/);
  await coord.waitFor(/worker w0 ready/);
  // mid-run, whatever the machine's speed: after the first step (a fixed pause could outlast the whole run)
  await coord.waitFor(/step 1\/\d+ /);
  w1.p.kill("SIGKILL");
  const code = await coord.done;
  await w0.done;
  await w1.done;
  assert.equal(code, 0, coord.err());
  t.diagnostic(coord.err().split("\n").find((l) => /evicted/.test(l)) ?? "(no eviction line)");
  assert.match(coord.err(), new RegExp(`worker w1 \\(pid ${w1.p.pid} on [^)]+\\) (lost its connection|missed its step deadline|sent no heartbeat)[^\\n]*evicted; 1 worker\\(s\\) left`));
  const report = JSON.parse(coord.out().trim().split("\n").pop()!);
  assert.deepEqual(report.evicted, ["w1"]);
  assert.equal(report.epochs.length, 6, "every epoch ran");
  assert.ok(existsSync(join(out, "model", "params.bin")));
});

test("SIGINT on `train` stops the coordinator and all workers, with an exit checkpoint and status 130", async () => {
  const out = join(root, "sigint");
  const t = spawnCli(["train", "--dataset", dataset, "--out", out, "--workers", "2", "--backend", "wasm", "--epochs", "500", ...SMALL]);
  const pids = [Number((await t.waitFor(/coordinator pid (\d+)/))[1]), Number((await t.waitFor(/worker w0 pid (\d+)/))[1]), Number((await t.waitFor(/worker w1 pid (\d+)/))[1])];
  await t.waitFor(/epoch 1\/500/);
  t.p.kill("SIGINT");
  const code = await t.done;
  assert.equal(code, 130, t.err());
  for (const pid of pids) assert.equal(alive(pid), false, `child ${pid} is gone`);
  assert.match(t.err(), /checkpoint \(exit\)/);
  assert.ok(existsSync(join(out, "checkpoints", "last.ckpt")));
});

test("a worker that cannot reach the coordinator retries with back-off, says where, and fails clearly", async () => {
  const port = await freePort();
  const r = await runCli(["worker", "--coordinator", `tcp://127.0.0.1:${port}`, "--name", "lonely", "--connect-timeout", "2"], { timeoutMs: 30_000 });
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, new RegExp(`no answer from the coordinator at tcp://127\\.0\\.0\\.1:${port} yet \\(attempt 1\\); retrying in 1\\.0 s`));
  assert.match(r.stderr, new RegExp(`no coordinator answered at tcp://127\\.0\\.0\\.1:${port} within 2 s`));
});

test("a frozen worker (SIGSTOP) is evicted; after SIGCONT it is told it is no longer a member and joins again", async (t) => {
  const out = join(root, "freeze");
  const coord = spawnCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "2", "--out", out,
    "--epochs", "200", "--step-timeout", "30", "--heartbeat-timeout", "30", ...SMALL]);
  const [, endpoint] = await coord.waitFor(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/);
  const w0 = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w0", "--backend", "wasm"]);
  const w1 = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w1", "--backend", "wasm"]);
  try {
    await coord.waitFor(/worker w1 ready/);
    await coord.waitFor(/worker w0 ready/);
    await coord.waitFor(/epoch 1\/200/);
    w1.p.kill("SIGSTOP");
    const [line] = await coord.waitFor(/worker w1 \(pid \d+ on [^)]+\) [^\n]*evicted[^\n]*/, 20_000);
    t.diagnostic(line);
    w1.p.kill("SIGCONT");
    await w1.waitFor(/no longer a member of the run: joining again/, 20_000);
    await coord.waitFor(/worker w1 ready[\s\S]*worker w1 ready/, 20_000);
    coord.p.kill("SIGTERM");
    assert.equal(await coord.done, 130, coord.err());
    // stopped before the end of the run: the workers wait for the coordinator to resume (dist-restart tests
    // that they rejoin it) rather than exit; stopping them then is a clean leave
    for (const w of [w0, w1]) {
      await w.waitFor(/the coordinator stopped before the end of the run \(coordinator stopping\): waiting up to \d+ s for it to resume/, 20_000);
      w.p.kill("SIGTERM");
      assert.equal(await w.done, 130, w.err());
    }
  } finally {
    await Promise.all([coord, w0, w1].map((p) => p.stop()));
  }
});

test("when the only worker dies, the step waits for a new worker, which finishes the run", async () => {
  const out = join(root, "replace");
  const coord = spawnCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "1", "--out", out,
    "--epochs", "4", "--step-timeout", "30", "--heartbeat-timeout", "30", "--json", ...SMALL]);
  const [, endpoint] = await coord.waitFor(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/);
  const w0 = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w0", "--backend", "wasm"]);
  await coord.waitFor(/worker w0 ready/);
  await coord.waitFor(/epoch 1\/4/);
  w0.p.kill("SIGKILL");
  await coord.waitFor(/worker w0 \(pid \d+ on [^)]+\) lost its connection: evicted; 0 worker\(s\) left/, 20_000);
  const w1 = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w1", "--backend", "wasm"]);
  assert.equal(await coord.done, 0, coord.err());
  assert.equal(await w1.done, 0, w1.err());
  assert.match(coord.err(), /no ready workers/);
  const report = JSON.parse(coord.out().trim().split("\n").pop()!);
  assert.equal(report.epochs.length, 4);
  assert.deepEqual(report.evicted, ["w0"]);
});
