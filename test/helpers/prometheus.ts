// Starts a real Prometheus (Debian package `prometheus`) on a free loopback port with a generated
// config that scrapes the given targets, and queries it through its HTTP API.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./nats.js";

export interface ScrapeJob {
  job: string;
  /** host:port pairs. */
  targets: string[];
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus extends AsyncDisposable {
  url: string;
  /** Instant query; `time` in seconds since the epoch (default: now). */
  query(expr: string, time?: number): Promise<PromSample[]>;
  /** Range query: one row of values per series, aligned on start..end by step (NaN where missing). */
  queryRange(expr: string, start: number, end: number, stepS: number): Promise<{ metric: Record<string, string>; values: number[] }[]>;
  /** Health of every scrape target, keyed by scrapeUrl. */
  targets(): Promise<{ scrapeUrl: string; health: string; lastError: string; labels: Record<string, string> }[]>;
  stop(): Promise<void>;
}

async function waitReady(url: string, timeoutMs: number, failed: Promise<never>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await Promise.race([
      fetch(`${url}/-/ready`).then((r) => r.ok, () => false),
      failed,
    ]);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`prometheus at ${url} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Start Prometheus scraping `jobs` every `intervalS` seconds. */
export async function startPrometheus(jobs: ScrapeJob[], opts: { intervalS?: number } = {}): Promise<Prometheus> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "imdb-prom-"));
  const interval = `${opts.intervalS ?? 1}s`;
  const config = [
    "global:",
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    "scrape_configs:",
    ...jobs.flatMap((j) => [
      `  - job_name: ${JSON.stringify(j.job)}`,
      "    static_configs:",
      `      - targets: [${j.targets.map((t) => JSON.stringify(t)).join(", ")}]`,
    ]),
  ].join("\n") + "\n";
  const configPath = join(dir, "prometheus.yml");
  writeFileSync(configPath, config);
  const bin = process.env.PROMETHEUS ?? "prometheus";
  const child: ChildProcess = spawn(bin, [
    `--config.file=${configPath}`, `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d) => { stderr += String(d); });
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (e) => reject(new Error(`cannot start ${bin} (install it: apt-get install -y prometheus): ${e.message}`)));
    child.once("exit", (code) => reject(new Error(`${bin} exited with ${code}: ${stderr}`)));
  });
  failed.catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(url, 20_000, failed);
  } catch (err) {
    await stop();
    throw err;
  }
  const api = async (path: string, params: Record<string, string>): Promise<any> => {
    const res = await fetch(`${url}${path}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: any; error?: string };
    if (body.status !== "success") throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${body.error ?? res.status}`);
    return body.data;
  };
  return {
    url,
    async query(expr, time) {
      const params: Record<string, string> = { query: expr };
      if (time !== undefined) params.time = String(time);
      const data = await api("/api/v1/query", params);
      if (data.resultType !== "vector") throw new Error(`expected a vector for ${expr}, got ${data.resultType}`);
      return data.result as PromSample[];
    },
    async queryRange(expr, start, end, stepS) {
      const data = await api("/api/v1/query_range", { query: expr, start: String(start), end: String(end), step: `${stepS}s` });
      const n = Math.floor((end - start) / stepS) + 1;
      return (data.result as { metric: Record<string, string>; values: [number, string][] }[]).map((r) => {
        const values = new Array<number>(n).fill(NaN);
        for (const [ts, v] of r.values) values[Math.round((ts - start) / stepS)] = Number(v);
        return { metric: r.metric, values };
      });
    },
    async targets() {
      const data = await api("/api/v1/targets", { state: "active" });
      return data.activeTargets;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Replace the Grafana variables a dashboard query may use with values Prometheus accepts. */
export function expandGrafanaVars(expr: string, rateInterval = "10s"): string {
  return expr
    .replaceAll("$__rate_interval", rateInterval)
    .replaceAll("$__interval", rateInterval)
    .replaceAll("$__range", "5m")
    .replaceAll("$worker", ".*");
}
