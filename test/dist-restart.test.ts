// A coordinator killed with SIGKILL, or stopped with SIGTERM (a drained node: exit checkpoint, Stop to the
// workers), and started again at the same address with --auto-resume: it continues from its newest
// checkpoint, and the worker that kept running joins the new run by itself, then exits 0 when the run ends.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnCli } from "./helpers/cli.js";
import { freePort } from "./helpers/nats.js";
import { ingestSmallDataset, type SmallDataset } from "./helpers/training.js";

let fx: SmallDataset;
let root = "";
let dataset = "";

before(async () => {
  fx = await ingestSmallDataset("imdb-restart-", { train: 60, seed: 41, words: [5, 30] }, { batchSize: 4, vocabSize: 100 });
  ({ root, dataset } = fx);
});

after(() => fx?.cleanup());

test("a coordinator restarted after SIGKILL resumes with --auto-resume and its worker rejoins the new run by itself", async (t) => {
  const port = await freePort();
  const out = join(root, "run");
  const args = ["coordinator", "--dataset", dataset, "--bind", `tcp://127.0.0.1:${port}`, "--out", out, "--workers", "1", "--batches-per-step", "2",
    "--epochs", "2", "--checkpoint-every", "2", "--auto-resume", "--hidden", "8", "--embed-dim", "8", "--lr", "0.01", "--warmup-steps", "0",
    "--seed", "8", "--max-val-batches", "2", "--json"];
  const first = spawnCli(args, { killAfterMs: 90_000 });
  const worker = spawnCli(["worker", "--coordinator", `tcp://127.0.0.1:${port}`, "--name", "w0", "--backend", "wasm"], { killAfterMs: 90_000 });
  let second: ReturnType<typeof spawnCli> | null = null;
  try {
    await first.waitFor(/--auto-resume: no checkpoint in .* yet; starting a new run/);
    const [, runA] = await first.waitFor(/listening on tcp:\/\/127\.0\.0\.1:\d+ \(run (\d+)/);
    await first.waitFor(/checkpoint \(step\) at step 4, epoch 1/);
    first.p.kill("SIGKILL");
    assert.equal(await first.done, null);
    second = spawnCli(args, { killAfterMs: 90_000 });
    const [resumedLine] = await second.waitFor(/resumed from [^\n]*/);
    t.diagnostic(resumedLine);
    const [, runB] = await second.waitFor(/listening on tcp:\/\/127\.0\.0\.1:\d+ \(run (\d+)/);
    const [rejoin] = await worker.waitFor(/the coordinator at [^\n]* restarted \(run \d+ → \d+\): joining the new run/, 30_000);
    t.diagnostic(rejoin);
    assert.ok(rejoin.includes(`run ${runA} → ${runB}`), rejoin);
    assert.equal(await second.done, 0, second.err().slice(-3000));
    assert.equal(await worker.done, 0, worker.err().slice(-3000));
    const report = JSON.parse(second.out().trim().split("\n").pop()!);
    assert.equal(report.steps, 24, "the restarted coordinator finished both epochs (12 steps each)");
    assert.equal(report.epochs.length, 2);
    assert.match(worker.err(), /stopped by the coordinator \(run finished\)/);
    // on its own (no launcher), the coordinator logs its progress with the time left
    assert.match(second.err(), /\[coordinator\] step \d+\/24 · epoch [12]\/2, step \d+\/12 · .* · left: epoch \S+, run \S+/);
  } finally {
    for (const p of [first, worker, second]) if (p && p.p.exitCode === null && p.p.signalCode === null) p.p.kill("SIGKILL");
  }
});

test("a coordinator stopped with SIGTERM and started again: its worker waits, rejoins the resumed run and exits 0 at its end", async (t) => {
  const port = await freePort();
  const out = join(root, "run-term");
  const args = ["coordinator", "--dataset", dataset, "--bind", `tcp://127.0.0.1:${port}`, "--out", out, "--workers", "1", "--batches-per-step", "2",
    "--epochs", "2", "--checkpoint-every", "2", "--auto-resume", "--hidden", "8", "--embed-dim", "8", "--lr", "0.01", "--warmup-steps", "0",
    "--seed", "8", "--max-val-batches", "2", "--json"];
  const first = spawnCli(args, { killAfterMs: 90_000 });
  const worker = spawnCli(["worker", "--coordinator", `tcp://127.0.0.1:${port}`, "--name", "w0", "--backend", "wasm", "--json"], { killAfterMs: 90_000 });
  let second: ReturnType<typeof spawnCli> | null = null;
  try {
    await first.waitFor(/checkpoint \(step\) at step 4, epoch 1/);
    first.p.kill("SIGTERM");
    assert.equal(await first.done, 130, first.err().slice(-2000));
    const [waiting] = await worker.waitFor(/the coordinator stopped before the end of the run \(coordinator stopping\)[^\n]*/, 20_000);
    t.diagnostic(waiting);
    second = spawnCli(args, { killAfterMs: 90_000 });
    await second.waitFor(/resumed from [^\n]*/);
    assert.equal(await second.done, 0, second.err().slice(-3000));
    assert.equal(await worker.done, 0, worker.err().slice(-3000));
    const report = JSON.parse(second.out().trim().split("\n").pop()!);
    assert.equal(report.epochs.length, 2);
    const w = JSON.parse(worker.out().trim().split("\n").pop()!);
    assert.equal(w.reason, "run finished");
    assert.equal(w.runId, report.run_id, "the worker ended in the resumed run");
  } finally {
    await Promise.all([first, worker, second].map((p) => p?.stop()));
  }
});
