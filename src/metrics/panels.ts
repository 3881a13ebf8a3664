// The dashboard's content as data: rows of panels, each with its PromQL queries. ./dashboard.ts
// turns this into Grafana JSON; the tests evaluate every query against a live Prometheus.
// Grafana variables used in queries: $worker (multi-select, "All" = .*), $__rate_interval.
import { METRIC as M, DCGM } from "./names.js";

export type PanelKind = "timeseries" | "stat" | "bargauge";

export interface QuerySpec {
  expr: string;
  /** Grafana legend template, e.g. "{{worker}}". */
  legend: string;
}

export interface PanelSpec {
  title: string;
  description: string;
  kind: PanelKind;
  /** Grafana unit id: "s", "bytes", "percentunit", "short", "Bps", "reqps"... */
  unit: string;
  queries: QuerySpec[];
  /** Width in grid columns (24 = full row). */
  width: number;
  /** Thresholds (value → colour), for stat and bar-gauge panels. */
  thresholds?: { value: number | null; color: string }[];
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

const R = "$__rate_interval";
const W = `worker=~"$worker"`;
const rate = (metric: string, sel = "") => `rate(${metric}${sel ? `{${sel}}` : ""}[${R}])`;
const p = (q: number, bucketRate: string, by: string) => `histogram_quantile(${q}, sum by (${by}) (${bucketRate}))`;

// GPUs per worker: NVIDIA's DCGM exporter where it runs, joined to each worker through the UUID its nvidia-smi
// poller reports (imdb_train_gpu_info); the poller's own gauges for the workers DCGM does not cover.
const dcgmPerWorker = (metric: string, scale: string) =>
  `max by (worker) (${M.gpuInfo}{${W}} * on (uuid) group_left label_replace(max by (UUID) (${metric}), "uuid", "$1", "UUID", "(.+)")) ${scale}`;
const pollerPerWorker = (metric: string, dcgm: string) => `max by (worker) (${metric}{${W}}) unless on (worker) (${dcgm})`;
const DCGM_UTIL = dcgmPerWorker(DCGM.utilization, "/ 100");
const DCGM_MEMORY = dcgmPerWorker(DCGM.memoryUsed, "* 1048576");

export const ROWS: RowSpec[] = [
  {
    title: "Training",
    panels: [
      {
        title: "Loss", kind: "timeseries", unit: "short", width: 8,
        description: "BCE-with-logits loss of the last applied step (train) and of the last validation pass (validation).",
        queries: [{ expr: `max by (split) (${M.loss})`, legend: "{{split}}" }],
      },
      {
        title: "Pretraining loss", kind: "timeseries", unit: "short", width: 8,
        description: "A pretraining run's loss (train --pretrain, or coordinator --task): lm, the sampled-softmax cross-entropy per predicted token; sgns, the loss per skip-gram pair; of the last applied step (train) and validation pass (validation).",
        queries: [{ expr: `max by (task, split) (${M.pretrainLoss})`, legend: "{{task}} {{split}}" }],
      },
      {
        title: "Accuracy", kind: "timeseries", unit: "percentunit", width: 8,
        description: "Accuracy of the last applied step (train) and of the last validation pass (validation).",
        queries: [{ expr: `max by (split) (${M.accuracy})`, legend: "{{split}}" }],
      },
      {
        title: "Throughput (all workers)", kind: "timeseries", unit: "short", width: 8,
        description: "Reviews per second in steps the coordinator applied, and tokens (without padding) per second over all workers.",
        queries: [
          { expr: `sum(${rate(M.samples)})`, legend: "samples/s" },
          { expr: `sum(${rate(M.workerTokens)})`, legend: "tokens/s" },
        ],
      },
      {
        title: "Progress", kind: "stat", unit: "short", width: 12,
        description: "Last applied step, epoch, and the parameter version last broadcast to workers.",
        queries: [
          { expr: `max(${M.step})`, legend: "step" },
          { expr: `max(${M.epoch})`, legend: "epoch" },
          { expr: `max(${M.paramVersion})`, legend: "parameter version" },
        ],
      },
      {
        title: "Live workers", kind: "stat", unit: "short", width: 12,
        description: "Workers in the ring now, as the coordinator sees them.",
        queries: [{ expr: `max(${M.liveWorkers})`, legend: "live workers" }],
        thresholds: [{ value: null, color: "red" }, { value: 1, color: "green" }],
      },
    ],
  },
  {
    title: "Step time",
    panels: [
      {
        title: "Step phases (median)", kind: "timeseries", unit: "s", width: 12,
        description: "Median time of each phase of a step: compute (workers' gradients), wait (for the last worker), reduce, optimizer, broadcast.",
        queries: [{ expr: p(0.5, rate(`${M.phaseSeconds}_bucket`), "le, phase"), legend: "{{phase}}" }],
      },
      {
        title: "Step time (p50, p90, p99)", kind: "timeseries", unit: "s", width: 12,
        description: "Wall time of a whole step on the coordinator.",
        queries: [
          { expr: p(0.5, rate(`${M.stepSeconds}_bucket`), "le"), legend: "p50" },
          { expr: p(0.9, rate(`${M.stepSeconds}_bucket`), "le"), legend: "p90" },
          { expr: p(0.99, rate(`${M.stepSeconds}_bucket`), "le"), legend: "p99" },
        ],
      },
    ],
  },
  {
    title: "Workers (stragglers)",
    panels: [
      {
        title: "Gradient time per worker (p90)", kind: "timeseries", unit: "s", width: 12,
        description: "90th percentile of the time each worker takes to compute its shard's gradient. A straggler is the line above the others.",
        queries: [{ expr: p(0.9, rate(`${M.workerStepSeconds}_bucket`, W), "le, worker"), legend: "{{worker}}" }],
      },
      {
        title: "Slowdown vs. median worker", kind: "bargauge", unit: "short", width: 12,
        description: "Each worker's mean gradient time divided by the median over workers: 1 is typical, above 1.5 (red) is a straggler.",
        queries: [{
          expr: `(sum by (worker) (${rate(`${M.workerStepSeconds}_sum`, W)}) / sum by (worker) (${rate(`${M.workerStepSeconds}_count`, W)}))` +
            ` / scalar(quantile(0.5, sum by (worker) (${rate(`${M.workerStepSeconds}_sum`, W)}) / sum by (worker) (${rate(`${M.workerStepSeconds}_count`, W)})))`,
          legend: "{{worker}}",
        }],
        thresholds: [{ value: null, color: "green" }, { value: 1.2, color: "yellow" }, { value: 1.5, color: "red" }],
      },
      {
        title: "Straggler time per worker", kind: "timeseries", unit: "percentunit", width: 8,
        description: "Share of wall time the step spent waiting for this worker after all others had reported.",
        queries: [{ expr: `sum by (worker) (${rate(M.stragglerSeconds, W)})`, legend: "{{worker}}" }],
      },
      {
        title: "Samples/s per worker", kind: "timeseries", unit: "short", width: 8,
        description: "Reviews per second each worker computes gradients for.",
        queries: [{ expr: `sum by (worker) (${rate(M.workerSamples, W)})`, legend: "{{worker}}" }],
      },
      {
        title: "Tokens/s per worker", kind: "timeseries", unit: "short", width: 8,
        description: "Tokens (without padding) per second each worker processes.",
        queries: [{ expr: `sum by (worker) (${rate(M.workerTokens, W)})`, legend: "{{worker}}" }],
      },
      {
        title: "Loss per worker", kind: "timeseries", unit: "short", width: 8,
        description: "Loss of each worker's last shard (noisy: a shard is a slice of one batch).",
        queries: [{ expr: `max by (worker) (${M.workerLoss}{${W}})`, legend: "{{worker}}" }],
      },
      {
        title: "Accuracy per worker", kind: "timeseries", unit: "percentunit", width: 8,
        description: "Accuracy of each worker's last shard.",
        queries: [{ expr: `max by (worker) (${M.workerAccuracy}{${W}})`, legend: "{{worker}}" }],
      },
      {
        title: "TensorFlow.js memory", kind: "timeseries", unit: "bytes", width: 8,
        description: "Bytes held by tfjs tensors in each worker (device=host), and on the GPU where the backend reports it (device=gpu).",
        queries: [{ expr: `max by (worker, device) (${M.engineMemory}{${W}})`, legend: "{{worker}} {{device}}" }],
      },
    ],
  },
  {
    title: "GPUs",
    panels: [
      {
        title: "GPU utilisation per worker", kind: "timeseries", unit: "percentunit", width: 8,
        description: "Share of time a kernel ran on each worker's GPU: from NVIDIA's DCGM exporter where it runs, else from nvidia-smi polled by the worker (the GPUs it sees: CUDA_VISIBLE_DEVICES, else all).",
        queries: [
          { expr: DCGM_UTIL, legend: "{{worker}} (DCGM)" },
          { expr: pollerPerWorker(M.gpuUtilization, DCGM_UTIL), legend: "{{worker}} (nvidia-smi)" },
        ],
      },
      {
        title: "GPU memory per worker", kind: "timeseries", unit: "bytes", width: 8,
        description: "Memory in use on each worker's GPU (all processes on it: DCGM where it runs, else nvidia-smi), and the GPU's total.",
        queries: [
          { expr: DCGM_MEMORY, legend: "{{worker}} (DCGM)" },
          { expr: pollerPerWorker(M.gpuMemoryUsed, DCGM_MEMORY), legend: "{{worker}} (nvidia-smi)" },
          { expr: `max by (worker) (${M.gpuMemoryTotal}{${W}})`, legend: "{{worker}} total" },
        ],
      },
      {
        title: "GPU time per step phase (median)", kind: "timeseries", unit: "s", width: 8,
        description: "The WebGPU engine's own GPU time of a step's phases (forward, backward, readback), measured with timestamp queries where the GPU offers them.",
        queries: [{ expr: p(0.5, rate(`${M.workerGpuSeconds}_bucket`, W), "le, worker, phase"), legend: "{{worker}} {{phase}}" }],
      },
      {
        title: "Utilisation of every GPU (DCGM)", kind: "timeseries", unit: "percentunit", width: 12,
        description: "Every GPU DCGM reports, by exporter (node), GPU index and, on Kubernetes, the pod holding it: a GPU still held by a pod after a run shows here.",
        queries: [{ expr: `max by (instance, gpu, pod) (${DCGM.utilization}) / 100`, legend: "{{instance}} GPU {{gpu}} {{pod}}" }],
      },
      {
        title: "Memory of every GPU (DCGM)", kind: "timeseries", unit: "bytes", width: 12,
        description: "Memory in use on every GPU DCGM reports, by exporter (node), GPU index and pod.",
        queries: [{ expr: `max by (instance, gpu, pod) (${DCGM.memoryUsed}) * 1048576`, legend: "{{instance}} GPU {{gpu}} {{pod}}" }],
      },
    ],
  },
  {
    title: "Gradients and membership",
    panels: [
      {
        title: "Gradient global norm (before clipping)", kind: "timeseries", unit: "short", width: 8,
        description: "Global L2 norm of the summed gradient before clipping, and how often it was clipped.",
        queries: [
          { expr: `max(${M.gradNorm})`, legend: "norm" },
          { expr: `sum(${rate(M.gradClips)})`, legend: "clip events/s" },
        ],
      },
      {
        title: "Rejected gradients by reason", kind: "timeseries", unit: "short", width: 8,
        description: "Gradients and messages the coordinator refused per second: stale parameter version, NaN, bad length/layout/size, a malformed body, unknown worker; auth = connection attempts refused by CURVE (unadmitted key, wrong server key, no CURVE). Skipped steps: steps that applied nothing (every gradient refused, or a sum that was not finite with no part to blame).",
        queries: [
          { expr: `sum by (reason) (${rate(M.rejected)})`, legend: "{{reason}}" },
          { expr: `sum by (reason) (${M.skippedSteps})`, legend: "skipped steps: {{reason}}" },
        ],
      },
      {
        title: "Joins, leaves, evictions", kind: "timeseries", unit: "short", width: 8,
        description: "Membership events since the coordinator started.",
        queries: [{ expr: `sum by (event) (${M.membership})`, legend: "{{event}}" }],
      },
      {
        title: "Heartbeats missed", kind: "timeseries", unit: "short", width: 8,
        description: "Heartbeats each worker missed since the coordinator started.",
        queries: [{ expr: `sum by (worker) (${M.heartbeatsMissed}{${W}})`, legend: "{{worker}}" }],
      },
      {
        title: "Evictions: who, why, how late", kind: "timeseries", unit: "short", width: 8,
        description: "Evictions per worker and cause (connection lost, step deadline, heartbeat, loading), and how many seconds past its deadline each worker was when last evicted (for a dropped connection: how long it had been silent).",
        queries: [
          { expr: `sum by (worker, cause) (${M.evictions}{${W}})`, legend: "{{worker}} {{cause}}" },
          { expr: `max by (worker) (${M.evictionLate}{${W}})`, legend: "{{worker}} seconds late" },
        ],
      },
      {
        title: "Transport bytes", kind: "timeseries", unit: "Bps", width: 8,
        description: "Bytes per second sent and received on the training transport, per role.",
        queries: [{ expr: `sum by (role, direction) (${rate(M.transportBytes)})`, legend: "{{role}} {{direction}}" }],
      },
      {
        title: "Checkpoint duration", kind: "timeseries", unit: "s", width: 8,
        description: "Mean time to write a checkpoint (empty until the first checkpoint).",
        queries: [{ expr: `max(${M.checkpointSeconds}_sum / ${M.checkpointSeconds}_count)`, legend: "mean" }],
      },
      {
        title: "Checkpoint failures", kind: "timeseries", unit: "short", width: 8,
        description: "Checkpoints that could not be written, by cause (no_space: disk full). A periodic checkpoint that fails is skipped and training goes on with the previous checkpoints kept; the one at the end of the run must succeed or the run fails.",
        queries: [{ expr: `sum by (reason) (${M.checkpointFailures})`, legend: "{{reason}}" }],
      },
    ],
  },
  {
    title: "Ingest and processes",
    panels: [
      {
        title: "Ingest reviews/s", kind: "timeseries", unit: "short", width: 8,
        description: "Reviews tokenized into Arrow batches per second.",
        queries: [{ expr: `sum(${rate(M.ingestReviews)})`, legend: "reviews/s" }],
      },
      {
        title: "Padding ratio", kind: "timeseries", unit: "percentunit", width: 8,
        description: "Pad tokens over all tokens in the batches ingest produced: what bucketing by length saves.",
        queries: [{ expr: `max(${M.ingestPadding})`, legend: "padding" }],
      },
      {
        title: "JetStream lag", kind: "timeseries", unit: "short", width: 8,
        description: "Messages waiting in the JetStream consumer (where batches travel through JetStream).",
        queries: [{ expr: `max by (role) (${M.jetstreamLag})`, legend: "{{role}}" }],
      },
      {
        title: "Process memory (RSS)", kind: "timeseries", unit: "bytes", width: 12,
        description: "Resident memory of every process, by role and worker.",
        queries: [{ expr: `sum by (role, worker) (process_resident_memory_bytes)`, legend: "{{role}} {{worker}}" }],
      },
      {
        title: "Process CPU", kind: "timeseries", unit: "percentunit", width: 12,
        description: "CPU time per second of every process (1 = one core).",
        queries: [{ expr: `sum by (role, worker) (rate(process_cpu_seconds_total[${R}]))`, legend: "{{role}} {{worker}}" }],
      },
    ],
  },
];

/** Every query of the dashboard, with the title of its panel. */
export function allQueries(rows: RowSpec[] = ROWS): { panel: string; expr: string }[] {
  return rows.flatMap((r) => r.panels.flatMap((pn) => pn.queries.map((q) => ({ panel: pn.title, expr: q.expr }))));
}
