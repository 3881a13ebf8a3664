// Elastic membership with real processes, signals and sockets: workers frozen (SIGSTOP), killed (SIGKILL),
// added (a new `worker`, `imdb-train scale`) and removed during an epoch; the coordinator's audit of consumed
// sample ids must show every training sample of every epoch used exactly once, and the evictions are named in
// the log and in Prometheus metrics (which worker, why, how late).
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli, until, type CliProc } from "./helpers/cli.js";
import { startNats } from "./helpers/nats.js";
import { ingestSmallDataset, type SmallDataset } from "./helpers/training.js";
import { readAudit, idsByEpoch, trainIdsOf } from "./helpers/audit.js";

let fx: SmallDataset;
let root = "";
let dataset = "";
let trainIds: number[] = [];
const SMALL = ["--hidden", "8", "--embed-dim", "8", "--lr", "0.01", "--warmup-steps", "0", "--seed", "4", "--max-val-batches", "2"];

before(async () => {
  // 160 training reviews in 80 batches of 2: an epoch has 40 steps at 2 workers, long enough to act within it
  fx = await ingestSmallDataset("imdb-elastic-", { train: 100, seed: 21, words: [5, 20] }, { batchSize: 2, vocabSize: 100 });
  ({ root, dataset } = fx);
  trainIds = await trainIdsOf(dataset);
});

after(() => fx?.cleanup());

function metric(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{")) continue;
    const body = line.slice(name.length + 1, line.indexOf("}"));
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

test("freeze, kill, join and rejoin during an epoch: every sample used exactly once; evictions in log and metrics", async (t) => {
  const out = join(root, "faults");
  const audit = join(out, "audit.jsonl");
  const nats = await startNats(); // the worker that joins mid-run finds the coordinator through NATS
  const coord = spawnCli(["-v", "coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", "2", "--out", out, "--nats", nats.url,
    "--epochs", "2", "--step-timeout", "1.5", "--heartbeat-timeout", "5", "--metrics-port", "0", "--audit", audit, "--json", ...SMALL]);
  const procs: CliProc[] = [coord];
  try {
    const [, endpoint] = await coord.waitFor(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/);
    const [, metricsUrl] = await coord.waitFor(/metrics on (http:\/\/\S+)/);
    const w0 = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w0", "--backend", "wasm"]);
    const w1 = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w1", "--backend", "wasm"]);
    procs.push(w0, w1);
    await coord.waitFor(/step 2 applied \(epoch 1\)/);
    // both workers freeze mid-epoch: nothing can progress; then w1 dies while frozen (its task is lost)
    w0.p.kill("SIGSTOP");
    w1.p.kill("SIGSTOP");
    w1.p.kill("SIGKILL");
    const [w1line] = await coord.waitFor(/worker w1 \(pid \d+ on [^)]+\) [^\n]*evicted[^\n]*/, 20_000);
    const [w0line] = await coord.waitFor(/worker w0 \(pid \d+ on [^)]+\) [^\n]*evicted[^\n]*/, 20_000);
    await coord.waitFor(/evicted; 0 worker\(s\) left/, 20_000); // both gone (in either order)
    t.diagnostic(w1line);
    t.diagnostic(w0line);
    assert.doesNotMatch(coord.err(), /epoch 1\/2:/, "the faults happened within epoch 1");
    // the evictions are in the metrics: which worker, why, how late
    const text = await (await fetch(metricsUrl!)).text();
    const evictions = (w: string) => ["connection", "deadline", "heartbeat", "startup"].reduce((n, cause) => n + (metric(text, "imdb_train_evictions_total", { worker: w, cause }) ?? 0), 0);
    assert.equal(evictions("w0"), 1, text);
    assert.equal(evictions("w1"), 1, text);
    for (const w of ["w0", "w1"]) {
      // past its deadline, or (connection dropped) silent for that long: both workers were frozen first
      const late = metric(text, "imdb_train_eviction_late_seconds", { worker: w });
      t.diagnostic(`${w}: eviction_late_seconds ${late}`);
      assert.ok(late !== undefined && late > 0, `eviction_late_seconds{worker=${w}} = ${late}`);
    }
    // a new worker joins mid-step and takes over the orphaned batches
    const w2 = spawnCli(["worker", "--nats", nats.url, "--name", "w2", "--backend", "wasm"]);
    procs.push(w2);
    await coord.waitFor(/batches \[[\d, ]+\] handed to w2/, 30_000);
    // the frozen worker wakes up: its gradient is stale, it is told so and joins again
    w0.p.kill("SIGCONT");
    await w0.waitFor(/no longer a member of the run: joining again/, 20_000);
    // it is told why: its late gradient is stale (or, for a heartbeat, that it was evicted)
    const [told] = w0.err().match(/coordinator rejected a message: [^\n]*(is stale|evicted)[^\n]*/) ?? [""];
    t.diagnostic(told);
    assert.ok(told, w0.err());
    assert.equal(await coord.done, 0, coord.err().slice(-4000));
    assert.equal(await w0.done, 0, w0.err());
    assert.equal(await w2.done, 0, w2.err());
    assert.match(w2.err(), /found coordinator tcp:\/\/127\.0\.0\.1:\d+ \(run \d+\) through nats:/);
    const a = readAudit(audit);
    const by = idsByEpoch(a);
    assert.deepEqual([...by.keys()], [1, 2]);
    for (const [epoch, ids] of by) assert.deepEqual(ids, trainIds, `epoch ${epoch}: each of the ${trainIds.length} samples exactly once`);
    const workersIn = (epoch: number) => new Set(a.filter((x) => x.epoch === epoch).flatMap((x) => x.parts.map((p) => p.worker)));
    assert.deepEqual([...workersIn(1)].sort(), ["w0", "w1", "w2"], "w0 (before and after it froze), w1 (before it died) and w2 (joined) all took part in epoch 1");
    const firstW2 = a.find((x) => x.parts.some((p) => p.worker === "w2"))!.step;
    assert.ok(a.some((x) => x.step > firstW2 && x.parts.some((p) => p.worker === "w0")), "w0 took part again after rejoining");
    const report = JSON.parse(coord.out().trim().split("\n").pop()!);
    assert.deepEqual([...report.evicted].sort(), ["w0", "w1"]);
    assert.ok((report.rejected.stale ?? 0) + (report.rejected["unknown-worker"] ?? 0) >= 1, JSON.stringify(report.rejected));
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await nats.stop();
  }
});

