// `imdb-train worker` as a process: signals stop it; with an IPC channel (started by `train`) it exits when
// the launcher goes away, so no worker outlives its launcher.
import { hostname } from "node:os";
import { emitJson, logger } from "../output.js";
import { UsageError } from "../errors.js";
import type { Telemetry } from "../telemetry.js";
import { runWorker } from "./worker.js";
import type { WorkerCliOptions } from "./command.js";

export async function workerCommand(o: WorkerCliOptions): Promise<number> {
  const name = o.name ?? `${hostname()}-${process.pid}`;
  const log = logger(`worker ${name}`);
  const ac = new AbortController();
  process.once("SIGINT", () => ac.abort());
  process.once("SIGTERM", () => ac.abort());
  const onDisconnect = () => { log.warn("launcher went away: stopping"); ac.abort(); };
  if (typeof process.send === "function") process.once("disconnect", onDisconnect);
  // credentials first: a bad key file stops the worker before it connects anywhere
  const { loadCurveClientKeys, natsAuthFrom, CURVE_KEYS_ENV } = await import("../security/keys.js");
  const keyDir = o.curveKeys ?? process.env[CURVE_KEYS_ENV];
  const curve = keyDir ? loadCurveClientKeys(keyDir) : undefined;
  if (!o.coordinator && !o.nats) throw new UsageError("worker needs --coordinator <tcp://host:port> or --nats <url>");
  /** The coordinator to join (and its dataset path): --coordinator, else announced on NATS (not by run `notRun`). */
  const locate = async (notRun?: number): Promise<{ endpoint: string; dataset?: string }> => {
    const { requireKeysOffMachine } = await import("../security/policy.js");
    const check = (endpoint: string) => requireKeysOffMachine({ endpoint, keys: curve !== undefined, insecure: o.insecure, role: "worker" });
    if (o.coordinator) { check(o.coordinator); return { endpoint: o.coordinator, dataset: o.dataset }; }
    const { discoverCoordinator } = await import("../transport/plane.js");
    const found = await discoverCoordinator(o.nats!, { timeoutS: o.connectTimeout, signal: ac.signal, auth: natsAuthFrom(o), notRun });
    check(found.endpoint);
    log.info(`found coordinator ${found.endpoint} (run ${found.runId}) through ${o.nats}`);
    return { endpoint: found.endpoint, dataset: o.dataset ?? found.dataset };
  };
  let metrics: { telemetry: Telemetry; close(): Promise<void>; url: string } | undefined;
  let onStep: (() => void) | undefined;
  let gpus: { stop(): void } | undefined;
  if (o.metricsPort !== undefined) {
    const { startMetrics, reportEngineMemory, runningTfjsEngine } = await import("../metrics/index.js");
    metrics = await startMetrics({ role: "worker", port: o.metricsPort, worker: name });
    log.info(`metrics on ${metrics.url}`);
    const tel = metrics.telemetry;
    onStep = () => { const src = runningTfjsEngine(); if (src) reportEngineMemory(tel, name, src); };
    const { pollGpus } = await import("./gpu-poll.js");
    gpus = pollGpus(tel, name);
  }
  try {
    let notRun: number | undefined;
    for (;;) {
      const { endpoint, dataset } = await locate(notRun);
      const r = await runWorker({ coordinator: endpoint, name, dataset, backend: o.backend, connectTimeoutS: o.connectTimeout, curve, insecure: o.insecure, telemetry: metrics?.telemetry, signal: ac.signal, onStep });
      if (r.final) {
        if (o.json) emitJson({ worker: name, ...r });
        return 0;
      }
      // stopped before the end (a coordinator interrupted, e.g. its pod drained): it resumes from its checkpoint,
      // so wait for it rather than exit (a worker that exits 0 is not started again, by `train` or a Job)
      log.warn(`the coordinator stopped before the end of the run (${r.reason}): waiting up to ${o.connectTimeout} s for it to resume`);
      notRun = r.shardLost ? undefined : r.runId; // left on our own: that run may go on
    }
  } finally {
    gpus?.stop();
    await metrics?.close().catch(() => {});
    process.off("disconnect", onDisconnect);
    if (typeof process.send === "function" && process.connected) process.disconnect();
  }
}
