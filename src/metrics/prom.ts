// The only module that imports prom-client. Gives the rest of src/metrics a registry of its own
// (never the global default) with default process metrics, constant labels, and three metric kinds
// behind small interfaces of ours.
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from "prom-client";

export type Labels = Record<string, string>;

export interface CounterHandle { inc(labels: Labels, by: number): void }
export interface GaugeHandle { set(labels: Labels, value: number): void }
export interface HistogramHandle { observe(labels: Labels, value: number): void; zero(labels: Labels): void }

export interface MetricRegistry {
  counter(name: string, help: string, labelNames?: readonly string[]): CounterHandle;
  gauge(name: string, help: string, labelNames?: readonly string[]): GaugeHandle;
  histogram(name: string, help: string, buckets: readonly number[], labelNames?: readonly string[]): HistogramHandle;
  /** The exposition text served on /metrics. */
  text(): Promise<string>;
  readonly contentType: string;
  /** Stops the default-metrics collectors (event-loop monitor). */
  close(): void;
}

/** A fresh registry with `constLabels` on every series and Node's default process metrics. */
export function createRegistry(constLabels: Labels): MetricRegistry {
  const registry = new Registry();
  registry.setDefaultLabels(constLabels);
  collectDefaultMetrics({ register: registry });
  return {
    counter(name, help, labelNames = []) {
      const c = new Counter({ name, help, labelNames: [...labelNames], registers: [registry] });
      return { inc: (labels, by) => c.inc(labels, by) };
    },
    gauge(name, help, labelNames = []) {
      const g = new Gauge({ name, help, labelNames: [...labelNames], registers: [registry] });
      return { set: (labels, value) => g.set(labels, value) };
    },
    histogram(name, help, buckets, labelNames = []) {
      const h = new Histogram({ name, help, buckets: [...buckets], labelNames: [...labelNames], registers: [registry] });
      return { observe: (labels, value) => h.observe(labels, value), zero: (labels) => h.zero(labels) };
    },
    text: () => registry.metrics(),
    contentType: registry.contentType,
    close: () => registry.clear(),
  };
}