test("`imdb-train scale` adds and removes workers of a running `train`; every completed epoch uses each sample once", async (t) => {
  const out = join(root, "scale");
  const audit = join(out, "audit.jsonl");
  const tr = spawnCli(["train", "--dataset", dataset, "--out", out, "--workers", "1", "--backend", "wasm", "--epochs", "500", "--audit", audit, ...SMALL]);
  try {
    await tr.waitFor(/control socket/);
    await until("the first applied steps", () => readAudit(audit).length >= 2);
    const up = await runCli(["scale", "--out", out, "--workers", "3", "--json"], { timeoutMs: 30_000 });
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(up.json.started, ["w1", "w2"]);
    assert.deepEqual(up.json.workers, ["w0", "w1", "w2"]);
    // the new workers load, join and take part: a step with three parts
    const s3 = await until("a step computed by 3 workers", () => readAudit(audit).find((x) => x.parts.length === 3));
    const down = await runCli(["scale", "--out", out, "--workers", "1", "--json"], { timeoutMs: 30_000 });
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(down.json.stopped, ["w2", "w1"]);
    await tr.waitFor(/worker w2 left[\s\S]*worker w1 left|worker w1 left[\s\S]*worker w2 left/, 20_000);
    // a worker stopped by a scale-down says so as a warning, not as an error
    await tr.waitFor(/WARN .*interrupted: left the run/, 20_000);
    assert.doesNotMatch(tr.err(), /ERROR .*interrupted/, "the workers stopped by the scale-down print no ERROR line");
    // the run goes on with one worker until an epoch begun after the scale-down has completed
    const e0 = readAudit(audit).pop()!.epoch;
    await until("a whole epoch after scaling down", () => readAudit(audit).some((x) => x.epoch >= e0 + 2), 90_000);
    const st = await runCli(["scale", "--out", out, "--json"], { timeoutMs: 30_000 });
    assert.deepEqual(st.json.workers, ["w0"]);
    tr.p.kill("SIGINT");
    assert.equal(await tr.done, 130, tr.err().slice(-3000));
    const a = readAudit(audit);
    const last = a[a.length - 1]!.epoch;
    const by = idsByEpoch(a);
    let changed = 0;
    for (const [epoch, ids] of by) {
      if (epoch === last) { assert.equal(new Set(ids).size, ids.length, `epoch ${epoch} (interrupted): no sample twice`); continue; }
      assert.deepEqual(ids, trainIds, `epoch ${epoch}: each of the ${trainIds.length} samples exactly once`);
      if (new Set(a.filter((x) => x.epoch === epoch).map((x) => x.parts.length)).size > 1) changed++;
    }
    t.diagnostic(`3-worker step ${s3.step}; ${by.size} epochs audited (${a.length} steps), ${changed} of them changed membership mid-epoch`);
    assert.ok(changed >= 1, "some completed epoch had workers added or removed during it");
    assert.ok(!existsSync(join(out, "control.json")), "the control file is removed on exit");
  } finally {
    await tr.stop();
  }
});
