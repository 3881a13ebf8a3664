// `imdb-train coordinator`: the role as a process. Signals stop it cleanly (exit checkpoint, Stop to workers).
// When started by `train` it has an IPC channel: it sends its events there and exits if the launcher vanishes.
import { resolve } from "node:path";
import { emitJson, logger } from "../output.js";
import { UsageError, errorMessage } from "../errors.js";
import type { Telemetry } from "../telemetry.js";
import { runCoordinatorRole } from "./role.js";
import type { CoordinatorCliOptions } from "./command.js";
import type { CoordinatorEvent } from "./types.js";
import { optimFrom } from "./options.js";
import { RunClock } from "./progress.js";
import { sendFinal } from "../children.js";

const log = logger("coordinator");

export async function coordinatorCommand(o: CoordinatorCliOptions): Promise<number> {
  const ac = new AbortController();
  const onSignal = (sig: string) => { log.warn(`${sig}: stopping (exit checkpoint, then Stop to workers)`); ac.abort(); };
  process.once("SIGINT", () => onSignal("SIGINT"));
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  const ipc = typeof process.send === "function";
  const onDisconnect = () => { log.warn("launcher went away: stopping"); ac.abort(); };
  if (ipc) process.once("disconnect", onDisconnect);
  const send = (msg: unknown) => { if (ipc && process.connected) process.send!(msg); };

  // on its own (a container, a cluster), the role logs its progress; under `train` the launcher does
  const clock = ipc ? null : new RunClock(optimFrom(o).epochs);
  let metrics: { telemetry: Telemetry; close(): Promise<void>; url: string } | undefined;
  if (o.metricsPort !== undefined) {
    const { startMetrics } = await import("../metrics/index.js");
    metrics = await startMetrics({ role: "coordinator", port: o.metricsPort });
    log.info(`metrics on ${metrics.url}`);
  }
  let nats: { announce(endpoint: string, runId: number): Promise<void>; withdraw(): Promise<void>; event(e: CoordinatorEvent): void; close(): Promise<void> } | undefined;
  const dataset = resolve(o.dataset);
  // credentials first: a bad key file or NATS credential stops the role before it binds anything
  const { loadCurveServerKeys, natsAuthFrom, CURVE_KEYS_ENV } = await import("../security/keys.js");
  const keyDir = o.curveKeys ?? process.env[CURVE_KEYS_ENV];
  const curve = keyDir ? loadCurveServerKeys(keyDir) : undefined;
  const { requireKeysOffMachine } = await import("../security/policy.js");
  requireKeysOffMachine({ endpoint: o.bind, keys: curve !== undefined, insecure: o.insecure, role: "coordinator" });
  const shardSource = o.remoteShards ? remoteShards(o) : undefined;
  if (o.nats) {
    const { clusterPlane } = await import("../transport/plane.js");
    nats = await clusterPlane(o.nats, dataset, natsAuthFrom(o));
  }
  try {
    const report = await runCoordinatorRole({
      bind: o.bind, dataset, out: resolve(o.out), workers: o.workers,
      resume: o.resume, telemetry: metrics?.telemetry, signal: ac.signal, curve,
      onEvent: (e) => { send({ type: "event", event: e }); nats?.event(e); if (clock && e.type === "step") logProgress(clock, e); },
      onListening: async (endpoint, runId) => { await nats?.announce(endpoint, runId); },
      onClosing: async () => { await nats?.withdraw(); },
      remoteShards: shardSource,
    }, o);
    await sendFinal({ type: "result", report }); // a long run's report is larger than the pipe holds
    if (o.json) emitJson(report);
    return 0;
  } catch (err) {
    await sendFinal({ type: "error", message: errorMessage(err) });
    throw err;
  } finally {
    await nats?.close().catch(() => {});
    await metrics?.close().catch(() => {});
    process.off("disconnect", onDisconnect);
    if (ipc && process.connected) process.disconnect();
  }
}

/** --remote-shards: the shards are claimed on the cluster plane (checked before anything binds). */
function remoteShards(o: CoordinatorCliOptions): (n: number) => Promise<{ endpoint: string; control: string }[]> {
  if (!o.nats) throw new UsageError("--remote-shards finds the shards on the cluster plane: give --nats <url> too");
  if (o.coordinatorShards < 2) throw new UsageError("--remote-shards needs --coordinator-shards k ≥ 2 (this coordinator and k − 1 shards)");
  const url = o.nats;
  return async (n) => {
    const { discoverShards } = await import("../transport/plane.js");
    const { natsAuthFrom, CURVE_KEYS_ENV } = await import("../security/keys.js");
    const found = await discoverShards(url, n, { timeoutS: o.joinTimeout, auth: natsAuthFrom(o) });
    const { requireKeysOffMachine } = await import("../security/policy.js");
    const keys = (o.curveKeys ?? process.env[CURVE_KEYS_ENV]) !== undefined;
    for (const sh of found) for (const endpoint of [sh.endpoint, sh.control]) requireKeysOffMachine({ endpoint, keys, insecure: o.insecure, role: "claimed-shard" });
    return found;
  };
}

function logProgress(clock: RunClock, e: Extract<CoordinatorEvent, { type: "step" }>): void {
  clock.step(e);
  if (clock.due(e)) log.info(clock.line(e));
}
