// A rendered preview of the dashboard from a live Prometheus: every panel's queries over a time range,
// drawn as stacked SVG line charts (with the experiments' dependency-free plotter). Grafana itself
// cannot be installed here; this shows what its panels would show.
import { renderSvg, type Panel } from "../../src/experiments/plot.js";
import { expandGrafanaVars, type Prometheus } from "./prometheus.js";

interface DashPanel { title?: string; type?: string; targets?: { expr?: string; legendFormat?: string }[] }

function legend(format: string | undefined, metric: Record<string, string>): string {
  if (!format) return JSON.stringify(metric);
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => metric[k] ?? "").trim() || "value";
}

export async function renderDashboardPreview(prom: Prometheus, dashboard: { title?: string; panels?: DashPanel[] }, start: number, end: number): Promise<string> {
  const panels: Panel[] = [];
  for (const p of dashboard.panels ?? []) {
    if (p.type === "row" || !p.targets?.length) continue;
    const series = [];
    for (const t of p.targets) {
      if (!t.expr) continue;
      for (const r of await prom.queryRange(expandGrafanaVars(t.expr), start, end, 1)) series.push({ name: legend(t.legendFormat, r.metric), values: r.values });
    }
    panels.push({ title: p.title ?? "", series: series.slice(0, 6) });
  }
  return renderSvg({
    title: dashboard.title ?? "dashboard", subtitle: "every panel's queries, from a live 2-worker run scraped by Prometheus (1 s steps)",
    xLabel: "seconds", xStart: 0, panels, width: 760, panelHeight: 120,
  });
}
