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
// The flag is read at every collection, so setting it once the process runs works; it is set before the role
// allocates anything large. Commands that do not move gradients (ingest, infer, …) keep V8's defaults.
import { setFlagsFromString } from "node:v8";

/** How far above its live size the old generation may grow before a full collection, in percent. */
export const HEAP_GROWING_PERCENT = 500;

let applied = false;

/** Apply the settings above to this process (once). */
export function tuneHeapForMessages(): void {
  if (applied) return;
  applied = true;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
