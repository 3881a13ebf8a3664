// The dashboard against reality. A real 2-worker training run (`imdb-train train --gpus 0,1
// --metrics-port P`: coordinator on P, workers on P+1 and P+2) on a dataset that the real ingest
// pipeline wrote while serving its own /metrics, all scraped by a real Prometheus. Then EVERY PromQL
// expression of the committed dashboard is evaluated through Prometheus's HTTP API and must return at
// least one series (the few listed in NOT_REPORTED_YET must not, until their role reports them).
// GPUs, without one here: synthetic sources in their place — a fake `nvidia-smi` on the workers' PATH
// (each worker polls the GPU `--gpus` gave it), a static DCGM-exporter page that covers GPU 0 only (so both
// the DCGM join and the nvidia-smi fallback show), and the engine's GPU time per phase fed to a real worker
// Telemetry (the WebGPU engine does not fill StepResult.gpuSeconds yet; the worker passes it on as is).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { startPrometheus, expandGrafanaVars, type Prometheus } from "./helpers/prometheus.js";
import { freePort } from "./helpers/nats.js";
import { spawnCli, spawnNode, type CliProc } from "./helpers/cli.js";
import { makeLayout, writeLayoutDir, tempDir, cleanup } from "./helpers/fixture.js";
import { dashboardExprs } from "../src/metrics/dashboard.js";
import { renderDashboardPreview } from "./helpers/dashboard-preview.js";
import { startMetrics } from "../src/metrics/index.js";

const DASHBOARD = fileURLToPath(new URL("../../deploy/grafana/dashboards/imdb-train.json", import.meta.url));
const INGEST = fileURLToPath(new URL("./helpers/ingest-with-metrics.js", import.meta.url));
/** Set to a file path to also write an SVG preview of every panel over the run. */
const PREVIEW = process.env.IMDB_TRAIN_DASHBOARD_PREVIEW;

/** Panels no role reports yet, and why. The test fails when one of them starts returning series. */
const NOT_REPORTED_YET: Record<string, string> = {
  "JetStream lag": "no role consumes batches from JetStream yet, so nothing calls telemetry.jetstreamLag",
};
/** Panels of another kind of run, checked by that run's test. */
const OTHER_RUNS: Record<string, string> = {
  "Pretraining loss": "a pretraining run's (--task lm|sgns): test/pretrain.test.ts queries it from one",
};

async function portIsFree(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** A port P with P, P+1 and P+2 free (train's coordinator and two workers). */
async function threeFreePorts(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p < 65000 && (await portIsFree(p + 1)) && (await portIsFree(p + 2))) return p;
  }
  throw new Error("no three consecutive free ports");
}

const uuid = (i: number) => `GPU-00000000-0000-4000-8000-00000000000${i}`;
/** Utilisation (percent) and memory used (MiB) the fake nvidia-smi reports for GPU i. */
const SMI = (i: number) => ({ util: 30 + 20 * i, usedMiB: 1000 + 500 * i });
/** DCGM's page: GPU 0 only (node index 3, held by a pod), with its own figures. */
const DCGM_UTIL = 87, DCGM_USED_MIB = 2048;

/** A fake `nvidia-smi` answering the worker's --query-gpu poll for the GPUs of --id (default 0,1). */
function fakeNvidiaSmi(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const lines = [0, 1].map((i) => `  ${i}) echo "${i}, ${uuid(i)}, ${SMI(i).util}, ${SMI(i).usedMiB}, 81559, NVIDIA Test GPU" ;;`);
  writeFileSync(join(dir, "nvidia-smi"), [
    "#!/bin/sh",
    "ids=0,1",
    'for a in "$@"; do case "$a" in --id=*) ids="${a#--id=}" ;; esac; done',
    'for i in $(echo "$ids" | tr "," " "); do',
    '  case "$i" in',
    ...lines,
    "  esac",
    "done",
  ].join("\n") + "\n");
  chmodSync(join(dir, "nvidia-smi"), 0o755);
  return dir;
}

