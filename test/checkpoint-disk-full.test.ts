// A full disk during a run, reproduced for real: the run's output directory is a tmpfs of a few KiB or MiB
// (mounted by the test, so it needs root, as CI has), filled up by a file at a chosen step. A write on it fails
// with the kernel's own ENOSPC part-way through the checkpoint file, exactly as on a full disk (a read-only
// directory would not do: root writes through directory permissions, and the error would be EACCES).
//   - A periodic checkpoint that fails is a warning and a metric; training goes on and the checkpoints already
//     written stay loadable; once there is space again the next checkpoint is written and the run ends normally.
//   - The checkpoint that ends the run (the last epoch's, or the exit checkpoint of a stopped run) must be
//     written: when it cannot be, the run fails with a non-zero status and a message naming the file and ENOSPC.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { runCli, spawnCli, type CliProc } from "./helpers/cli.js";
import { makeLayout, writeLayoutDir, tempDir, cleanup } from "./helpers/fixture.js";
import { runIngest } from "../src/ingest/index.js";
import { runCoordinatorRole } from "../src/coordinator/index.js";
import { MODEL_OPTIONS, OPTIM_OPTIONS } from "../src/coordinator/options.js";
import type { RunOptions } from "../src/coordinator/role.js";
import { loadCheckpoint, LAST, PREV } from "../src/coordinator/checkpoint.js";
import { loadModel } from "../src/model/files.js";
import { startMetrics } from "../src/metrics/index.js";

const ROOT_ONLY = process.getuid?.() === 0 ? false : "mounting a tmpfs (a real, small file system to fill up) needs root; CI runs as root";
let root = "";
let dataset = "";
const mounts: string[] = [];

before(async () => {
  root = tempDir("imdb-diskfull-");
  const data = writeLayoutDir(join(root, "data"), makeLayout({ train: 20, seed: 4, words: [5, 30] }));
  dataset = join(root, "ds");
  await runIngest({ data, out: dataset, batchSize: 4, vocabSize: 100, valFraction: 0.2, seed: 3, maxLen: 20 });
});

after(() => {
  for (const m of mounts) spawnSync("umount", ["-l", m]);
  cleanup(root);
});

/** A fresh tmpfs of `size` (mount's syntax: "64k", "16m") at `dir`. */
function smallDisk(dir: string, size: string): string {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { encoding: "utf8" });
  assert.equal(r.status, 0, `mount -t tmpfs -o size=${size}: ${r.stderr}`);
  mounts.push(dir);
  return dir;
}

/** Writes `path` until the file system is full (ENOSPC). */
function fillUp(path: string): void {
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(1 << 20, 7);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
}

/** The run's options: every declared default, then `over`. */
function runOptions(over: Partial<RunOptions>): RunOptions {
  const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const defaults = Object.fromEntries([...MODEL_OPTIONS, ...OPTIM_OPTIONS].map((o) => [camel(o.name), "default" in o ? o.default : o.type === "bool" ? false : undefined]));
  return { ...defaults, autoResume: false, ...over } as unknown as RunOptions;
}

/** Everything the process writes to stderr (its log) while `fn` runs. */
async function capturingStderr<T>(fn: () => Promise<T>): Promise<{ value: T; log: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let log = "";
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => { log += String(chunk); return write(chunk, ...rest); }) as typeof process.stderr.write;
  try {
    return { value: await fn(), log };
  } finally {
    process.stderr.write = write;
  }
}

