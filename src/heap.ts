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
//
// Most full collections left are started by that memory outside the heap: ZeroMQ reports each received buffer's
// size to V8, and once the total since the last full collection passes V8's limit (tens of MB: a few steps' worth
// of messages), V8 runs a full mark-compact to find dead buffers, whenever that falls, often in the middle of a
// transfer. The buffers of a handled message die young, so a young-generation collection finds them too, at a
// fraction of the cost: `releaseMessages` runs one where the process would otherwise wait (the coordinator once
// the tasks are with the workers, a shard after its apply, a worker while its engine computes). A bare ZeroMQ
// exchange of 2.75 MB each way on this project's 2-core test machine (ad hoc): 60 mark-compacts in 400 round
// trips and a mean of 6.3 ms (median 2.5, 90th percentile 18) without; 1 mark-compact and a mean of 1.8 ms
// (median 1.6, 90th percentile 1.7) with one young collection a round trip, each 0.1 ms. Not every buffer goes
// that way in a coordinator: at 1 worker about one gradient a step outlives the young collections (dead, yet
// freed only by the full collections V8 still runs every ~12 steps; cause not found: docs/performance.md). The
// collection is V8's own, reached through `--expose-gc` in a context of its own (the process's global scope
// gets no `gc`).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

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

type Collect = (options: { type: "minor" | "major" }) => void;
let collect: Collect | null = null;

/** Where messages are large (`tuneHeapForMessages` applied): a young-generation collection now, which frees
 *  the buffers of the messages handled since the last one. Call it where the process would otherwise wait; it
 *  does nothing elsewhere. */
export function releaseMessages(): void {
  if (!applied) return;
  if (!collect) {
    setFlagsFromString("--expose-gc");
    collect = runInNewContext("gc") as Collect;
  }
  collect({ type: "minor" });
}
