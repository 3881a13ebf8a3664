// Names of every metric this project exports, in one place: the Telemetry implementation writes them,
// the Grafana dashboard queries them, and the tests check both against a live Prometheus.
// Conventions: base units (seconds, bytes, ratio 0..1), counters end in `_total`.
// Labels on every series: `role` (ingest|coordinator|worker) and, in a worker process, `worker`.

export type Role = "ingest" | "coordinator" | "worker";
export const ROLES: readonly Role[] = ["ingest", "coordinator", "worker"];

export const METRIC = {
  // ---- training (coordinator) ----
  loss: "imdb_train_loss", //                              gauge {split=train|validation}
  pretrainLoss: "imdb_train_pretrain_loss", //             gauge {task=lm|sgns, split}: a pretraining run's loss
  accuracy: "imdb_train_accuracy_ratio", //                gauge {split}
  step: "imdb_train_step", //                              gauge, last applied step
  epoch: "imdb_train_epoch", //                            gauge
  samples: "imdb_train_samples_total", //                  counter, reviews in applied steps
  tokens: "imdb_train_tokens_total", //                    counter, tokens in applied steps
  stepSeconds: "imdb_train_step_seconds", //               histogram, whole step on the coordinator
  phaseSeconds: "imdb_train_step_phase_seconds", //        histogram {phase, worker?}
  gradNorm: "imdb_train_grad_norm", //                     gauge, global norm before clipping
  gradNormHist: "imdb_train_grad_norm_distribution", //    histogram of the same
  gradClips: "imdb_train_grad_clips_total", //             counter, steps whose norm was clipped
  paramVersion: "imdb_train_param_version", //             gauge
  liveWorkers: "imdb_train_live_workers", //               gauge
  membership: "imdb_train_membership_events_total", //     counter {event=join|leave|evict, worker}
  heartbeatsMissed: "imdb_train_heartbeats_missed_total", // counter {worker}
  evictions: "imdb_train_evictions_total", //              counter {worker, cause=connection|deadline|heartbeat|startup|refused}
  skippedSteps: "imdb_train_skipped_steps_total", //       counter {reason=overflow|refused}: steps that applied nothing
  evictionLate: "imdb_train_eviction_late_seconds", //     gauge {worker}: how late it was when last evicted (past its deadline; connection lost: seconds silent)
  stragglerSeconds: "imdb_train_straggler_seconds_total", // counter {worker}: time others waited for it
  rejected: "imdb_train_rejected_gradients_total", //      counter {reason}
  transportBytes: "imdb_train_transport_bytes_total", //   counter {direction=sent|received, worker?}
  checkpointSeconds: "imdb_train_checkpoint_seconds", //   histogram
  checkpointBytes: "imdb_train_checkpoint_size_bytes", //  gauge, last checkpoint
  checkpointFailures: "imdb_train_checkpoint_failures_total", // counter {reason=no_space|read_only|permission|other}
  // ---- workers ----
  workerSamples: "imdb_train_worker_samples_total", //     counter {worker}
  workerTokens: "imdb_train_worker_tokens_total", //       counter {worker}
  workerStepSeconds: "imdb_train_worker_step_seconds", //  histogram {worker}: gradient computation of a shard
  workerLoss: "imdb_train_worker_loss", //                 gauge {worker}
  workerAccuracy: "imdb_train_worker_accuracy_ratio", //   gauge {worker}
  engineMemory: "imdb_train_engine_memory_bytes", //       gauge {worker, device=host|gpu}: tfjs tensors
  workerGpuSeconds: "imdb_train_worker_gpu_phase_seconds", // histogram {worker, phase=forward|backward|readback}: GPU time of a step
  // ---- GPUs a worker sees (nvidia-smi, polled in the worker process) ----
  gpuUtilization: "imdb_train_gpu_utilization_ratio", //   gauge {worker, gpu}: 0..1
  gpuMemoryUsed: "imdb_train_gpu_memory_used_bytes", //    gauge {worker, gpu}
  gpuMemoryTotal: "imdb_train_gpu_memory_total_bytes", //  gauge {worker, gpu}
  gpuInfo: "imdb_train_gpu_info", //                       gauge 1 {worker, gpu, uuid, name}: joins DCGM's series (UUID) to workers
  // ---- ingest ----
  ingestReviews: "imdb_train_ingest_reviews_total", //     counter
  ingestSeconds: "imdb_train_ingest_busy_seconds_total", // counter, time spent producing them
  ingestSkipped: "imdb_train_ingest_skipped_reviews_total", // counter
  ingestPadding: "imdb_train_ingest_padding_ratio", //     gauge, pad tokens / all tokens of recent batches
  jetstreamLag: "imdb_train_jetstream_lag_messages", //    gauge, messages not yet consumed
} as const;

/** Histogram buckets for step phases and checkpoints, in seconds (1 ms .. 2 min). */
export const SECONDS_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Buckets for the gradient global norm (unitless). */
export const NORM_BUCKETS: readonly number[] = [0.01, 0.03, 0.1, 0.3, 1, 2, 5, 10, 20, 50, 100, 1000];

/** Default /metrics ports of each role (deploy files and the CLI's defaults use them). */
export const DEFAULT_METRICS_PORT: Record<Role, number> = { ingest: 9400, coordinator: 9401, worker: 9402 };

/** DCGM exporter's metrics the dashboard reads (NVIDIA's names; labels gpu, UUID, modelName, and pod where on Kubernetes). */
export const DCGM = {
  utilization: "DCGM_FI_DEV_GPU_UTIL", //  gauge, percent 0..100
  memoryUsed: "DCGM_FI_DEV_FB_USED", //    gauge, MiB
} as const;
