// `Telemetry` (src/telemetry.ts) implemented with Prometheus metrics. Metrics are created on first
// use, so each process exports only what its role reports; a few are created up front per role so
// that "nothing happened yet" is a zero series rather than a missing one (clip events, rejections,
// per-worker misses), which keeps dashboards and `rate()` meaningful from the first scrape.
import { CHECKPOINT_FAILURES, type Telemetry, type StepPhase, type GpuReading } from "../telemetry.js";
import { REJECT_REASONS } from "../protocol/wire.js";
import type { GpuPhase } from "../engine/types.js";
import type { CounterHandle, GaugeHandle, HistogramHandle, MetricRegistry } from "./prom.js";
import { METRIC, NORM_BUCKETS, SECONDS_BUCKETS, type Role } from "./names.js";
import { WorkerLabels } from "./labels.js";


const PHASES: readonly StepPhase[] = ["compute", "wait", "reduce", "optimizer", "broadcast"];
const MEMBERSHIP = ["join", "leave", "evict"] as const;
const EVICTION_CAUSES = ["connection", "deadline", "heartbeat", "startup", "refused"] as const;
const SKIP_REASONS = ["overflow", "refused"] as const;
const GPU_PHASES: readonly GpuPhase[] = ["forward", "backward", "readback"];
/** GPUs per worker process that get series (indices 0..MAX_GPUS-1); a `gpu` label stays bounded. */
const MAX_GPUS = 16;
const UUID = /^[A-Za-z0-9-]{1,64}$/;
const GPU_NAME = /^[A-Za-z0-9 ._()+-]{1,64}$/;

/** Lazily created metric: the factory runs on first `get()`. */
function lazy<T>(make: () => T): () => T {
  let v: T | undefined;
  return () => (v ??= make());
}

