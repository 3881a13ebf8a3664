// The dashboard against reality: a real Prometheus scrapes live imdb-train processes, then every
// PromQL expression of the generated dashboard is evaluated through Prometheus's HTTP API and must
// return at least one series.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { startPrometheus, expandGrafanaVars, type ScrapeJob } from "./helpers/prometheus.js";
import { freePort } from "./helpers/nats.js";
import { dashboardExprs } from "../src/metrics/dashboard.js";

const DASHBOARD = fileURLToPath(new URL("../../deploy/grafana/dashboards/imdb-train.json", import.meta.url));
const SYNTHETIC = fileURLToPath(new URL("./helpers/synthetic-roles.js", import.meta.url));

interface LiveRun { jobs: ScrapeJob[]; stop(): Promise<void>; describe: string }

function startChild(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", () => resolve(child));
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}`)));
  });
}

async function stopChildren(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map(async (c) => {
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    await exited;
  }));
}

async function syntheticRun(): Promise<LiveRun> {
  const ports = { ingest: await freePort(), coordinator: await freePort(), w0: await freePort(), w1: await freePort() };
  const children = await Promise.all([
    startChild([SYNTHETIC, "ingest", String(ports.ingest)]),
    startChild([SYNTHETIC, "coordinator", String(ports.coordinator)]),
    startChild([SYNTHETIC, "worker", String(ports.w0), "w0"]),
    startChild([SYNTHETIC, "worker", String(ports.w1), "w1"]),
  ]);
  return {
    describe: "synthetic roles (development aid)",
    jobs: [
      { job: "ingest", targets: [`127.0.0.1:${ports.ingest}`] },
      { job: "coordinator", targets: [`127.0.0.1:${ports.coordinator}`] },
      { job: "worker", targets: [`127.0.0.1:${ports.w0}`, `127.0.0.1:${ports.w1}`] },
    ],
    stop: () => stopChildren(children),
  };
}

test("every dashboard query returns series from live processes scraped by a real Prometheus", { timeout: 240_000 }, async () => {
  const exprs = dashboardExprs(JSON.parse(readFileSync(DASHBOARD, "utf8")));
  assert.ok(exprs.length >= 20, `dashboard has only ${exprs.length} queries`);
  const run = await syntheticRun();
  try {
    await using prom = await startPrometheus(run.jobs, { intervalS: 1 });
    const deadline = Date.now() + 60_000;
    let missing: string[] = exprs.map((e) => e.panel);
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2_000));
      missing = [];
      for (const { panel, expr } of exprs) {
        const series = await prom.query(expandGrafanaVars(expr));
        if (series.length === 0) missing.push(`${panel}: ${expr}`);
      }
      if (missing.length === 0) break;
    }
    const targets = await prom.targets();
    assert.deepEqual(missing, [], `queries without series (targets: ${JSON.stringify(targets.map((t) => [t.scrapeUrl, t.health, t.lastError]))})`);
    assert.ok(targets.every((t) => t.health === "up"), JSON.stringify(targets));
  } finally {
    await run.stop();
  }
});