/** A static page in DCGM exporter's format (Kubernetes mode: pod labels) on a free port. */
async function fakeDcgmExporter(): Promise<{ port: number; close(): Promise<void> }> {
  const labels = `gpu="3",UUID="${uuid(0)}",device="nvidia3",modelName="NVIDIA Test GPU",Hostname="node-a",container="worker",namespace="default",pod="imdb-train-worker-x1"`;
  const page = [
    "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).", "# TYPE DCGM_FI_DEV_GPU_UTIL gauge", `DCGM_FI_DEV_GPU_UTIL{${labels}} ${DCGM_UTIL}`,
    "# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).", "# TYPE DCGM_FI_DEV_FB_USED gauge", `DCGM_FI_DEV_FB_USED{${labels}} ${DCGM_USED_MIB}`,
  ].join("\n") + "\n";
  const server = createHttpServer((_req, res) => { res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }); res.end(page); });
  const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function evaluateAll(prom: Prometheus, exprs: { panel: string; expr: string }[]) {
  const empty: string[] = [];
  const filled: string[] = [];
  const nanOnly: string[] = [];
  for (const { panel, expr } of exprs) {
    const series = await prom.query(expandGrafanaVars(expr));
    (series.length === 0 ? empty : filled).push(`${panel}: ${expr}`);
    if (series.length > 0 && series.every((s) => !Number.isFinite(Number(s.value[1])))) nanOnly.push(panel);
  }
  return { empty, filled, nanOnly };
}

