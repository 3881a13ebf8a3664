// Prometheus metrics for every role. Wiring only: a registry (./prom.ts), the Telemetry on it
// (./telemetry.ts) and the HTTP endpoint (./server.ts).
//
//   const metrics = await startMetrics({ role: "worker", port: opts.metricsPort, worker: "w0" });
//   engine.run({ telemetry: metrics.telemetry });   // report as you go
//   await metrics.close();                           // on shutdown
//
// Units: seconds, bytes, ratios 0..1. `Telemetry.ingest({ padding })` is a ratio: pad tokens over all
// tokens of the batches reported.
import type { Telemetry } from "../telemetry.js";
import { UsageError } from "../errors.js";
import { createRegistry } from "./prom.js";
import { prometheusTelemetry } from "./telemetry.js";
import { serveMetrics } from "./server.js";
import { ROLES, type Role } from "./names.js";
import { reportEngineMemory, runningTfjsEngine } from "./engine-memory.js";

export { METRIC, ROLES, DEFAULT_METRICS_PORT, type Role } from "./names.js";
export { readEngineMemory, reportEngineMemory, runningTfjsEngine, type MemorySource } from "./engine-memory.js";

export interface MetricsOptions {
  role: Role;
  /** TCP port for /metrics; 0 picks a free one (read it back from `port`). */
  port: number;
  /** Interface to listen on (default 0.0.0.0 so that Prometheus in another container can scrape). */
  host?: string;
  /** The worker's slot name ("w0"), set as a `worker` label on every series of a worker process. */
  worker?: string;
}

export interface MetricsHandle extends AsyncDisposable {
  telemetry: Telemetry;
  port: number;
  /** e.g. http://127.0.0.1:9402/metrics */
  url: string;
  /** The exposition text, as a scrape would see it. */
  text(): Promise<string>;
  /** Stop serving; safe to call twice. */
  close(): Promise<void>;
}

export async function startMetrics(opts: MetricsOptions): Promise<MetricsHandle> {
  if (!ROLES.includes(opts.role)) throw new UsageError(`metrics role must be one of ${ROLES.join(", ")}, got "${opts.role}"`);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new UsageError(`--metrics-port must be an integer 0..65535, got ${opts.port}`);
  }
  const host = opts.host ?? "0.0.0.0";
  const labels: Record<string, string> = { role: opts.role };
  if (opts.worker !== undefined) labels.worker = opts.worker;
  const registry = createRegistry(labels);
  const telemetry = prometheusTelemetry(registry, opts.role);
  // A worker's tfjs memory is a point-in-time gauge: read it at every scrape from the engine running
  // in this process (roles may also report it themselves through telemetry.engineMemory).
  const worker = opts.worker;
  const beforeScrape = worker === undefined ? () => {} : () => {
    const engine = runningTfjsEngine();
    if (engine) reportEngineMemory(telemetry, worker, engine);
  };
  const text = () => { beforeScrape(); return registry.text(); };
  const endpoint = await serveMetrics({ text, contentType: registry.contentType }, opts.port, host);
  const shownHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  const close = async () => {
    await endpoint.close();
    registry.close();
  };
  return {
    telemetry,
    port: endpoint.port,
    url: `http://${shownHost}:${endpoint.port}/metrics`,
    text,
    close,
    [Symbol.asyncDispose]: close,
  };
}
