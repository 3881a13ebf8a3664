// A GPU's compute time as the benchmarks' synthetic workers model it: a wait until a given instant.

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Wait until performance.now() reaches `t`: a timer for all but the last 2 ms (timers fire up to a
 *  millisecond or more late), then a blocking wait of the exact remainder — a GPU's compute time, not the
 *  event loop's timer granularity, is what the benchmarks model. */
export async function until(t: number): Promise<void> {
  const early = t - performance.now() - 2;
  if (early > 0) await new Promise((r) => setTimeout(r, early));
  const rest = t - performance.now();
  if (rest > 0) Atomics.wait(sleeper, 0, 0, rest);
}
