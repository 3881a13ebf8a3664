// Secure by default: the training transport leaves this machine only with CURVE keys, unless the user says
// --insecure. A coordinator bound to a non-loopback address without keys would let anyone who can reach the
// port join, receive the model and send gradients; a worker connecting to one would trust whatever answers.
import { UsageError } from "../errors.js";

/** True for endpoints that only this machine can reach: 127.0.0.0/8, ::1, localhost, ipc://, inproc://. */
export function isLocalEndpoint(endpoint: string): boolean {
  if (/^(ipc|inproc):\/\//.test(endpoint)) return true;
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+)(?::[^/]*)?$/.exec(endpoint);
  if (!m) return false;
  const host = m[1]!.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** $IMDB_TRAIN_INSECURE=1 is --insecure for deployments that set the environment (deploy/k8s does, loudly). */
export const INSECURE_ENV = "IMDB_TRAIN_INSECURE";

/**
 * Refuses (UsageError) a transport off this machine without CURVE keys unless `insecure` (or $IMDB_TRAIN_INSECURE=1).
 * `role`: who binds or dials — a coordinator (or a shard) binding, a worker connecting, or a coordinator using a
 * shard it claimed on the cluster plane.
 */
export function requireKeysOffMachine(o: { endpoint: string; keys: boolean; insecure: boolean; role: "coordinator" | "worker" | "claimed-shard" }, env: NodeJS.ProcessEnv = process.env): void {
  if (o.keys || o.insecure || env[INSECURE_ENV] === "1" || isLocalEndpoint(o.endpoint)) return;
  const what = o.role === "coordinator"
    ? `binding ${o.endpoint} without CURVE keys would let anyone who can reach that port join the run, receive the model and send gradients`
    : o.role === "worker"
      ? `connecting to ${o.endpoint} without CURVE keys would send this worker's gradients unencrypted to whoever answers there`
      : `the coordinator shard at ${o.endpoint} is off this machine, and without CURVE keys the gradients and parameters would travel unencrypted to whoever answers there`;
  throw new UsageError(`refusing: ${what}. Make keys once with \`imdb-train keys --out keys\` and give every coordinator, coordinator shard and worker --curve-keys keys (or $IMDB_TRAIN_CURVE_KEYS); or pass --insecure to run without them on a network you trust.`);
}
