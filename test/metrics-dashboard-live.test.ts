// The dashboard against reality. A real 2-worker training run (`imdb-train train --workers 2
// --metrics-port P`: coordinator on P, workers on P+1 and P+2) on a dataset that the real ingest
// pipeline wrote while serving its own /metrics, all scraped by a real Prometheus. Then EVERY PromQL
// expression of the committed dashboard is evaluated through Prometheus's HTTP API and must return at
// least one series (the few listed in NOT_REPORTED_YET must not, until their role reports them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { startPrometheus, expandGrafanaVars, type Prometheus } from "./helpers/prometheus.js";
import { freePort } from "./helpers/nats.js";
import { spawnCli, spawnNode, type CliProc } from "./helpers/cli.js";
import { makeLayout, writeLayoutDir, tempDir, cleanup } from "./helpers/fixture.js";
import { dashboardExprs } from "../src/metrics/dashboard.js";
import { renderDashboardPreview } from "./helpers/dashboard-preview.js";

const DASHBOARD = fileURLToPath(new URL("../../deploy/grafana/dashboards/imdb-train.json", import.meta.url));
const INGEST = fileURLToPath(new URL("./helpers/ingest-with-metrics.js", import.meta.url));
/** Set to a file path to also write an SVG preview of every panel over the run. */
const PREVIEW = process.env.IMDB_TRAIN_DASHBOARD_PREVIEW;

/** Panels no role reports yet, and why. The test fails when one of them starts returning series. */
const NOT_REPORTED_YET: Record<string, string> = {
  "JetStream lag": "no role consumes batches from JetStream yet, so nothing calls telemetry.jetstreamLag",
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
  try {
    // 1. the real ingest pipeline, serving role=ingest metrics, writes the dataset
    const data = writeLayoutDir(join(dir, "raw"), makeLayout({ train: 100, seed: 11 }));
    const ingestPort = await freePort();
    ingest = spawnNode(INGEST, [join(data, "aclImdb"), join(dir, "dataset"), String(ingestPort)], { killAfterMs: 300_000 });
    await ingest.waitFor(/^listening /m, 30_000, "stdout");
    // 2. Prometheus scrapes ingest, the coordinator and both workers every second
    const base = await threeFreePorts();
    await using prom = await startPrometheus([
      { job: "ingest", targets: [`127.0.0.1:${ingestPort}`] },
      { job: "coordinator", targets: [`127.0.0.1:${base}`] },
      { job: "worker", targets: [`127.0.0.1:${base + 1}`, `127.0.0.1:${base + 2}`] },
    ], { intervalS: 1 });
    await ingest.waitFor(/^ingested /m, 120_000, "stdout");
    // 3. a real training run: long enough to be scraped many times, stopped with SIGTERM once checked
    train = spawnCli(["train", "--dataset", join(dir, "dataset"), "--out", join(dir, "run"), "--workers", "2",
      "--hidden", "16", "--embed-dim", "8", "--epochs", "500", "--backend", "wasm", "--metrics-port", String(base)], { killAfterMs: 300_000 });
    await train.waitFor(/worker w1 pid/, 60_000);
    const started = Date.now() / 1000;

    const deadline = Date.now() + 120_000;
    let result = await evaluateAll(prom, exprs);
    const required = (r: typeof result) => r.empty.filter((e) => !(e.split(":")[0]! in NOT_REPORTED_YET));
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
    assert.equal(targets.length, 4);
    assert.ok(targets.every((x) => x.health === "up"), JSON.stringify(targets));
    // the per-worker view has one series per worker
    const exprOf = (panel: string) => expandGrafanaVars(exprs.find((e) => e.panel === panel)!.expr);
    const perWorker = await prom.query(exprOf("Gradient time per worker (p90)"));
    assert.deepEqual(perWorker.map((s) => s.metric.worker).sort(), ["w0", "w1"]);

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
    const trainExit = await train?.stop("SIGTERM");
    await ingest?.stop("SIGTERM");
    t.diagnostic(`train stopped with SIGTERM: exit ${String(trainExit?.signal ?? trainExit?.code)}`);
    cleanup(dir);
  }
});