test("a periodic checkpoint on a full disk is a warning and a metric; the run goes on, the old checkpoint stays, and later ones are written", { skip: ROOT_ONLY }, async () => {
  const out = join(smallDisk(join(root, "disk-a"), "16m"), "run");
  const ckpt = join(out, "checkpoints");
  const filler = join(out, "..", "filler");
  await using metrics = await startMetrics({ role: "coordinator", port: 0, host: "127.0.0.1" });
  let worker: CliProc | null = null;
  const seen: string[] = [];
  const { value: report, log } = await capturingStderr(() => runCoordinatorRole({
    bind: "tcp://127.0.0.1:*", dataset, out, workers: 1, telemetry: metrics.telemetry, noExport: true,
    onListening: (endpoint) => { worker = spawnCli(["worker", "--coordinator", endpoint, "--name", "w0", "--backend", "wasm"], { killAfterMs: 120_000 }); },
    // events come before the step's checkpoint: fill the disk at step 2 of epoch 1, free it at step 2 of epoch 2
    onEvent: (e) => {
      if (e.type !== "step") return;
      if (e.epoch === 0 && e.stepInEpoch === 2) fillUp(filler);
      if (e.epoch === 0 && e.stepInEpoch === 3) {
        // step 2's checkpoint failed: step 1's is intact and nothing half-written is left
        assert.deepEqual(readdirSync(ckpt), [LAST]);
        assert.equal(loadCheckpoint(join(ckpt, LAST)).meta.step, 1);
        seen.push("checked after the first failure");
      }
      if (e.epoch === 1 && e.stepInEpoch === 2) rmSync(filler);
    },
  }, runOptions({ hidden: 8, embedDim: 8, epochs: 2, batchesPerStep: 1, checkpointEvery: 1, warmupSteps: 0, maxValBatches: 1, seed: 5 })));
  assert.equal(await worker!.done, 0, worker!.err());
  assert.deepEqual(seen, ["checked after the first failure"]);
  const perEpoch = report.steps / 2;
  // failed: the step checkpoints 2 .. perEpoch − 1 of epoch 1, the one at its end, and step 1 of epoch 2
  const warnings = log.split("\n").filter((l) => l.includes("WARN") && l.includes("not written"));
  assert.equal(warnings.length, perEpoch, log);
  assert.match(warnings[0]!, /checkpoints\/last\.ckpt: checkpoint \(step\) at step 2 not written \(ENOSPC: no space left on device, write\); training goes on and last\.ckpt still holds step 1/);
  assert.match(warnings.at(-2)!, new RegExp(`checkpoint \\(epoch\\) at step ${perEpoch} not written \\(ENOSPC`));
  const failures = /imdb_train_checkpoint_failures_total\{[^}]*reason="no_space"[^}]*\} (\d+)/.exec(await metrics.text());
  assert.equal(Number(failures?.[1]), perEpoch);
  // space again: written from step 2 of epoch 2 on, and the run ended normally
  assert.match(log, new RegExp(`checkpoint \\(step\\) at step ${perEpoch + 2}, epoch 2`));
  const last = loadCheckpoint(join(ckpt, LAST));
  assert.deepEqual([last.meta.step, last.meta.reason], [report.steps, "epoch"]);
  assert.equal(loadCheckpoint(join(ckpt, PREV)).meta.step, report.steps - 1);
  assert.deepEqual(readdirSync(ckpt).sort(), [LAST, PREV]);
  assert.equal(loadModel(join(out, "model")).params.length, last.arrays.params!.length);
});

const SMALL = ["--workers", "1", "--hidden", "32", "--embed-dim", "32", "--batches-per-step", "1", "--checkpoint-every", "2", "--warmup-steps", "0", "--max-val-batches", "1", "--seed", "5"];

test("the checkpoint that ends a run cannot be written: `train` fails, naming the file and ENOSPC", { skip: ROOT_ONLY }, async () => {
  // room for the run's small files, not for one checkpoint (~140 KB)
  const out = join(smallDisk(join(root, "disk-b"), "64k"), "run");
  const r = await runCli(["train", "--dataset", dataset, "--out", out, "--backend", "wasm", "--epochs", "1", ...SMALL], { timeoutMs: 120_000 });
  assert.notEqual(r.code, 0, r.stderr);
  assert.match(r.stderr, /checkpoints\/last\.ckpt: checkpoint \(step\) at step 2 not written \(ENOSPC: no space left on device, write\); training goes on and no checkpoint was written before it/);
  assert.match(r.stderr, /training failed: .*\/run\/checkpoints\/last\.ckpt: the checkpoint at the end of the run \(step \d+\) could not be written \(ENOSPC: no space left on device, write\)/);
  assert.equal(existsSync(join(out, "model")), false, "no model without its checkpoint");
  assert.deepEqual(readdirSync(join(out, "checkpoints")), [], "nothing half-written left");
});

test("a stopped run whose exit checkpoint cannot be written exits 8, naming the file, ENOSPC and why it stopped", { skip: ROOT_ONLY }, async () => {
  const out = join(smallDisk(join(root, "disk-c"), "64k"), "run");
  const coord = spawnCli(["coordinator", "--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--out", out, "--epochs", "5", ...SMALL]);
  const [, endpoint] = await coord.waitFor(/listening on (tcp:\/\/127\.0\.0\.1:\d+)/);
  const worker = spawnCli(["worker", "--coordinator", endpoint!, "--name", "w0", "--backend", "wasm"]);
  try {
    await coord.waitFor(/checkpoint \(step\) at step 2 not written \(ENOSPC/);
    worker.p.kill("SIGSTOP"); // the run cannot end by itself now
    coord.p.kill("SIGTERM");
    assert.equal(await coord.done, 8, coord.err());
  } finally {
    worker.p.kill("SIGCONT");
    worker.p.kill("SIGKILL");
    await worker.done;
  }
  assert.match(coord.err(), /ERROR \[imdb-train\] .*\/run\/checkpoints\/last\.ckpt: the exit checkpoint \(step \d+\) could not be written \(ENOSPC: no space left on device, write\); no checkpoint was written before it; the run stopped: interrupted/);
});
