// startMetrics: a real HTTP endpoint per role, its own registry, labels, bounded worker labels,
// and `promtool check metrics` (Debian's prometheus package) on the exposition it serves.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMetrics, METRIC, reportEngineMemory } from "../src/metrics/index.js";
import { WorkerLabels, OVERFLOW_WORKER } from "../src/metrics/labels.js";
import { ConnectionError, UsageError } from "../src/errors.js";
import type { Telemetry } from "../src/telemetry.js";

/** Call every Telemetry method once, with plausible values. */
function reportEverything(t: Telemetry): void {
  t.step({ step: 7, epoch: 1, loss: 0.61, accuracy: 0.7, samples: 64, tokens: 14_000, seconds: 0.8 });
  for (const phase of ["compute", "wait", "reduce", "optimizer", "broadcast"] as const) t.phase(phase, 0.1, "w0");
  t.gradNorm(6.5, true);
  t.paramVersion(7);
  t.validation({ epoch: 1, loss: 0.55, accuracy: 0.74 });
  t.liveWorkers(2);
  t.membership("join", "w0");
  t.membership("evict", "w1");
  t.heartbeatMissed("w1");
  t.straggler("w1", 0.4);
  t.rejected("stale", "w1");
  t.bytes("sent", 1000, "w0");
  t.bytes("received", 2000);
  t.checkpoint(0.3, 5_000_000);
  t.checkpointFailed("no_space");
  t.workerStep("w0", { samples: 32, tokens: 7000, seconds: 0.5, loss: 0.6, accuracy: 0.7 });
  t.engineMemory("w0", 1_000_000, 2_000_000);
  t.ingest({ reviews: 100, seconds: 0.05, padding: 0.1, skipped: 2 });
  t.jetstreamLag(4);
}

