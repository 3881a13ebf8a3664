// Subcommands of the metrics role: `dashboard` writes the Grafana dashboard and provisioning files.
import { JSON_OPTION, defineCommand } from "../command.js";
import { emitJson, logger } from "../output.js";

const dashboard = defineCommand({
  path: ["dashboard"],
  summary: "write the Grafana dashboard JSON and its provisioning files",
  help:
    "Generates the imdb-train Grafana dashboard from TypeScript (src/metrics/panels.ts) and writes, under --out:\n" +
    "  grafana/dashboards/imdb-train.json             the dashboard\n" +
    "  grafana/provisioning/datasources/prometheus.yaml  Prometheus data source (uid \"prometheus\", http://prometheus:9090)\n" +
    "  grafana/provisioning/dashboards/imdb-train.yaml   file provider reading /var/lib/grafana/dashboards\n" +
    "  k8s/grafana-dashboard.yaml, k8s/grafana-provisioning.yaml   the same as Kubernetes ConfigMaps\n" +
    "The files in deploy/ are generated this way; a test fails when they drift from the code.",
  options: [
    { name: "out", value: "<dir>", type: "string", description: "deploy directory to write into", default: "deploy" },
    { name: "print", type: "bool", description: "print the dashboard JSON on stdout instead of writing files" },
    JSON_OPTION,
  ],
  examples: ["imdb-train dashboard --out deploy", "imdb-train dashboard --print > imdb-train.json"],
  async run(opts) {
    if (opts.print) {
      const { dashboardJson } = await import("./provisioning.js");
      process.stdout.write(dashboardJson());
      return 0;
    }
    const { writeGenerated } = await import("./provisioning.js");
    const { allQueries } = await import("./panels.js");
    const files = writeGenerated(opts.out);
    logger("dashboard").info(`wrote ${files.length} files (${allQueries().length} queries) under ${opts.out}`);
    if (opts.json) emitJson({ files, queries: allQueries().length });
    return 0;
  },
});

export const commands = [dashboard];
