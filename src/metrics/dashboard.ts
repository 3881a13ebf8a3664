// The only module that imports @grafana/grafana-foundation-sdk: builds the Grafana dashboard JSON
// from the panel catalogue in ./panels.ts.
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as common from "@grafana/grafana-foundation-sdk/common";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as bargauge from "@grafana/grafana-foundation-sdk/bargauge";
import { ROWS, type PanelSpec, type RowSpec } from "./panels.js";
import { METRIC } from "./names.js";

export const DASHBOARD_UID = "imdb-train";
export const DASHBOARD_TITLE = "imdb-train: distributed training";
/** uid of the provisioned Prometheus data source (deploy/grafana/provisioning/datasources). */
export const DATASOURCE_UID = "prometheus";

const DS: common.DataSourceRef = { type: "prometheus", uid: "${datasource}" };
const PANEL_HEIGHT = 8;

function queries(spec: PanelSpec): prometheus.DataqueryBuilder[] {
  return spec.queries.map((q, i) =>
    new prometheus.DataqueryBuilder()
      .refId(String.fromCharCode(65 + i))
      .expr(q.expr)
      .legendFormat(q.legend)
      .datasource(DS),
  );
}

function thresholds(spec: PanelSpec): dashboard.ThresholdsConfigBuilder | undefined {
  if (!spec.thresholds) return undefined;
  return new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps(spec.thresholds);
}

function panel(spec: PanelSpec) {
  const t = thresholds(spec);
  switch (spec.kind) {
    case "stat": {
      const b = new stat.PanelBuilder()
        .title(spec.title).description(spec.description).datasource(DS).unit(spec.unit)
        .span(spec.width).height(PANEL_HEIGHT / 2).targets(queries(spec))
        .graphMode(common.BigValueGraphMode.Area);
      return t ? b.thresholds(t) : b;
    }
    case "bargauge": {
      const b = new bargauge.PanelBuilder()
        .title(spec.title).description(spec.description).datasource(DS).unit(spec.unit)
        .span(spec.width).height(PANEL_HEIGHT).targets(queries(spec))
        .orientation(common.VizOrientation.Horizontal).displayMode(common.BarGaugeDisplayMode.Gradient)
        .min(0).max(3);
      return t ? b.thresholds(t) : b;
    }
    default: {
      const b = new timeseries.PanelBuilder()
        .title(spec.title).description(spec.description).datasource(DS).unit(spec.unit)
        .span(spec.width).height(PANEL_HEIGHT).targets(queries(spec))
        .lineWidth(1).fillOpacity(10)
        .legend(new common.VizLegendOptionsBuilder().showLegend(true).displayMode(common.LegendDisplayMode.List).placement(common.LegendPlacement.Bottom));
      return t ? b.thresholds(t) : b;
    }
  }
}

/** The dashboard as a plain object, ready for JSON.stringify. */
export function buildDashboard(rows: RowSpec[] = ROWS): object {
  const b = new dashboard.DashboardBuilder(DASHBOARD_TITLE)
    .uid(DASHBOARD_UID)
    .description("Training loss and accuracy, step phases, per-worker throughput and stragglers, gradients, membership, ingest and process metrics of an imdb-train cluster.")
    .tags(["imdb-train", "training"])
    .editable()
    .refresh("10s")
    .time({ from: "now-30m", to: "now" })
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .withVariable(new dashboard.DatasourceVariableBuilder("datasource").label("Data source").type("prometheus")
      .current({ selected: true, text: "Prometheus", value: DATASOURCE_UID }))
    .withVariable(new dashboard.QueryVariableBuilder("worker").label("Worker")
      .datasource(DS)
      .query(`label_values(${METRIC.workerSamples}, worker)`)
      .definition(`label_values(${METRIC.workerSamples}, worker)`)
      .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
      .multi(true).includeAll(true).allValue(".*").sort(dashboard.VariableSort.AlphabeticalAsc));
  for (const row of rows) {
    b.withRow(new dashboard.RowBuilder(row.title));
    for (const spec of row.panels) b.withPanel(panel(spec));
  }
  return b.build();
}

/** Every PromQL expression in a dashboard JSON object (panels inside rows included). */
export function dashboardExprs(json: unknown): { panel: string; expr: string }[] {
  const out: { panel: string; expr: string }[] = [];
  const visit = (panels: unknown) => {
    if (!Array.isArray(panels)) return;
    for (const pn of panels as { title?: string; targets?: { expr?: string }[]; panels?: unknown }[]) {
      for (const t of pn.targets ?? []) if (typeof t.expr === "string") out.push({ panel: pn.title ?? "", expr: t.expr });
      visit(pn.panels);
    }
  };
  visit((json as { panels?: unknown }).panels);
  return out;
}