export function prometheusTelemetry(reg: MetricRegistry, role: Role): Telemetry {
  const c = (name: string, help: string, labels: readonly string[] = []) => lazy<CounterHandle>(() => reg.counter(name, help, labels));
  const g = (name: string, help: string, labels: readonly string[] = []) => lazy<GaugeHandle>(() => reg.gauge(name, help, labels));
  const h = (name: string, help: string, buckets: readonly number[], labels: readonly string[] = []) =>
    lazy<HistogramHandle>(() => reg.histogram(name, help, buckets, labels));

  const m = {
    loss: g(METRIC.loss, "Loss (BCE with logits) of the last step (split=train) or validation pass (split=validation).", ["split"]),
    pretrainLoss: g(METRIC.pretrainLoss, "Pretraining loss per unit (task=lm: sampled-softmax cross-entropy per predicted token; task=sgns: per skip-gram pair) of the last step (split=train) or validation pass (split=validation).", ["task", "split"]),
    accuracy: g(METRIC.accuracy, "Accuracy 0..1 of the last step (split=train) or validation pass (split=validation).", ["split"]),
    step: g(METRIC.step, "Last applied optimizer step."),
    epoch: g(METRIC.epoch, "Current epoch."),
    samples: c(METRIC.samples, "Reviews in applied steps."),
    tokens: c(METRIC.tokens, "Tokens (without padding) in applied steps."),
    stepSeconds: h(METRIC.stepSeconds, "Wall time of a whole step on the coordinator.", SECONDS_BUCKETS),
    phaseSeconds: h(METRIC.phaseSeconds, "Wall time of one phase of a step.", SECONDS_BUCKETS, ["phase", "worker"]),
    gradNorm: g(METRIC.gradNorm, "Global gradient norm of the last step, before clipping."),
    gradNormHist: h(METRIC.gradNormHist, "Global gradient norm before clipping.", NORM_BUCKETS),
    gradClips: c(METRIC.gradClips, "Steps whose gradient was clipped."),
    paramVersion: g(METRIC.paramVersion, "Version of the parameters last broadcast."),
    liveWorkers: g(METRIC.liveWorkers, "Workers currently in the ring."),
    membership: c(METRIC.membership, "Workers joining, leaving and evicted.", ["event", "worker"]),
    heartbeatsMissed: c(METRIC.heartbeatsMissed, "Heartbeats a worker missed.", ["worker"]),
    evictions: c(METRIC.evictions, "Workers evicted, by worker and cause (connection lost, step deadline missed, heartbeats stopped, never finished loading).", ["worker", "cause"]),
    evictionLate: g(METRIC.evictionLate, "How late the worker was when last evicted: seconds past its step deadline or heartbeat timeout, or, when its connection went away, seconds since it was last heard from.", ["worker"]),
    stragglerSeconds: c(METRIC.stragglerSeconds, "Seconds the step waited for this worker after the others had reported.", ["worker"]),
    skippedSteps: c(METRIC.skippedSteps, "Steps that applied nothing: every gradient refused, or a sum that was not finite with no single part to blame.", ["reason"]),
    rejected: c(METRIC.rejected, "Gradients the coordinator refused, by reason (reason=auth: connection attempts refused by CURVE authentication).", ["reason"]),
    transportBytes: c(METRIC.transportBytes, "Bytes sent and received on the training transport.", ["direction", "worker"]),
    checkpointSeconds: h(METRIC.checkpointSeconds, "Time to write a checkpoint.", SECONDS_BUCKETS),
    checkpointBytes: g(METRIC.checkpointBytes, "Size of the last checkpoint."),
    checkpointFailures: c(METRIC.checkpointFailures, "Checkpoints that could not be written, by cause (no_space: disk full or quota; read_only; permission; other). A periodic one is skipped and the run goes on.", ["reason"]),
    workerSamples: c(METRIC.workerSamples, "Reviews this worker computed gradients for.", ["worker"]),
    workerTokens: c(METRIC.workerTokens, "Tokens (without padding) this worker computed gradients for.", ["worker"]),
    workerStepSeconds: h(METRIC.workerStepSeconds, "Time a worker spent computing the gradient of its shard.", SECONDS_BUCKETS, ["worker"]),
    workerLoss: g(METRIC.workerLoss, "Loss of the worker's last shard.", ["worker"]),
    workerAccuracy: g(METRIC.workerAccuracy, "Accuracy 0..1 of the worker's last shard.", ["worker"]),
    engineMemory: g(METRIC.engineMemory, "Bytes held by TensorFlow.js tensors (device=host) and on the GPU where the backend reports it (device=gpu).", ["worker", "device"]),
    workerGpuSeconds: h(METRIC.workerGpuSeconds, "GPU execution time of one engine step, by phase (WebGPU timestamp queries, where the device offers them).", SECONDS_BUCKETS, ["worker", "phase"]),
    gpuUtilization: g(METRIC.gpuUtilization, "Utilisation 0..1 of a GPU this worker sees (nvidia-smi utilization.gpu: share of time a kernel ran).", ["worker", "gpu"]),
    gpuMemoryUsed: g(METRIC.gpuMemoryUsed, "Memory in use on a GPU this worker sees, by every process on it (nvidia-smi memory.used).", ["worker", "gpu"]),
    gpuMemoryTotal: g(METRIC.gpuMemoryTotal, "Memory of a GPU this worker sees (nvidia-smi memory.total).", ["worker", "gpu"]),
    gpuInfo: g(METRIC.gpuInfo, "1 for each GPU this worker sees: its UUID (DCGM's UUID label) and name.", ["worker", "gpu", "uuid", "name"]),
    ingestReviews: c(METRIC.ingestReviews, "Reviews tokenized into batches."),
    ingestSeconds: c(METRIC.ingestSeconds, "Seconds spent producing those reviews."),
    ingestSkipped: c(METRIC.ingestSkipped, "Reviews skipped (empty or unreadable)."),
    ingestPadding: g(METRIC.ingestPadding, "Pad tokens over all tokens in the batches last produced (0..1)."),
    jetstreamLag: g(METRIC.jetstreamLag, "Messages in the JetStream consumer not yet delivered or acknowledged."),
  };

  // Per-worker series that should read zero until something happens.
  const workers = new WorkerLabels(undefined, (w) => {
    if (role !== "coordinator") return;
    m.heartbeatsMissed().inc({ worker: w }, 0);
    m.stragglerSeconds().inc({ worker: w }, 0);
    for (const event of MEMBERSHIP) m.membership().inc({ event, worker: w }, 0);
    for (const cause of EVICTION_CAUSES) m.evictions().inc({ worker: w, cause }, 0);
    m.evictionLate().set({ worker: w }, 0);
  });
  const wl = (w: string | undefined): Record<string, string> => (w === undefined ? {} : { worker: workers.label(w) });

  if (role === "coordinator") {
    m.gradClips().inc({}, 0);
    for (const reason of REJECT_REASONS) m.rejected().inc({ reason }, 0);
    for (const reason of SKIP_REASONS) m.skippedSteps().inc({ reason }, 0);
    for (const phase of PHASES) m.phaseSeconds().zero({ phase });
    m.checkpointSeconds();
    for (const reason of CHECKPOINT_FAILURES) m.checkpointFailures().inc({ reason }, 0);
    m.liveWorkers().set({}, 0);
  }
  if (role === "ingest") {
    m.ingestReviews().inc({}, 0);
    m.ingestSkipped().inc({}, 0);
  }

  const finite = (x: number) => Number.isFinite(x);
  return {
    step(info) {
      if (info.task && info.task !== "classify") {
        if (finite(info.loss)) m.pretrainLoss().set({ task: info.task, split: "train" }, info.loss);
      } else {
        if (finite(info.loss)) m.loss().set({ split: "train" }, info.loss);
        if (finite(info.accuracy)) m.accuracy().set({ split: "train" }, info.accuracy);
      }
      m.step().set({}, info.step);
      m.epoch().set({}, info.epoch);
      m.samples().inc({}, Math.max(0, info.samples));
      m.tokens().inc({}, Math.max(0, info.tokens));
      if (finite(info.seconds) && info.seconds >= 0) m.stepSeconds().observe({}, info.seconds);
    },
    phase(phase, seconds, worker) {
      if (finite(seconds) && seconds >= 0) m.phaseSeconds().observe({ phase, ...wl(worker) }, seconds);
    },
    gradNorm(norm, clipped) {
      m.gradNorm().set({}, norm);
      if (finite(norm)) m.gradNormHist().observe({}, norm);
      m.gradClips().inc({}, clipped ? 1 : 0);
    },
    paramVersion(version) { m.paramVersion().set({}, version); },
    validation(info) {
      if (info.task && info.task !== "classify") { m.pretrainLoss().set({ task: info.task, split: "validation" }, info.loss); return; }
      m.loss().set({ split: "validation" }, info.loss);
      m.accuracy().set({ split: "validation" }, info.accuracy);
    },
    liveWorkers(n) { m.liveWorkers().set({}, n); },
    membership(event, worker) { m.membership().inc({ event, ...wl(worker) }, 1); },
    heartbeatMissed(worker) { m.heartbeatsMissed().inc(wl(worker), 1); },
    evicted(worker, cause, lateSeconds) {
      const l = wl(worker);
      m.evictions().inc({ ...l, cause }, 1);
      m.evictionLate().set(l, finite(lateSeconds) && lateSeconds > 0 ? lateSeconds : 0);
    },
    skippedStep(reason) { m.skippedSteps().inc({ reason }, 1); },
    straggler(worker, seconds) {
      if (finite(seconds) && seconds >= 0) m.stragglerSeconds().inc(wl(worker), seconds);
    },
    rejected(reason, worker) {
      if (worker !== undefined) wl(worker);
      m.rejected().inc({ reason }, 1);
    },
    bytes(direction, n, worker) {
      if (finite(n) && n > 0) m.transportBytes().inc({ direction, ...wl(worker) }, n);
    },
    checkpoint(seconds, bytes) {
      m.checkpointSeconds().observe({}, seconds);
      m.checkpointBytes().set({}, bytes);
    },
    checkpointFailed(reason) { m.checkpointFailures().inc({ reason }, 1); },
    workerStep(worker, info) {
      const l = wl(worker);
      m.workerSamples().inc(l, Math.max(0, info.samples));
      m.workerTokens().inc(l, Math.max(0, info.tokens));
      if (finite(info.seconds) && info.seconds >= 0) m.workerStepSeconds().observe(l, info.seconds);
      if (finite(info.loss)) m.workerLoss().set(l, info.loss);
      if (finite(info.accuracy)) m.workerAccuracy().set(l, info.accuracy);
    },
    engineMemory(worker, bytes, gpuBytes) {
      const l = wl(worker);
      m.engineMemory().set({ ...l, device: "host" }, bytes);
      if (gpuBytes !== undefined) m.engineMemory().set({ ...l, device: "gpu" }, gpuBytes);
    },
    gpuDevice(worker, d: GpuReading) {
      if (!Number.isInteger(d.index) || d.index < 0 || d.index >= MAX_GPUS) return;
      const l = { ...wl(worker), gpu: String(d.index) };
      m.gpuInfo().set({ ...l, uuid: UUID.test(d.uuid) ? d.uuid : "invalid", name: GPU_NAME.test(d.name) ? d.name : "invalid" }, 1);
      if (d.utilization !== undefined && finite(d.utilization)) m.gpuUtilization().set(l, Math.min(1, Math.max(0, d.utilization)));
      if (d.memoryUsedBytes !== undefined && finite(d.memoryUsedBytes) && d.memoryUsedBytes >= 0) m.gpuMemoryUsed().set(l, d.memoryUsedBytes);
      if (d.memoryTotalBytes !== undefined && finite(d.memoryTotalBytes) && d.memoryTotalBytes >= 0) m.gpuMemoryTotal().set(l, d.memoryTotalBytes);
    },
    gpuTime(worker, seconds) {
      const l = wl(worker);
      for (const phase of GPU_PHASES) {
        const s = seconds[phase];
        if (s !== undefined && finite(s) && s >= 0) m.workerGpuSeconds().observe({ ...l, phase }, s);
      }
    },
    ingest(info) {
      m.ingestReviews().inc({}, Math.max(0, info.reviews));
      if (finite(info.seconds) && info.seconds >= 0) m.ingestSeconds().inc({}, info.seconds);
      m.ingestSkipped().inc({}, Math.max(0, info.skipped));
      if (finite(info.padding)) m.ingestPadding().set({}, info.padding);
    },
    jetstreamLag(messages) { m.jetstreamLag().set({}, messages); },
  };
}
