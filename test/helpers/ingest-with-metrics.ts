// The real ingest pipeline (runIngest) reporting to a real /metrics endpoint, for the live dashboard
// test. `imdb-train ingest` has no --metrics-port yet, and a one-shot ingest of a small fixture ends
// before a scrape; so this process runs it with startMetrics' telemetry and keeps serving until SIGTERM.
//   node dist/test/helpers/ingest-with-metrics.js <aclImdb dir> <out dir> <metrics port>
// Prints "listening <port>" when /metrics is up and "ingested <out>" when the dataset is written.
import { startMetrics } from "../../src/metrics/index.js";
import { runIngest } from "../../src/ingest/index.js";

const [data, out, port] = process.argv.slice(2) as [string, string, string];
const metrics = await startMetrics({ role: "ingest", port: Number(port), host: "127.0.0.1" });
process.stdout.write(`listening ${metrics.port}\n`);
process.once("SIGTERM", () => { void metrics.close().then(() => process.exit(0)); });
await runIngest({ data, out, batchSize: 8, valFraction: 0.1, seed: 5, threads: 1, telemetry: metrics.telemetry });
process.stdout.write(`ingested ${out}\n`);
