// The worker role's programmatic API (wiring only): join a coordinator, compute gradients until told to stop.
export { runWorker, join, type WorkerOptions, type WorkerResult, type Welcome } from "./worker.js";
export { WorkerShards } from "./shards.js";
