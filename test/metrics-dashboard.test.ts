// The generated dashboard: committed files match the code, every metric the issue asks for has a
// panel, every query is valid PromQL for Prometheus's own parser (promtool), provisioning is wired.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { generatedFiles } from "../src/metrics/provisioning.js";
import { buildDashboard, dashboardExprs, DATASOURCE_UID } from "../src/metrics/dashboard.js";
import { ROWS } from "../src/metrics/panels.js";
import { METRIC, DCGM } from "../src/metrics/names.js";
import { parseYaml } from "../src/metrics/yaml.js";
import { expandGrafanaVars } from "./helpers/prometheus.js";
import { runCli } from "./helpers/cli.js";

const DEPLOY = fileURLToPath(new URL("../../deploy/", import.meta.url));

test("committed dashboard and provisioning files are exactly what `imdb-train dashboard` generates", () => {
  for (const f of generatedFiles()) {
    const committed = readFileSync(join(DEPLOY, f.path), "utf8");
    assert.equal(committed, f.text, `deploy/${f.path} is stale: run \`npx imdb-train dashboard --out deploy\``);
  }
});

test("`imdb-train dashboard` writes the files through the real CLI", async () => {
  const dir = mkdtempSync(join(tmpdir(), "imdb-dash-"));
  try {
    const r = await runCli(["dashboard", "--out", dir, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.files.length, generatedFiles().length);
    const json = JSON.parse(readFileSync(join(dir, "grafana/dashboards/imdb-train.json"), "utf8"));
    assert.deepEqual(json, JSON.parse(JSON.stringify(buildDashboard())));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every metric has a panel (except the listed detail-only ones) and every panel queries known metrics", () => {
  const exprs = dashboardExprs(buildDashboard()).map((e) => e.expr).join("\n");
  // Exported for ad-hoc queries, not on a panel: a second view of the norm, the checkpoint size, ingest
  // busy time and skips, and the coordinator's token count (tokens/s comes from the workers' counters).
  const detailOnly = new Set<string>([METRIC.gradNormHist, METRIC.checkpointBytes, METRIC.ingestSeconds, METRIC.ingestSkipped, METRIC.tokens]);
  for (const name of Object.values(METRIC)) {
    if (detailOnly.has(name)) continue;
    assert.ok(exprs.includes(name), `no panel queries ${name}`);
  }
  const known = new Set<string>([...Object.values(METRIC), "process_resident_memory_bytes", "process_cpu_seconds_total"]);
  for (const m of exprs.matchAll(/\b(imdb_train_[a-z_]+|process_[a-z_]+)/g)) {
    const base = m[1]!.replace(/_(bucket|sum|count)$/, "");
    assert.ok(known.has(base) || known.has(m[1]!), `panel queries unknown metric ${m[1]}`);
  }
  // NVIDIA's DCGM exporter metrics: only the ones listed in names.ts
  for (const m of exprs.matchAll(/\b(DCGM_[A-Z_]+)/g)) assert.ok((Object.values(DCGM) as string[]).includes(m[1]!), `unknown DCGM metric ${m[1]}`);
  for (const row of ROWS) for (const p of row.panels) {
    assert.ok(p.description.length > 10 && p.queries.length > 0 && p.unit, p.title);
  }
  const titles = ROWS.flatMap((r) => r.panels.map((p) => p.title));
  assert.equal(new Set(titles).size, titles.length, "panel titles are unique");
});

test("every dashboard query parses as PromQL (promtool check rules)", () => {
  const exprs = dashboardExprs(buildDashboard());
  const dir = mkdtempSync(join(tmpdir(), "imdb-rules-"));
  try {
    const rules = { groups: [{ name: "dashboard", rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: expandGrafanaVars(e.expr) })) }] };
    const path = join(dir, "rules.json");
    writeFileSync(path, JSON.stringify(rules));
    const r = spawnSync("promtool", ["check", "rules", path], { encoding: "utf8" });
    assert.ifError(r.error);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("provisioning: the data source uid is the one the dashboard defaults to, the provider reads the mounted folder", () => {
  const ds = parseYaml(readFileSync(join(DEPLOY, "grafana/provisioning/datasources/prometheus.yaml"), "utf8"), "datasource") as any;
  assert.equal(ds.datasources[0].type, "prometheus");
  assert.equal(ds.datasources[0].uid, DATASOURCE_UID);
  const dash = buildDashboard() as any;
  const dsVar = dash.templating.list.find((v: any) => v.name === "datasource");
  assert.equal(dsVar.current.value, DATASOURCE_UID);
  const prov = parseYaml(readFileSync(join(DEPLOY, "grafana/provisioning/dashboards/imdb-train.yaml"), "utf8"), "provider") as any;
  assert.equal(prov.providers[0].type, "file");
  assert.ok(prov.providers[0].options.path.startsWith("/"));
});
