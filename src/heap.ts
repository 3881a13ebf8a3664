// The garbage collector's settings in the processes that move gradients and parameters every step: the
// coordinator, its shards and the workers.
//
// ZeroMQ hands every received message to JavaScript as a buffer outside the V8 heap (megabytes each, freed
// only when the garbage collector finds the buffer dead). Such a process has a small heap (~20 MB live) and
// V8 sizes the old generation's limit from it, so the heap's growth between collections is smaller than the
// young generation, and V8 starts a full mark-compact on almost every step: on a coordinator with 4 workers
// (`--trace-gc`), 66 of them in 80 steps, about 5 ms a step of pauses and marking on the critical path. With a
// larger growing factor the limit stays far above the live heap: 24 in the same 80 steps, and `bench cluster`
// at 4 workers went from 0.51–0.53 to 0.57–0.60 (docs/performance.md). The price is memory: the heap may grow
// to ~6× its live size before it is collected. Measured over those 80 steps, peak RSS went from 383 to 395 MB
// in the coordinator and from ~201 to ~204 MB in a worker. `bench soak` still finds RSS flat.
//
// It is set only where the messages are that large (a parameter vector of 1 MiB of float32 or more): with small
// messages the default limits collect often enough and keep the heap small (with the setting, a small model's
// coordinator still grew its RSS by up to 7% over 400 steps, where `bench soak` expects a flat one).
//
// The flag is read at every collection, so setting it once the process runs works: the roles call this as soon as
// they know the size of what they exchange. Commands that do not move gradients (ingest, infer, …) keep V8's
// defaults.
import { setFlagsFromString } from "node:v8";

/** How far above its live size the old generation may grow before a full collection, in percent. */
export const HEAP_GROWING_PERCENT = 500;
/** Parameters (float32) per message from which the setting applies: 1 MiB. */
export const LARGE_MESSAGE_VALUES = 1 << 18;

let applied = false;

/** Apply the settings above to this process (once) when it exchanges vectors of `values` parameters. */
export function tuneHeapForMessages(values: number): void {
  if (applied || values < LARGE_MESSAGE_VALUES) return;
  applied = true;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
