// Progress in plain logs (stderr not a terminal: pipes, containers, --json runs): the time left in the epoch
// and the run, from a moving average of step time plus the timed epoch ends; a real piped `train` and `eval`.
import test, { before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.js";
import { makeLayout, writeLayoutDir, tempDir, cleanup } from "./helpers/fixture.js";
import { runIngest } from "../src/ingest/index.js";
import { RunClock, formatLeft, type StepEvent } from "../src/coordinator/progress.js";

const step = (s: number, epoch: number, stepInEpoch: number, stepsInEpoch: number): StepEvent =>
  ({ type: "step", step: s, epoch, stepInEpoch, stepsInEpoch, loss: 0.5, accuracy: 0.75, samples: 8, seconds: 0.1, gradNorm: 1 });

test("RunClock: time left = steps left × mean step gap + the epoch ends still to come, once timed", () => {
  let now = 100;
  const clock = new RunClock(3, () => now);
  // epoch 1 of 3, 10 steps each, one step every 2 s
  let left = clock.step(step(1, 0, 1, 10));
  assert.ok(Number.isNaN(left.run), "no gap timed after the first step");
  assert.equal(formatLeft(left), "timing the first steps");
  for (let i = 2; i <= 10; i++) { now += 2; left = clock.step(step(i, 0, i, 10)); }
  assert.deepEqual(left, { epoch: 0, run: 2 * 10 * 2, epochEndTimed: false });
  assert.match(formatLeft(left), /run 40\.0s \+ validation$/);
  // the epoch end (validation + checkpoint) takes 7 s: the first step of epoch 2 comes 2 + 7 s later
  now += 9;
  left = clock.step(step(11, 1, 1, 10));
  assert.equal(left.epochEndTimed, true);
  assert.equal(left.epoch, 9 * 2 + 7);
  assert.equal(left.run, 9 * 2 + 7 + (10 * 2 + 7));
  assert.equal(formatLeft(left), "epoch 25.0s, run 52.0s");
  // steps slow down to 4 s: the moving average follows
  for (let i = 2; i <= 5; i++) { now += 4; left = clock.step(step(10 + i, 1, i, 10)); }
  const mean = (9 * 2 + 4 * 4) / 13;
  assert.ok(Math.abs(left.epoch - (5 * mean + 7)) < 1e-9, `${left.epoch}`);
  // events that arrive in a burst (a busy launcher): the epoch end is still counted as timed, as no time
  const burst = new RunClock(2, () => now);
  for (let i = 1; i <= 3; i++) { now += 2; burst.step(step(i, 0, i, 3)); }
  now += 0.5; // the first step of epoch 2 seen 0.5 s after the last of epoch 1, less than a step
  assert.deepEqual(burst.step(step(4, 1, 1, 3)), { epoch: 2 * 2, run: 2 * 2, epochEndTimed: true });
  assert.match(clock.line(step(15, 1, 5, 10)), /^step 15\/30 · epoch 2\/3, step 5\/10 · loss 0\.500 acc 75\.0% · [\d.]+ samples\/s, 0\.10 s\/step · left: epoch \S+, run \S+$/);
  // a step whose batches held no samples has no loss; as JSON (a child's event) that is null
  const empty = { ...step(16, 1, 6, 10), loss: null as unknown as number, accuracy: Number.NaN };
  assert.match(clock.line(empty), / · loss – acc –% · /);
});

test("RunClock: a line for the first three steps, each epoch's last, then every 10 steps at least 5 s apart or every 30 s", () => {
  let now = 0;
  const clock = new RunClock(1, () => now);
  const logged: number[] = [];
  for (let i = 1; i <= 200; i++) {
    now += 0.125; // fast steps: the 5 s floor rules
    const e = step(i, 0, i, 200);
    clock.step(e);
    if (clock.due(e)) logged.push(i);
  }
  assert.deepEqual(logged, [1, 2, 3, 43, 83, 123, 163, 200]);
  const slow = new RunClock(1, () => now);
  const slowLogged: number[] = [];
  for (let i = 1; i <= 20; i++) {
    now += 12; // slow steps: one line every 30 s at least
    const e = step(i, 0, i, 20);
    slow.step(e);
    if (slow.due(e)) slowLogged.push(i);
  }
  assert.deepEqual(slowLogged, [1, 2, 3, 6, 9, 12, 15, 18, 20]);
});

let root = "";
let data = "";
let dataset = "";

before(async () => {
  root = tempDir("imdb-progress-");
  data = writeLayoutDir(join(root, "data"), makeLayout({ train: 60, test: 20, seed: 12, words: [5, 30] }));
  dataset = join(root, "ds");
  await runIngest({ data, out: dataset, batchSize: 4, vocabSize: 100, valFraction: 0.2, seed: 3 });
});

after(() => cleanup(root));

test("piped train and eval: log lines carry the epoch, the run's position and the time left", { timeout: 180_000 }, async () => {
  const out = join(root, "run");
  const r = await runCli(["train", "--dataset", dataset, "--out", out, "--workers", "2", "--backend", "wasm", "--epochs", "2",
    "--hidden", "8", "--embed-dim", "8", "--max-val-batches", "2", "--seed", "4"], { timeoutMs: 150_000 });
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const lines = r.stderr.split("\n").filter((l) => /\[train\] step \d+\//.test(l));
  const parsed = lines.map((l) => /step (\d+)\/(\d+) · epoch (\d)\/2, step (\d+)\/(\d+) · .* · left: (.*)$/.exec(l));
  assert.ok(parsed.length >= 4 && parsed.every(Boolean), `progress lines:\n${lines.join("\n")}`);
  const total = Number(parsed[0]![2]);
  assert.equal(total, 2 * Number(parsed[0]![5]), "the run's steps = 2 epochs × steps per epoch");
  // from the second step on, every line has a time left (the arithmetic is checked above with a clock of its
  // own: real step events may arrive in bursts); the run's is never less than the epoch's
  for (const m of parsed.slice(1)) {
    const left = /^epoch (\S+), run (\S+)( \+ validation)?$/.exec(m![6]!);
    assert.ok(left, m![0]);
    assert.ok(seconds(left[2]!) >= seconds(left[1]!), m![0]);
  }
  // once epoch 1 has ended, its validation is timed and counted: no "+ validation" in epoch 2's lines
  const second = parsed.filter((m) => m![3] === "2");
  assert.ok(second.length > 0, "epoch 2 has at least its last step's line");
  for (const m of second) assert.doesNotMatch(m![0], /\+ validation/);

  const ev = await runCli(["eval", "--model", join(out, "model"), "--data", data, "--backend", "wasm", "--batch-size", "4"], { timeoutMs: 60_000 });
  assert.equal(ev.code, 0, ev.stderr);
  assert.match(ev.stderr, /\[eval\] 4\/40 reviews \(10\.0%\) · acc [\d.]+% · \d+ reviews\/s · left \d/);
});

/** "1m05s", "3.2s", "1h02m" → seconds. */
function seconds(s: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?$/.exec(s);
  assert.ok(m && s.length > 0, `a duration: ${s}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}