test("every dashboard query returns series from a live 2-worker training run scraped by a real Prometheus", { timeout: 300_000 }, async (t) => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8"));
  const exprs = dashboardExprs(dashboard);
  assert.ok(exprs.length >= 20, `dashboard has only ${exprs.length} queries`);
  const dir = tempDir("imdb-live-");
  let ingest: CliProc | undefined;
  let train: CliProc | undefined;
  const trainLog = () => train?.err() ?? "";
  let frozen = 0; // a worker pid the test pauses; always resumed before stopping the run
  let dcgm: Awaited<ReturnType<typeof fakeDcgmExporter>> | undefined;
  let gpuTime: Awaited<ReturnType<typeof startMetrics>> | undefined;
  let feed: NodeJS.Timeout | undefined;
  try {
    // 1. the real ingest pipeline, serving role=ingest metrics, writes the dataset
    const data = writeLayoutDir(join(dir, "raw"), makeLayout({ train: 100, seed: 11 }));
    const ingestPort = await freePort();
    ingest = spawnNode(INGEST, [join(data, "aclImdb"), join(dir, "dataset"), String(ingestPort)], { killAfterMs: 300_000 });
    await ingest.waitFor(/^listening /m, 30_000, "stdout");
    // 2. Prometheus scrapes ingest, the coordinator and both workers every second
    const base = await threeFreePorts();
    dcgm = await fakeDcgmExporter();
    gpuTime = await startMetrics({ role: "worker", port: 0, host: "127.0.0.1", worker: "w0" });
    const tel = gpuTime.telemetry;
    feed = setInterval(() => tel.gpuTime("w0", { forward: 0.004 + Math.random() * 1e-3, backward: 0.009, readback: 0.001 }), 200);
    await using prom = await startPrometheus([
      { job: "ingest", targets: [`127.0.0.1:${ingestPort}`] },
      { job: "coordinator", targets: [`127.0.0.1:${base}`] },
      { job: "worker", targets: [`127.0.0.1:${base + 1}`, `127.0.0.1:${base + 2}`] },
      { job: "dcgm", targets: [`127.0.0.1:${dcgm.port}`] },
      { job: "engine-gpu-time", targets: [`127.0.0.1:${gpuTime.port}`] },
    ], { intervalS: 1 });
    await ingest.waitFor(/^ingested /m, 120_000, "stdout");
    // 3. a real training run: long enough to be scraped many times, stopped with SIGTERM once checked
    const path = `${fakeNvidiaSmi(join(dir, "bin"))}:${process.env.PATH ?? ""}`;
    train = spawnCli(["train", "--dataset", join(dir, "dataset"), "--out", join(dir, "run"), "--gpus", "0,1",
      "--hidden", "16", "--embed-dim", "8", "--epochs", "500", "--backend", "wasm", "--metrics-port", String(base)], { killAfterMs: 300_000, env: { PATH: path } });
    await train.waitFor(/worker w1 pid/, 60_000);
    const started = Date.now() / 1000;

    const deadline = Date.now() + 120_000;
    let result = await evaluateAll(prom, exprs);
    const required = (r: typeof result) => r.empty.filter((e) => !(e.split(":")[0]! in NOT_REPORTED_YET) && !(e.split(":")[0]! in OTHER_RUNS));
    while (required(result).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 3_000));
      result = await evaluateAll(prom, exprs);
    }
    const targets = await prom.targets();
    if (result.nanOnly.length) t.diagnostic(`series with only NaN values now (no events in the window): ${result.nanOnly.join("; ")}`);
    t.diagnostic(`${result.filled.length} of ${exprs.length} queries returned series; targets: ${targets.map((x) => `${x.labels.job}=${x.health}`).join(" ")}`);
    assert.deepEqual(required(result), [], `queries without series; targets ${JSON.stringify(targets.map((x) => [x.scrapeUrl, x.health, x.lastError]))}\ntrain log:\n${trainLog().slice(-3000)}`);
    for (const panel of Object.keys(NOT_REPORTED_YET)) {
      assert.ok(!result.filled.some((e) => e.startsWith(panel + ":")), `"${panel}" now has data: remove it from NOT_REPORTED_YET`);
    }
    assert.equal(targets.length, 6);
    assert.ok(targets.every((x) => x.health === "up"), JSON.stringify(targets));
    // the per-worker view has one series per worker
    const exprOf = (panel: string) => expandGrafanaVars(exprs.find((e) => e.panel === panel)!.expr);
    const perWorker = await prom.query(exprOf("Gradient time per worker (p90)"));
    assert.deepEqual(perWorker.map((s) => s.metric.worker).sort(), ["w0", "w1"]);
    // GPUs: w0's GPU (UUID 0) is DCGM's, joined through the UUID its poller reports; w1's comes from nvidia-smi
    const byWorker = async (panel: string, legend: RegExp) => {
      const q = dashboard.panels.find((pn: any) => pn.title === panel).targets.find((t: any) => legend.test(t.legendFormat));
      return Object.fromEntries((await prom.query(expandGrafanaVars(q.expr))).map((s) => [s.metric.worker!, Number(s.value[1])]));
    };
    assert.deepEqual(await byWorker("GPU utilisation per worker", /DCGM/), { w0: DCGM_UTIL / 100 });
    assert.deepEqual(await byWorker("GPU utilisation per worker", /nvidia-smi/), { w1: SMI(1).util / 100 });
    assert.deepEqual(await byWorker("GPU memory per worker", /DCGM/), { w0: DCGM_USED_MIB * 1048576 });
    assert.deepEqual(await byWorker("GPU memory per worker", /nvidia-smi/), { w1: SMI(1).usedMiB * 1048576 });
    assert.deepEqual(await byWorker("GPU memory per worker", /total/), { w0: 81559 * 1048576, w1: 81559 * 1048576 });

    // Make w1 a straggler for real: freeze its process with SIGSTOP for 200 ms out of every 300 ms
    // (its gradients take a few ms here). The straggler view must single it out.
    const pid = Number(/worker w1 pid (\d+)/.exec(trainLog())?.[1]);
    assert.ok(pid > 0, "w1's pid in the launcher's log");
    frozen = pid;
    const pulseUntil = Date.now() + 14_000;
    while (Date.now() < pulseUntil) {
      process.kill(pid, "SIGSTOP");
      await new Promise((r) => setTimeout(r, 200));
      process.kill(pid, "SIGCONT");
      await new Promise((r) => setTimeout(r, 100));
    }
    const slowdown = Object.fromEntries((await prom.query(exprOf("Slowdown vs. median worker"))).map((s) => [s.metric.worker!, Number(s.value[1])]));
    t.diagnostic(`slowdown vs median with w1 frozen 2/3 of the time: ${JSON.stringify(slowdown)}`);
    assert.ok(slowdown.w1! > 1 && slowdown.w0! < 1, `the straggler view should single out w1: ${JSON.stringify(slowdown)}`);
    if (PREVIEW) {
      writeFileSync(PREVIEW, await renderDashboardPreview(prom, dashboard, Math.floor(started), Math.floor(Date.now() / 1000)));
      t.diagnostic(`dashboard preview written to ${PREVIEW}`);
    }
  } finally {
    if (frozen) try { process.kill(frozen, "SIGCONT"); } catch { /* already gone */ }
    clearInterval(feed);
    await gpuTime?.close();
    await dcgm?.close();
    const trainExit = await train?.stop("SIGTERM");
    await ingest?.stop("SIGTERM");
    t.diagnostic(`train stopped with SIGTERM: exit ${String(trainExit?.signal ?? trainExit?.code)}`);
    cleanup(dir);
  }
});
