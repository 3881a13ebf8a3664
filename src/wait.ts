// Waiting with a limit. A bare `Promise.race([p, new Promise((r) => setTimeout(r, ms))])` leaves its timer
// pending after `p` settles, and a pending timer keeps the process alive: `train` used to sit 5 s after its
// last line, the coordinator up to 1 s.

/** Waits until `p` settles or `ms` pass, whichever comes first; the timer is cleared either way. True when
 *  `p` settled in time (a rejection counts as settled and is not rethrown). */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => { timer = setTimeout(() => r(false), ms); });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
