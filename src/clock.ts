// The wall clock at performance.now()'s resolution, comparable between the processes of a machine (and between
// machines as far as their clocks agree): the coordinator's --timeline and `bench cluster`'s workers join their
// timestamps across processes.
//
// `performance.timeOrigin + performance.now()` is not good enough for that. Node reads the monotonic clock and
// the wall clock one after the other when the process starts, and a process preempted between the two reads
// carries the gap as a fixed error for its whole life: half a millisecond on a quiet machine here, several on a
// loaded one, which is more than a push over loopback takes. So the offset between the two clocks is measured
// again, at the moment Date.now() ticks over to a new millisecond (its value is then exact to well under a
// microsecond); a read that was delayed only makes the offset smaller, so the largest of three counts.

let offset: number | null = null;

function calibrate(): number {
  let best = -Infinity;
  for (let i = 0; i < 3; i++) {
    const before = Date.now();
    let tick: number;
    while ((tick = Date.now()) === before) { /* spin to the next millisecond: at most 1 ms */ }
    best = Math.max(best, tick - performance.now());
  }
  return best;
}

/** Ms since the epoch, with sub-millisecond resolution. The first call measures the offset (up to 3 ms). */
export function wallClock(): number {
  offset ??= calibrate();
  return offset + performance.now();
}