function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("each role serves /metrics on its own port with its own registry and a role label", async () => {
  await using coord = await startMetrics({ role: "coordinator", port: 0, host: "127.0.0.1" });
  await using worker = await startMetrics({ role: "worker", port: 0, host: "127.0.0.1", worker: "w3" });
  assert.notEqual(coord.port, worker.port);
  coord.telemetry.step({ step: 3, epoch: 0, loss: 0.5, accuracy: 0.8, samples: 64, tokens: 100, seconds: 0.2 });
  worker.telemetry.workerStep("w3", { samples: 32, tokens: 50, seconds: 0.1, loss: 0.4, accuracy: 0.9 });

  const res = await fetch(coord.url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
  const c = await res.text();
  const w = await (await fetch(worker.url)).text();
  assert.equal(value(c, `${METRIC.loss}{split="train",role="coordinator"}`), 0.5);
  assert.equal(value(c, `${METRIC.samples}{role="coordinator"}`), 64);
  assert.match(c, /process_cpu_seconds_total\{role="coordinator"\}/, "default process metrics");
  assert.doesNotMatch(c, /imdb_train_worker_samples_total/, "a registry per process: no worker metrics on the coordinator");
  assert.equal(value(w, `${METRIC.workerSamples}{worker="w3",role="worker"}`), 32);
  assert.match(w, /process_resident_memory_bytes\{role="worker",worker="w3"\}/);
  assert.doesNotMatch(w, /imdb_train_loss/);
  assert.equal((await fetch(coord.url.replace("/metrics", "/nope"))).status, 404);
});

test("counters add up, zero series exist before events, and a port in use is a ConnectionError", async () => {
  await using m = await startMetrics({ role: "coordinator", port: 0, host: "127.0.0.1" });
  let text = await m.text();
  assert.equal(value(text, `${METRIC.gradClips}{role="coordinator"}`), 0);
  assert.equal(value(text, `${METRIC.rejected}{reason="nan",role="coordinator"}`), 0);
  m.telemetry.gradNorm(7, true);
  m.telemetry.gradNorm(1, false);
  m.telemetry.rejected("nan");
  m.telemetry.rejected("nan", "w9");
  m.telemetry.straggler("w1", 0.25);
  m.telemetry.straggler("w1", 0.5);
  text = await m.text();
  assert.equal(value(text, `${METRIC.gradClips}{role="coordinator"}`), 1);
  assert.equal(value(text, `${METRIC.gradNorm}{role="coordinator"}`), 1);
  assert.equal(value(text, `${METRIC.rejected}{reason="nan",role="coordinator"}`), 2);
  assert.equal(value(text, `${METRIC.stragglerSeconds}{worker="w1",role="coordinator"}`), 0.75);
  assert.equal(value(text, `${METRIC.heartbeatsMissed}{worker="w1",role="coordinator"}`), 0, "per-worker zero on first sight");
  assert.equal(value(text, `${METRIC.membership}{event="evict",worker="w1",role="coordinator"}`), 0);

  await assert.rejects(startMetrics({ role: "worker", port: m.port, host: "127.0.0.1" }), ConnectionError);
  await assert.rejects(startMetrics({ role: "worker", port: 70000 }), UsageError);
  await assert.rejects(startMetrics({ role: "trainer" as never, port: 0 }), UsageError);
  await m.close();
  await m.close();
  await assert.rejects(fetch(m.url));
});

test("worker labels are bounded: plain names only, at most N distinct, the rest share one label", () => {
  const fresh: string[] = [];
  const labels = new WorkerLabels(3, (l) => fresh.push(l));
  assert.equal(labels.label("w0"), "w0");
  assert.equal(labels.label("w0"), "w0");
  assert.equal(labels.label("w1"), "w1");
  assert.equal(labels.label("bad name\n{}"), "invalid");
  assert.equal(labels.label("w2"), OVERFLOW_WORKER);
  assert.equal(labels.label("w3"), OVERFLOW_WORKER);
  assert.equal(labels.label("w1"), "w1");
  assert.deepEqual(fresh, ["w0", "w1", "invalid", OVERFLOW_WORKER]);
});

test("a flood of worker names does not grow the series count past the bound", async () => {
  await using m = await startMetrics({ role: "coordinator", port: 0, host: "127.0.0.1" });
  for (let i = 0; i < 1000; i++) m.telemetry.heartbeatMissed(`intruder-${i}`);
  const lines = (await m.text()).split("\n").filter((l) => l.startsWith(METRIC.heartbeatsMissed + "{"));
  assert.ok(lines.length <= 65, `${lines.length} series`);
  assert.ok(lines.some((l) => l.includes(`worker="${OVERFLOW_WORKER}"`)));
});

test("engine memory is read from a tf.memory()-shaped source, GPU bytes only when reported", async () => {
  await using m = await startMetrics({ role: "worker", port: 0, host: "127.0.0.1", worker: "w0" });
  reportEngineMemory(m.telemetry, "w0", { memory: () => ({ numBytes: 4096 }) });
  let text = await m.text();
  assert.equal(value(text, `${METRIC.engineMemory}{worker="w0",device="host",role="worker"}`), 4096);
  assert.doesNotMatch(text, /device="gpu"/);
  reportEngineMemory(m.telemetry, "w0", { memory: () => ({ numBytes: 8192, numBytesInGPU: 1024 }) });
  text = await m.text();
  assert.equal(value(text, `${METRIC.engineMemory}{worker="w0",device="gpu",role="worker"}`), 1024);
  // WebGPU reports its buffer pool too: that is what it holds on the GPU
  reportEngineMemory(m.telemetry, "w0", { memory: () => ({ numBytes: 8192, numBytesInGPU: 1024, numBytesAllocatedInGPU: 4096 }) });
  assert.equal(value(await m.text(), `${METRIC.engineMemory}{worker="w0",device="gpu",role="worker"}`), 4096);
});

test("promtool check metrics finds no problem in any role's exposition", async (t) => {
  const has = spawnSync("promtool", ["--version"]);
  if (has.error) {
    assert.fail("promtool not found: install Debian's prometheus package (.ci/run does)");
  }
  for (const role of ["ingest", "coordinator", "worker"] as const) {
    await using m = await startMetrics({ role, port: 0, host: "127.0.0.1", ...(role === "worker" ? { worker: "w0" } : {}) });
    reportEverything(m.telemetry);
    const text = await (await fetch(m.url)).text();
    const lint = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    const problems = (lint.stdout + lint.stderr).split("\n").filter((l) => l.trim() !== "");
    // prom-client's own nodejs_active_*_total gauges are flagged; everything of ours must be clean.
    const ours = problems.filter((l) => !/^nodejs_active_(handles|requests|resources)_total /.test(l));
    t.diagnostic(`${role}: ${problems.length} promtool remarks, ${ours.length} about our metrics`);
    assert.deepEqual(ours, [], `${role}: promtool check metrics`);
    assert.match(text, new RegExp(`${METRIC.loss}|${METRIC.workerSamples}|${METRIC.ingestReviews}`));
  }
});

test("a worker's /metrics reads tfjs memory from the engine running in the process, at scrape time", async () => {
  await using m = await startMetrics({ role: "worker", port: 0, host: "127.0.0.1", worker: "w5" });
  const series = `${METRIC.engineMemory}{worker="w5",device="host",role="worker"}`;
  const { tf, useBackend } = await import("../src/tfjs.js");
  await useBackend("cpu");
  const before = value(await m.text(), series) ?? 0;
  const t = tf.zeros([256, 1024]); // 1 MiB of float32
  const during = value(await m.text(), series);
  assert.equal(during, before + 256 * 1024 * 4);
  t.dispose();
  assert.equal(value(await m.text(), series), before);
});
